// Differential attention (Ye et al. 2024, "Differential Transformer", arXiv 2410.05258):
//
//   DiffAttn(X) = (softmax(s·Q₁K₁ᵀ) − λ·softmax(s·Q₂K₂ᵀ)) V
//   λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init,   λ_init = 0.8 − 0.6·exp(−0.3·layer_index)
//   head_h = (1 − λ_init) · RMSNorm(DiffAttn_h),     out = concat(heads) W_oᵀ + b_o
// Backward: dD̃ = dO Vᵀ, dD = dD̃ ⊙ m (one dropout mask for D), dλ = −Σ A₂ ⊙ dD, and each map's softmax backward with dA₁ = dD,
// dA₂ = −λ·dD. The shapes and the full derivation are in differential.h; docs/attention.md has
// the write-up.
#include "attention/differential.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "core/error.h"
#include "core/gemm.h"
#include "ops/attention_core.h"

namespace attnlab {

namespace {
void init_normal(Param* p, Rng& rng, float std) {
  for (auto& x : p->w) x = std * rng.normal();
}
// Below this much work a loop runs on one thread: on tiny problems (tests, short decoding steps)
// the cost of waking the team exceeds the work. Tasks are independent, so results are the same.
constexpr long kParallelMin = 1 << 14;
}  // namespace

float DifferentialAttention::lambda_init_for(int layer_index) {
  return float(0.8 - 0.6 * std::exp(-0.3 * double(layer_index)));
}

DifferentialAttention::DifferentialAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng,
                                             bool headwise_norm)
    : Attention(spec), norm_(headwise_norm) {
  // check_attention_spec (run by the base class) has checked heads, halves, positions, window
  d_ = spec_.d_model / (2 * H_);
  scale_ = attention_scale(spec_, d_);
  lambda_init_ = lambda_init_for(spec_.layer_index);
  Ckv_ = Hkv_ * 2 * d_;
  const std::string& n = spec_.name;
  proj_ = Projections(spec_, Ckv_, store, rng);
  // λ vectors: few scalars that set an offset of λ, so like biases they get no weight decay
  lq1_ = store.add(n + ".lambda_q1", {d_}, ParamKind::bias);
  lk1_ = store.add(n + ".lambda_k1", {d_}, ParamKind::bias);
  lq2_ = store.add(n + ".lambda_q2", {d_}, ParamKind::bias);
  lk2_ = store.add(n + ".lambda_k2", {d_}, ParamKind::bias);
  norm_w_ = norm_ ? store.add(n + ".norm_w", {2 * d_}, ParamKind::norm) : nullptr;

  // The projections were initialised by Projections (model.init's scheme); the λ vectors
  // N(0, 0.1²) and the norm weight 1 under every scheme, as in the paper's code.
  init_normal(lq1_, rng, 0.1f);
  init_normal(lk1_, rng, 0.1f);
  init_normal(lq2_, rng, 0.1f);
  init_normal(lk2_, rng, 0.1f);
  if (norm_w_) std::fill(norm_w_->w.begin(), norm_w_->w.end(), 1.0f);
}

float DifferentialAttention::lambda() const {
  double s1 = 0.0, s2 = 0.0;
  for (int i = 0; i < d_; i++) {
    s1 += double(lq1_->w[i]) * lk1_->w[i];
    s2 += double(lq2_->w[i]) * lk2_->w[i];
  }
  return float(std::exp(s1) - std::exp(s2) + double(lambda_init_));
}

// Both softmax maps of one (b, h): A[c] = softmax(s·Q_c K_cᵀ + M), c = 0, 1.
void DifferentialAttention::maps(float* A, const float* Qh, int ldq, const float* Kg, int ldk, int Tq, int Tk,
                                 int pos0, bool causal, const unsigned char* keep) const {
  for (int c = 0; c < 2; c++) {
    float* P = A + size_t(c) * Tq * Tk;
    sgemm(false, true, Tq, Tk, d_, scale_, Qh + c * d_, ldq, Kg + c * d_, ldk, 0.0f, P, Tk);
    for (int i = 0; i < Tq; i++) {
      const int p = pos0 + i;
      masked_softmax_row(P + size_t(i) * Tk, Tk, key_band(p, Tk, causal, spec_.window), keep, p, 0.0f);
    }
  }
}

// Y_h = (1 − λ_init)·w ⊙ O_h·r, r = 1/√(mean(O_h²) + ε), per row and head; or Y = O without norm.
void DifferentialAttention::norm_forward(float* Y, float* rstd, const float* O, int N) const {
  const int H = H_, D2 = 2 * d_, C = spec_.d_model;
  const float gain = 1.0f - lambda_init_;
#pragma omp parallel for schedule(static) if (long(N) * C >= kParallelMin)
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      const float* x = O + size_t(n) * C + h * D2;
      float* y = Y + size_t(n) * C + h * D2;
      if (!norm_) {
        std::copy_n(x, D2, y);
        rstd[size_t(n) * H + h] = 1.0f;
        continue;
      }
      float ss = 0.0f;
      for (int j = 0; j < D2; j++) ss += x[j] * x[j];
      const float r = 1.0f / std::sqrt(ss / float(D2) + kEps);
      rstd[size_t(n) * H + h] = r;
      const float* w = norm_w_->w.data();
      for (int j = 0; j < D2; j++) y[j] = gain * w[j] * (x[j] * r);
    }
}

void DifferentialAttention::forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
                                    const AttnMask& mask, bool train, Rng* rng) {
  const int C = spec_.d_model, Ckv = Ckv_, H = H_, D2 = 2 * d_;
  const int group = H_ / Hkv_;
  save_inputs(x_q, x_kv, B, Tq, Tk);
  proj_.qkv(q_, k_, v_, x_q, x_kv, B * Tq, B * Tk);
  const size_t TT = size_t(Tq) * Tk;
  a_.resize(size_t(B) * H * 2 * TT);
  diff_.resize(size_t(B) * H * TT);
  o_.resize(size_t(B) * Tq * C);
  y_.resize(size_t(B) * Tq * C);
  rstd_.resize(size_t(B) * Tq * H);
  const int qpos0 = Tk - Tq;  // queries are aligned to the end of the keys (as the causal mask)
  if (spec_.positions == AttnPositions::rope) {
    // every d-wide half is one rotary "head": Q is [B,Tq,2H,d], K is [B,Tk,2Hkv,d]
    rope_rotate(q_.data(), B, Tq, 2 * H, d_, C, qpos0, spec_.rope_base, +1);
    rope_rotate(k_.data(), B, Tk, 2 * Hkv_, d_, Ckv, 0, spec_.rope_base, +1);
  }
  {
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < d_; i++) {
      s1 += double(lq1_->w[i]) * lk1_->w[i];
      s2 += double(lq2_->w[i]) * lk2_->w[i];
    }
    e1_ = float(std::exp(s1));
    e2_ = float(std::exp(s2));
    lambda_ = float(std::exp(s1) - std::exp(s2) + double(lambda_init_));
  }

  const unsigned char* keep = mask.key_keep;
  const long work = long(B) * H * long(TT) * D2;  // multiply-adds of the scores (and of D·V)
#pragma omp parallel for collapse(2) schedule(static) if (work >= kParallelMin)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      maps(a_.data() + (size_t(b) * H + h) * 2 * TT, q_.data() + size_t(b) * Tq * C + h * D2, C,
           k_.data() + size_t(b) * Tk * Ckv + g * D2, Ckv, Tq, Tk, qpos0, spec_.causal,
           keep ? keep + size_t(b) * Tk : nullptr);
    }

  // D = A₁ − λA₂, then dropout on D: one mask m shared by the two maps (m⊙A₁ − λ·m⊙A₂ = m⊙D), so
  // a dropped position is dropped from both and the subtraction still cancels what they share
  const float lam = lambda_;
  for (size_t bh = 0; bh < size_t(B) * H; bh++) {
    const float* A1 = a_.data() + bh * 2 * TT;
    const float* A2 = A1 + TT;
    float* Dm = diff_.data() + bh * TT;
    for (size_t i = 0; i < TT; i++) Dm[i] = A1[i] - lam * A2[i];
  }
  const float* Dd = drop_.forward(diff_, spec_.dropout, train, rng);  // D̃

  // O_h = D̃ V_g into the head's 2d columns of O [B,Tq,C]
#pragma omp parallel for collapse(2) schedule(static) if (work >= kParallelMin)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      sgemm(false, false, Tq, D2, Tk, 1.0f, Dd + (size_t(b) * H + h) * TT, Tk,
            v_.data() + size_t(b) * Tk * Ckv + g * D2, Ckv, 0.0f, o_.data() + size_t(b) * Tq * C + h * D2, C);
    }
  norm_forward(y_.data(), rstd_.data(), o_.data(), B * Tq);
  proj_.out(out, y_.data(), B * Tq);
}

void DifferentialAttention::backward(float* dx_q, float* dx_kv, const float* dout) {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Ckv_, H = H_, D2 = 2 * d_;
  const int group = H_ / Hkv_;
  const size_t TT = size_t(Tq) * Tk;
  ATTNLAB_CHECK(x_q_ != nullptr);
  dy_.assign(size_t(B) * Tq * C, 0.0f);
  do_.resize(dy_.size());
  dq_.assign(q_.size(), 0.0f);
  dk_.assign(k_.size(), 0.0f);
  dv_.assign(v_.size(), 0.0f);

  proj_.out_backward(dy_.data(), dout, y_.data(), B * Tq);

  // RMSNorm backward: G = (1 − λ_init)·dY ; dO = r·w⊙G − r³·O·Σ(w⊙G⊙O)/(2d)
  const int N = B * Tq;
  if (!norm_) {
    std::copy(dy_.begin(), dy_.end(), do_.begin());
  } else {
    const float gain = 1.0f - lambda_init_;
    const float* w = norm_w_->w.data();
#pragma omp parallel for schedule(static) if (long(N) * C >= kParallelMin)
    for (int n = 0; n < N; n++)
      for (int h = 0; h < H; h++) {
        const size_t off = size_t(n) * C + h * D2;
        const float* x = o_.data() + off;
        const float* dy = dy_.data() + off;
        float* dx = do_.data() + off;
        const float r = rstd_[size_t(n) * H + h];
        float dot = 0.0f;
        for (int j = 0; j < D2; j++) dot += w[j] * dy[j] * x[j];
        const float c = gain * r * r * r * dot / float(D2);
        for (int j = 0; j < D2; j++) dx[j] = gain * r * w[j] * dy[j] - c * x[j];
      }
    // dw += Σ_rows (1 − λ_init)·r·O⊙dY, serially (fixed order, bitwise deterministic)
    float* dw = norm_w_->g.data();
    for (int n = 0; n < N; n++)
      for (int h = 0; h < H; h++) {
        const size_t off = size_t(n) * C + h * D2;
        const float gr = gain * rstd_[size_t(n) * H + h];
        for (int j = 0; j < D2; j++) dw[j] += gr * o_[off + j] * dy_[off + j];
      }
  }

  const float* Dd = drop_.weights(diff_);  // D̃
  const float lam = lambda_;
  const float scale = scale_;
  ds_.resize(size_t(B) * Hkv_ * 3 * TT);
  dlam_.assign(size_t(B) * H, 0.0);
  // one (b, kv head) pair per task, so dK_g and dV_g are written by one thread only
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * H * long(TT) * D2 >= kParallelMin)
  for (int b = 0; b < B; b++)
    for (int g = 0; g < Hkv_; g++) {
      float* dD = ds_.data() + (size_t(b) * Hkv_ + g) * 3 * TT;
      float* dS[2] = {dD + TT, dD + 2 * TT};
      const float* Vg = v_.data() + size_t(b) * Tk * Ckv + g * D2;
      const float* Kg = k_.data() + size_t(b) * Tk * Ckv + g * D2;
      float* dVg = dv_.data() + size_t(b) * Tk * Ckv + g * D2;
      float* dKg = dk_.data() + size_t(b) * Tk * Ckv + g * D2;
      for (int h = g * group; h < (g + 1) * group; h++) {
        const size_t bh = size_t(b) * H + h;
        const float* A = a_.data() + bh * 2 * TT;  // A₁, A₂
        const float* Dm = Dd + bh * TT;            // D̃
        const float* dOh = do_.data() + size_t(b) * Tq * C + h * D2;
        const float* Qh = q_.data() + size_t(b) * Tq * C + h * D2;
        float* dQh = dq_.data() + size_t(b) * Tq * C + h * D2;
        // dV_g += D̃ᵀ dO_h ;  dD̃ = dO_h V_gᵀ ;  dD = dD̃ ⊙ m
        pv_backward(dD, dVg, Dm, dOh, Vg, Tq, Tk, D2, C, Ckv);
        drop_.backward(dD, bh * TT, TT);
        // dλ = −Σ A₂ ⊙ dD ;  dA₁ = dD ;  dA₂ = −λ·dD
        double dl = 0.0;
        for (size_t i = 0; i < TT; i++) dl -= double(A[TT + i]) * dD[i];
        dlam_[bh] = dl;
        for (size_t i = 0; i < TT; i++) {
          dS[0][i] = dD[i];
          dS[1][i] = -lam * dD[i];
        }
        for (int c = 0; c < 2; c++) {
          // dS = A ⊙ (dA − rowsum(dA ⊙ A)), in place
          softmax_backward_rows(dS[c], A + c * TT, Tq, Tk);
          // dQ_c = s·dS K_c ;  dK_c += s·dSᵀ Q_c
          sgemm(false, false, Tq, d_, Tk, scale, dS[c], Tk, Kg + c * d_, Ckv, 0.0f, dQh + c * d_, C);
          sgemm(true, false, Tk, d_, Tq, scale, dS[c], Tk, Qh + c * d_, C, 1.0f, dKg + c * d_, Ckv);
        }
      }
    }

  // λ = e₁ − e₂ + λ_init, e_c = exp(λ_qc·λ_kc)
  double dlam = 0.0;
  for (double v : dlam_) dlam += v;
  const float g1 = float(dlam * double(e1_)), g2 = float(dlam * double(e2_));
  for (int i = 0; i < d_; i++) {
    lq1_->g[i] += g1 * lk1_->w[i];
    lk1_->g[i] += g1 * lq1_->w[i];
    lq2_->g[i] -= g2 * lk2_->w[i];
    lk2_->g[i] -= g2 * lq2_->w[i];
  }

  if (spec_.positions == AttnPositions::rope) {  // the backward of a rotation is the inverse rotation
    rope_rotate(dq_.data(), B, Tq, 2 * H, d_, C, Tk - Tq, spec_.rope_base, -1);
    rope_rotate(dk_.data(), B, Tk, 2 * Hkv_, d_, Ckv, 0, spec_.rope_base, -1);
  }
  proj_.qkv_backward(dx_q, dx_kv, dq_.data(), dk_.data(), dv_.data(), x_q_, x_kv_, B * Tq, B * Tk);
}

std::vector<float> DifferentialAttention::attention_weights() const {
  if (!keep_weights_) return {};
  const size_t TT = size_t(Tq_) * Tk_;
  std::vector<float> w(size_t(B_) * H_ * TT);
  for (size_t bh = 0; bh < size_t(B_) * H_; bh++) {
    const float* A1 = a_.data() + bh * 2 * TT;
    for (size_t i = 0; i < TT; i++) w[bh * TT + i] = A1[i] - lambda_ * A1[TT + i];
  }
  return w;
}

// ---- incremental decoding ----

void DifferentialAttention::cache_reset(int B, int capacity) {
  cache_begin(B, capacity);
  kc_.resize(size_t(B) * capacity * Ckv_);
  vc_.resize(size_t(B) * capacity * Ckv_);
  // room for one-token steps up to the capacity, so decoding does not allocate as the prefix grows
  ca_.reserve(size_t(B) * H_ * 2 * capacity);
  cd_.reserve(size_t(B) * H_ * capacity);
}

void DifferentialAttention::forward_cached(float* out, const float* x_new, int B, int Tn) {
  const int C = spec_.d_model, Ckv = Ckv_, H = H_, D2 = 2 * d_, cap = cache_cap_;
  const int group = H_ / Hkv_;
  cache_check_step(B, Tn);
  const int L = cache_len_, Tk = L + Tn;
  const size_t TT = size_t(Tn) * Tk;
  cq_.resize(size_t(B) * Tn * C);
  ck_.resize(size_t(B) * Tn * Ckv * 2);  // new K then new V
  float* kn = ck_.data();
  float* vn = ck_.data() + size_t(B) * Tn * Ckv;
  proj_.q(cq_.data(), x_new, B * Tn);
  proj_.kv(kn, vn, x_new, B * Tn);
  if (spec_.positions == AttnPositions::rope) {
    rope_rotate(cq_.data(), B, Tn, 2 * H, d_, C, L, spec_.rope_base, +1);
    rope_rotate(kn, B, Tn, 2 * Hkv_, d_, Ckv, L, spec_.rope_base, +1);
  }
  for (int b = 0; b < B; b++) {
    std::copy_n(kn + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, kc_.data() + (size_t(b) * cap + L) * Ckv);
    std::copy_n(vn + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, vc_.data() + (size_t(b) * cap + L) * Ckv);
  }
  const float lam = lambda();
  ca_.resize(size_t(B) * H * 2 * TT);
  cd_.resize(size_t(B) * H * TT);
  co_.resize(size_t(B) * Tn * C);
  cy_.resize(co_.size());
  crstd_.resize(size_t(B) * Tn * H);
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * H * long(TT) * D2 >= kParallelMin)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      float* A = ca_.data() + (size_t(b) * H + h) * 2 * TT;
      maps(A, cq_.data() + size_t(b) * Tn * C + h * D2, C, kc_.data() + size_t(b) * cap * Ckv + g * D2, Ckv, Tn,
           Tk, L, /*causal=*/true, nullptr);
      float* Dm = cd_.data() + (size_t(b) * H + h) * TT;
      for (size_t i = 0; i < TT; i++) Dm[i] = A[i] - lam * A[TT + i];
      sgemm(false, false, Tn, D2, Tk, 1.0f, Dm, Tk, vc_.data() + size_t(b) * cap * Ckv + g * D2, Ckv, 0.0f,
            co_.data() + size_t(b) * Tn * C + h * D2, C);
    }
  norm_forward(cy_.data(), crstd_.data(), co_.data(), B * Tn);
  proj_.out(out, cy_.data(), B * Tn);
  cache_len_ = Tk;
}

std::unique_ptr<Attention> make_differential(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<DifferentialAttention>(spec, store, rng, spec.diff_norm);
}

}  // namespace attnlab
