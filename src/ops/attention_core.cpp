// The attention core's out-of-line parts: weight dropout and the P·V backward (attention_core.h).
#include "ops/attention_core.h"

#include "core/error.h"
#include "core/gemm.h"
#include "ops/ops.h"

namespace attnlab {

const float* WeightDropout::forward(const std::vector<float>& P, float p, bool train, Rng* rng) {
  on = train && p > 0.0f;
  if (!on) return P.data();
  ATTNLAB_CHECK(rng != nullptr);
  mask.resize(P.size());
  dropped.resize(P.size());
  dropout_forward(dropped.data(), mask.data(), P.data(), P.size(), p, *rng);
  return dropped.data();
}

void pv_backward(float* dP, float* dVg, const float* Pd, const float* dOh, const float* Vg, int Tq, int Tk,
                 int D, int ldo, int ldv) {
  // dV_g += P̃ᵀ dO_h
  sgemm(true, false, Tk, D, Tq, 1.0f, Pd, Tk, dOh, ldo, 1.0f, dVg, ldv);
  // dP̃ = dO_h V_gᵀ
  sgemm(false, true, Tq, Tk, D, 1.0f, dOh, ldo, Vg, ldv, 0.0f, dP, Tk);
}

}  // namespace attnlab
