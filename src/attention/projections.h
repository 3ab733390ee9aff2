// The input and output projections shared by every variant (Vaswani et al. 2017, §3.2.2):
//
//   Q = x_q W_qᵀ + b_q      [Nq, C]       K = x_kv W_kᵀ + b_k,  V = x_kv W_vᵀ + b_v   [Nk, Ckv]
//   out = O W_oᵀ + b_o      [Nq, C]
//
// Parameters, registered in this order: "<name>.w_q" [C,C], ".w_k" [Ckv,C], ".w_v" [Ckv,C],
// ".w_o" [C,C], then (when spec.bias) ".b_q" [C], ".b_k" [Ckv], ".b_v" [Ckv], ".b_o" [C].
// Initialisation (spec.init, init_linear in attention.h), in the order q, k, v, o: gpt2: weights
// N(0, 0.02²), W_o, which writes into the residual stream, 0.02/√(2·n_layers), biases 0;
// torch_default: weights and biases U(±1/√C) (every projection reads a C-wide input).
// Backward: that of `linear` (ops.h), adding into dx_q, dx_kv and the parameters' gradients.
#pragma once
#include "attention/attention.h"

namespace attnlab {

struct Projections {
  Param *w_q = nullptr, *w_k = nullptr, *w_v = nullptr, *w_o = nullptr;
  Param *b_q = nullptr, *b_k = nullptr, *b_v = nullptr, *b_o = nullptr;
  int C = 0, Ckv = 0;

  Projections() = default;
  Projections(const AttentionSpec& spec, int kv_width, ParamStore& store, Rng& rng);

  // Q [Nq,C], K and V [Nk,Ckv], the buffers sized to fit: what every forward starts with.
  void qkv(std::vector<float>& Q, std::vector<float>& K, std::vector<float>& V, const float* x_q,
           const float* x_kv, int Nq, int Nk) const;
  void q(float* Q, const float* x_q, int Nq) const;
  void kv(float* K, float* V, const float* x_kv, int Nk) const;
  void out(float* y, const float* O, int Nq) const;
  // dO += dy · W_o (dO may be pre-zeroed by the caller), dW_o, db_o += ...
  void out_backward(float* dO, const float* dy, const float* O, int Nq);
  // dx_q += dQ · W_q, dx_kv += dK · W_k + dV · W_v (dx_q and dx_kv may be one buffer), params += ...
  void qkv_backward(float* dx_q, float* dx_kv, const float* dQ, const float* dK, const float* dV,
                    const float* x_q, const float* x_kv, int Nq, int Nk);
};

}  // namespace attnlab
