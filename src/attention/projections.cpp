#include "attention/projections.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace attnlab {

namespace {
const float* w_or_null(const Param* p) { return p ? p->w.data() : nullptr; }
float* g_or_null(Param* p) { return p ? p->g.data() : nullptr; }
}  // namespace

Projections::Projections(const AttentionSpec& spec, int kv_width, ParamStore& store, Rng& rng)
    : C(spec.d_model), Ckv(kv_width) {
  const std::string& n = spec.name;
  w_q = store.add(n + ".w_q", {C, C}, ParamKind::weight);
  w_k = store.add(n + ".w_k", {Ckv, C}, ParamKind::weight);
  w_v = store.add(n + ".w_v", {Ckv, C}, ParamKind::weight);
  w_o = store.add(n + ".w_o", {C, C}, ParamKind::weight);
  if (spec.bias) {
    b_q = store.add(n + ".b_q", {C}, ParamKind::bias);
    b_k = store.add(n + ".b_k", {Ckv}, ParamKind::bias);
    b_v = store.add(n + ".b_v", {Ckv}, ParamKind::bias);
    b_o = store.add(n + ".b_o", {C}, ParamKind::bias);
  }
  const InitScheme s = spec.init;
  const float sd = spec.init_std;
  init_linear(w_q, b_q, C, s, rng, sd);
  init_linear(w_k, b_k, C, s, rng, sd);
  init_linear(w_v, b_v, C, s, rng, sd);
  init_linear(w_o, b_o, C, s, rng, sd / std::sqrt(2.0f * float(std::max(1, spec.n_layers))));
}

void Projections::qkv(std::vector<float>& Q, std::vector<float>& K, std::vector<float>& V, const float* x_q,
                      const float* x_kv, int Nq, int Nk) const {
  Q.resize(size_t(Nq) * C);
  K.resize(size_t(Nk) * Ckv);
  V.resize(size_t(Nk) * Ckv);
  q(Q.data(), x_q, Nq);
  kv(K.data(), V.data(), x_kv, Nk);
}

void Projections::q(float* Q, const float* x_q, int Nq) const {
  linear_forward(Q, x_q, w_q->w.data(), w_or_null(b_q), Nq, C, C);
}

void Projections::kv(float* K, float* V, const float* x_kv, int Nk) const {
  linear_forward(K, x_kv, w_k->w.data(), w_or_null(b_k), Nk, C, Ckv);
  linear_forward(V, x_kv, w_v->w.data(), w_or_null(b_v), Nk, C, Ckv);
}

void Projections::out(float* y, const float* O, int Nq) const {
  linear_forward(y, O, w_o->w.data(), w_or_null(b_o), Nq, C, C);
}

void Projections::out_backward(float* dO, const float* dy, const float* O, int Nq) {
  linear_backward(dO, w_o->g.data(), g_or_null(b_o), dy, O, w_o->w.data(), Nq, C, C);
}

void Projections::qkv_backward(float* dx_q, float* dx_kv, const float* dQ, const float* dK, const float* dV,
                               const float* x_q, const float* x_kv, int Nq, int Nk) {
  linear_backward(dx_q, w_q->g.data(), g_or_null(b_q), dQ, x_q, w_q->w.data(), Nq, C, C);
  linear_backward(dx_kv, w_k->g.data(), g_or_null(b_k), dK, x_kv, w_k->w.data(), Nk, C, Ckv);
  linear_backward(dx_kv, w_v->g.data(), g_or_null(b_v), dV, x_kv, w_v->w.data(), Nk, C, Ckv);
}

}  // namespace attnlab
