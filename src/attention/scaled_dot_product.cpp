#include "attention/scaled_dot_product.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/gemm.h"
#include "ops/ops.h"

namespace attnlab {

namespace {
void init_normal(Param* p, Rng& rng, float std) {
  for (auto& x : p->w) x = std * rng.normal();
}
}  // namespace

ScaledDotProductAttention::ScaledDotProductAttention(const AttentionSpec& spec, ParamStore& store,
                                                     Rng& rng)
    : Attention(spec) {
  const int C = spec_.d_model;
  H_ = spec_.n_heads;
  if (spec_.n_kv_heads < 0) user_error("attention '{}': n_kv_heads must be ≥ 0, got {}", spec_.name, spec_.n_kv_heads);
  Hkv_ = spec_.n_kv_heads > 0 ? spec_.n_kv_heads : H_;
  if (C <= 0 || H_ <= 0 || C % H_ != 0)
    user_error("attention '{}': d_model ({}) must be a positive multiple of n_heads ({})", spec_.name, C, H_);
  if (H_ % Hkv_ != 0)
    user_error("attention '{}': n_heads ({}) must be a multiple of n_kv_heads ({})", spec_.name, H_, Hkv_);
  D_ = C / H_;
  scale_ = attention_scale(spec_, D_);
  const int Ckv = Hkv_ * D_;
  const std::string& n = spec_.name;
  w_q_ = store.add(n + ".w_q", {C, C}, ParamKind::weight);
  w_k_ = store.add(n + ".w_k", {Ckv, C}, ParamKind::weight);
  w_v_ = store.add(n + ".w_v", {Ckv, C}, ParamKind::weight);
  w_o_ = store.add(n + ".w_o", {C, C}, ParamKind::weight);
  b_q_ = b_k_ = b_v_ = b_o_ = nullptr;
  if (spec_.bias) {
    b_q_ = store.add(n + ".b_q", {C}, ParamKind::bias);
    b_k_ = store.add(n + ".b_k", {Ckv}, ParamKind::bias);
    b_v_ = store.add(n + ".b_v", {Ckv}, ParamKind::bias);
    b_o_ = store.add(n + ".b_o", {C}, ParamKind::bias);
  }
  // GPT-2 initialisation: N(0, 0.02); the output projection feeds the residual
  // stream and is scaled by 1/√(2·n_layers).
  init_normal(w_q_, rng, 0.02f);
  init_normal(w_k_, rng, 0.02f);
  init_normal(w_v_, rng, 0.02f);
  init_normal(w_o_, rng, 0.02f / std::sqrt(2.0f * float(std::max(1, spec_.n_layers))));
}

static const float* data_or_null(const Param* p) { return p ? p->w.data() : nullptr; }
static float* grad_or_null(Param* p) { return p ? p->g.data() : nullptr; }

void ScaledDotProductAttention::forward(float* out, const float* x_q, const float* x_kv, int B, int Tq,
                                        int Tk, const AttnMask& mask, bool train, Rng* rng) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  x_q_ = x_q;
  x_kv_ = x_kv;
  B_ = B;
  Tq_ = Tq;
  Tk_ = Tk;
  q_.resize(size_t(B) * Tq * C);
  k_.resize(size_t(B) * Tk * Ckv);
  v_.resize(size_t(B) * Tk * Ckv);
  p_.resize(size_t(B) * H * Tq * Tk);
  o_.resize(size_t(B) * Tq * C);
  linear_forward(q_.data(), x_q, w_q_->w.data(), data_or_null(b_q_), B * Tq, C, C);
  linear_forward(k_.data(), x_kv, w_k_->w.data(), data_or_null(b_k_), B * Tk, C, Ckv);
  linear_forward(v_.data(), x_kv, w_v_->w.data(), data_or_null(b_v_), B * Tk, C, Ckv);

  const bool causal = spec_.causal;
  const int offset = Tk - Tq;  // causal alignment: query i sees keys j <= i + offset
  const float scale = scale_;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const unsigned char* keep = mask.key_keep;

  // scores and softmax, one (b, h) pair per task
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      float* P = p_.data() + (size_t(b) * H + h) * Tq * Tk;
      // S = s · Q_h K_gᵀ : rows of Q_h have stride C, rows of K_g stride Ckv
      sgemm(false, true, Tq, Tk, D, scale, q_.data() + size_t(b) * Tq * C + h * D, C,
            k_.data() + size_t(b) * Tk * Ckv + g * D, Ckv, 0.0f, P, Tk);
      for (int i = 0; i < Tq; i++) {
        float* row = P + size_t(i) * Tk;
        const int jmax = causal ? std::min(Tk, i + offset + 1) : Tk;  // keys [0, jmax) allowed
        float mx = neg_inf;
        for (int j = 0; j < Tk; j++) {
          const bool ok = j < jmax && (!keep || keep[size_t(b) * Tk + j]);
          if (!ok) row[j] = neg_inf;
          else mx = std::max(mx, row[j]);
        }
        if (mx == neg_inf) {  // nothing to attend to
          std::fill(row, row + Tk, 0.0f);
          continue;
        }
        float sum = 0.0f;
        for (int j = 0; j < Tk; j++) {
          const float e = row[j] == neg_inf ? 0.0f : std::exp(row[j] - mx);
          row[j] = e;
          sum += e;
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < Tk; j++) row[j] *= inv;
      }
    }
  }

  // dropout on the weights: the mask is drawn serially so it does not depend on threads
  dropout_on_ = train && spec_.dropout > 0.0f;
  const float* Pd = p_.data();
  if (dropout_on_) {
    ATTNLAB_CHECK(rng != nullptr);
    drop_.resize(p_.size());
    pdrop_.resize(p_.size());
    dropout_forward(pdrop_.data(), drop_.data(), p_.data(), p_.size(), spec_.dropout, *rng);
    Pd = pdrop_.data();
  }

  // O_h = P̃ V_g ; written into the head's columns of O [B,Tq,C]
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      sgemm(false, false, Tq, D, Tk, 1.0f, Pd + (size_t(b) * H + h) * Tq * Tk, Tk,
            v_.data() + size_t(b) * Tk * Ckv + g * D, Ckv, 0.0f,
            o_.data() + size_t(b) * Tq * C + h * D, C);
    }
  linear_forward(out, o_.data(), w_o_->w.data(), data_or_null(b_o_), B * Tq, C, C);
}

void ScaledDotProductAttention::backward(float* dx_q, float* dx_kv, const float* dout) {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  ATTNLAB_CHECK(x_q_ != nullptr);
  do_.assign(size_t(B) * Tq * C, 0.0f);
  dq_.assign(q_.size(), 0.0f);
  dk_.assign(k_.size(), 0.0f);
  dv_.assign(v_.size(), 0.0f);
  const float* Pd = dropout_on_ ? pdrop_.data() : p_.data();  // P̃

  linear_backward(do_.data(), w_o_->g.data(), grad_or_null(b_o_), dout, o_.data(), w_o_->w.data(),
                  B * Tq, C, C);

  const float scale = scale_;
  // one (b, kv head) pair per task, so dK_g and dV_g are written by one thread only
  ds_.resize(size_t(B) * Hkv_ * Tq * Tk);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int g = 0; g < Hkv_; g++) {
      float* dP = ds_.data() + (size_t(b) * Hkv_ + g) * Tq * Tk;
      const float* Vg = v_.data() + size_t(b) * Tk * Ckv + g * D;
      const float* Kg = k_.data() + size_t(b) * Tk * Ckv + g * D;
      float* dVg = dv_.data() + size_t(b) * Tk * Ckv + g * D;
      float* dKg = dk_.data() + size_t(b) * Tk * Ckv + g * D;
      for (int h = g * group; h < (g + 1) * group; h++) {
        const size_t ph = (size_t(b) * H + h) * Tq * Tk;
        const float* P = p_.data() + ph;
        const float* dOh = do_.data() + size_t(b) * Tq * C + h * D;
        // dV_g += P̃ᵀ dO_h
        sgemm(true, false, Tk, D, Tq, 1.0f, Pd + ph, Tk, dOh, C, 1.0f, dVg, Ckv);
        // dP̃ = dO_h V_gᵀ
        sgemm(false, true, Tq, Tk, D, 1.0f, dOh, C, Vg, Ckv, 0.0f, dP, Tk);
        if (dropout_on_) {
          const float* m = drop_.data() + ph;
          for (size_t i = 0; i < size_t(Tq) * Tk; i++) dP[i] *= m[i];
        }
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place
        for (int i = 0; i < Tq; i++) {
          float* r = dP + size_t(i) * Tk;
          const float* pr = P + size_t(i) * Tk;
          float dot = 0.0f;
          for (int j = 0; j < Tk; j++) dot += r[j] * pr[j];
          for (int j = 0; j < Tk; j++) r[j] = pr[j] * (r[j] - dot);
        }
        // dQ_h = s · dS K_g ;  dK_g += s · dSᵀ Q_h
        sgemm(false, false, Tq, D, Tk, scale, dP, Tk, Kg, Ckv, 0.0f,
              dq_.data() + size_t(b) * Tq * C + h * D, C);
        sgemm(true, false, Tk, D, Tq, scale, dP, Tk, q_.data() + size_t(b) * Tq * C + h * D, C, 1.0f,
              dKg, Ckv);
      }
    }

  linear_backward(dx_q, w_q_->g.data(), grad_or_null(b_q_), dq_.data(), x_q_, w_q_->w.data(), B * Tq,
                  C, C);
  linear_backward(dx_kv, w_k_->g.data(), grad_or_null(b_k_), dk_.data(), x_kv_, w_k_->w.data(),
                  B * Tk, C, Ckv);
  linear_backward(dx_kv, w_v_->g.data(), grad_or_null(b_v_), dv_.data(), x_kv_, w_v_->w.data(),
                  B * Tk, C, Ckv);
}

std::vector<float> ScaledDotProductAttention::attention_weights() const {
  return keep_weights_ ? p_ : std::vector<float>{};
}

}  // namespace attnlab

namespace attnlab {
std::unique_ptr<Attention> make_scaled_dot_product(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<ScaledDotProductAttention>(spec, store, rng);
}
}  // namespace attnlab
