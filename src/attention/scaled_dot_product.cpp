// Scaled dot-product attention (Vaswani et al. 2017), per batch b, head h, kv head g:
//   forward   S = s·Q_h K_gᵀ + ALiBi + mask,  P = softmax_rows(S),  O_h = dropout(P) V_g
//   backward  dV_g += P̃ᵀ dO_h,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),  dQ_h = s·dS K_g,  dK_g += s·dSᵀ Q_h
// (impl flash: the tiled kernel of flash.cpp). Shapes, masks, RoPE and the cache: scaled_dot_product.h.
#include "attention/scaled_dot_product.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "cuda/cuda_attention.h"
#include "ops/attention_core.h"

namespace attnlab {

ScaledDotProductAttention::ScaledDotProductAttention(const AttentionSpec& spec, ParamStore& store,
                                                     Rng& rng)
    : Attention(spec) {
  // check_attention_spec (run by the base class) has checked heads, window, positions and impl
  D_ = spec_.d_model / H_;
  scale_ = attention_scale(spec_, D_);
  proj_ = Projections(spec_, Hkv_ * D_, store, rng);  // model.init's scheme (projections.h)
  rope_ = spec_.positions == AttnPositions::rope;
  alibi_ = spec_.positions == AttnPositions::alibi;
  if (alibi_) {
    slopes_.resize(H_);
    for (int h = 0; h < H_; h++) slopes_[h] = alibi_slope(h, H_);
  }
  if (spec_.device == AttnDevice::cuda && !cuda_available())
    user_error("attention '{}': model.device is cuda, but {} (GPU: {})", spec_.name,
               "no CUDA device is visible or this build has no CUDA (configure with -DATTNLAB_CUDA=ON)",
               cuda_device_name());
}

// The GPU kernels cover the flash path without a sliding window or ALiBi, for head dims 32/64/128.
bool ScaledDotProductAttention::cuda_call() const {
  return spec_.device == AttnDevice::cuda && spec_.window == 0 && !alibi_ && (D_ == 32 || D_ == 64 || D_ == 128);
}

namespace {
CudaAttnOptions cuda_options(float scale, bool causal, const unsigned char* keep) {
  CudaAttnOptions o;
  o.scale = scale;
  o.causal = causal;
  o.key_keep = keep;
  return o;
}
}  // namespace

namespace {
// [B,T,H·D] (head h in columns h·D .. h·D + D) -> [B,H,T,D]
void to_heads(float* dst, const float* src, int B, int T, int H, int D) {
#pragma omp parallel for collapse(2) schedule(static) if (size_t(B) * T * H * D >= (1u << 16))
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++)
        std::copy_n(src + (size_t(b) * T + t) * H * D + size_t(h) * D, D, dst + ((size_t(b) * H + h) * T + t) * D);
}
// [B,H,T,D] -> [B,T,H·D]
void from_heads(float* dst, const float* src, int B, int T, int H, int D) {
#pragma omp parallel for collapse(2) schedule(static) if (size_t(B) * T * H * D >= (1u << 16))
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++)
        std::copy_n(src + ((size_t(b) * H + h) * T + t) * D, D, dst + (size_t(b) * T + t) * H * D + size_t(h) * D);
}
}  // namespace

// naive | flash | auto for one forward (auto: flash when the call allows it and Tk is long
// enough for the tiles to pay; see kFlashAutoMinKeys)
bool ScaledDotProductAttention::use_flash(int Tk, bool train) const {
  if (spec_.impl == AttnImpl::naive) return false;
  if (spec_.impl == AttnImpl::flash) return true;
  if (train && spec_.dropout > 0.0f) return false;  // flash has no dropout on the weights
  if (keep_weights_) return false;                  // naive keeps P at no extra cost
  return Tk >= kFlashAutoMinKeys;
}

// The CPU kernel's view of the last forward: Q, O [B, Tq, C] and K, V [B, Tk, Hkv·D] in place.
FlashShape ScaledDotProductAttention::flash_shape() const {
  return FlashShape{B_, H_, Hkv_, Tq_, Tk_, D_, spec_.d_model, Hkv_ * D_};
}

FlashOptions ScaledDotProductAttention::flash_options() const {
  FlashOptions o;
  o.scale = scale_;
  o.causal = spec_.causal;
  o.window = spec_.window;
  o.key_keep = has_keep_ ? keep_.data() : nullptr;
  o.alibi_slopes = alibi_ ? slopes_.data() : nullptr;
  o.bf16 = gemm_bf16_kernel();  // train.precision: bf16 takes the kernel's products in bf16 too
  return o;
}

// Scores -> weights for one head's block P [Tq,Tk] (row stride Tk), in place. Query i is at
// absolute position i + offset, key j at j; keep is this batch row's [Tk] padding mask, or null.
void ScaledDotProductAttention::softmax_block(float* P, int Tq, int Tk, int offset, int h,
                                              const unsigned char* keep) const {
  const float slope = alibi_ ? slopes_[h] : 0.0f;
  for (int i = 0; i < Tq; i++) {
    const int p = i + offset;
    masked_softmax_row(P + size_t(i) * Tk, Tk, key_band(p, Tk, spec_.causal, spec_.window), keep, p, slope);
  }
}

void ScaledDotProductAttention::forward(float* out, const float* x_q, const float* x_kv, int B, int Tq,
                                        int Tk, const AttnMask& mask, bool train, Rng* rng) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  save_inputs(x_q, x_kv, B, Tq, Tk);
  proj_.qkv(q_, k_, v_, x_q, x_kv, B * Tq, B * Tk);
  o_.resize(size_t(B) * Tq * C);

  const int offset = Tk - Tq;  // query i is at absolute position i + offset, key j at j
  if (rope_) {
    rope_rotate(q_.data(), B, Tq, H, D, C, offset, spec_.rope_base, +1);
    rope_rotate(k_.data(), B, Tk, Hkv_, D, Ckv, 0, spec_.rope_base, +1);
  }
  last_cached_ = false;
  flash_on_ = use_flash(Tk, train);
  if (flash_on_) {
    drop_.on = false;
    has_keep_ = mask.key_keep != nullptr;
    if (has_keep_) keep_.assign(mask.key_keep, mask.key_keep + size_t(B) * Tk);
    lse_.resize(size_t(B) * H * Tq);
    cuda_on_ = cuda_call();
    if (cuda_on_) {
      // the GPU seam takes head-major inputs: copied in, out and lse copied back (docs/cuda.md)
      qh_.resize(q_.size());
      kh_.resize(k_.size());
      vh_.resize(v_.size());
      oh_.resize(o_.size());
      to_heads(qh_.data(), q_.data(), B, Tq, H, D);
      to_heads(kh_.data(), k_.data(), B, Tk, Hkv_, D);
      to_heads(vh_.data(), v_.data(), B, Tk, Hkv_, D);
      cuda_flash_forward(CudaAttnShape{B, H, Hkv_, Tq, Tk, D},
                         cuda_options(scale_, spec_.causal, has_keep_ ? keep_.data() : nullptr), qh_.data(),
                         kh_.data(), vh_.data(), oh_.data(), lse_.data());
      from_heads(o_.data(), oh_.data(), B, Tq, H, D);
    } else {
      // the CPU kernel reads Q, K, V and writes O in the projections' [B, T, C] layout
      flash_forward(o_.data(), lse_.data(), q_.data(), k_.data(), v_.data(), flash_shape(), flash_options(),
                    flash_ws_);
    }
    proj_.out(out, o_.data(), B * Tq);
    return;
  }

  p_.resize(size_t(B) * H * Tq * Tk);
  const float scale = scale_;
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
      softmax_block(P, Tq, Tk, offset, h, keep ? keep + size_t(b) * Tk : nullptr);
    }
  }

  const float* Pd = drop_.forward(p_, spec_.dropout, train, rng);  // P̃

  // O_h = P̃ V_g ; written into the head's columns of O [B,Tq,C]
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      sgemm(false, false, Tq, D, Tk, 1.0f, Pd + (size_t(b) * H + h) * Tq * Tk, Tk,
            v_.data() + size_t(b) * Tk * Ckv + g * D, Ckv, 0.0f,
            o_.data() + size_t(b) * Tq * C + h * D, C);
    }
  proj_.out(out, o_.data(), B * Tq);
}

void ScaledDotProductAttention::backward(float* dx_q, float* dx_kv, const float* dout) {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  ATTNLAB_CHECK(x_q_ != nullptr);
  do_.assign(size_t(B) * Tq * C, 0.0f);
  proj_.out_backward(do_.data(), dout, o_.data(), B * Tq);
  if (flash_on_) {
    // the kernel's backward; dK, dV summed over each group's heads
    dq_.resize(q_.size());
    dk_.resize(k_.size());
    dv_.resize(v_.size());
    if (cuda_on_) {
      doh_.resize(do_.size());
      dqh_.resize(q_.size());
      dkh_.resize(k_.size());
      dvh_.resize(v_.size());
      to_heads(doh_.data(), do_.data(), B, Tq, H, D);
      cuda_flash_backward(CudaAttnShape{B, H, Hkv_, Tq, Tk, D},
                          cuda_options(scale_, spec_.causal, has_keep_ ? keep_.data() : nullptr), qh_.data(),
                          kh_.data(), vh_.data(), oh_.data(), lse_.data(), doh_.data(), dqh_.data(), dkh_.data(),
                          dvh_.data());
      from_heads(dq_.data(), dqh_.data(), B, Tq, H, D);
      from_heads(dk_.data(), dkh_.data(), B, Tk, Hkv_, D);
      from_heads(dv_.data(), dvh_.data(), B, Tk, Hkv_, D);
    } else {
      flash_backward(dq_.data(), dk_.data(), dv_.data(), do_.data(), q_.data(), k_.data(), v_.data(), o_.data(),
                     lse_.data(), flash_shape(), flash_options(), flash_ws_);
    }
  } else {
    naive_backward();
  }

  if (rope_) {  // back through the rotations: R_pᵀ = rotation by −p
    rope_rotate(dq_.data(), B, Tq, H, D, C, Tk - Tq, spec_.rope_base, -1);
    rope_rotate(dk_.data(), B, Tk, Hkv_, D, Ckv, 0, spec_.rope_base, -1);
  }
  proj_.qkv_backward(dx_q, dx_kv, dq_.data(), dk_.data(), dv_.data(), x_q_, x_kv_, B * Tq, B * Tk);
}

// dO (in do_) -> dQ, dK, dV through the stored P (and dropout mask)
void ScaledDotProductAttention::naive_backward() {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  dq_.assign(q_.size(), 0.0f);
  dk_.assign(k_.size(), 0.0f);
  dv_.assign(v_.size(), 0.0f);
  const float* Pd = drop_.weights(p_);  // P̃

  const float scale = scale_;
  for_each_kv_group(ds_, B, H, Hkv_, Tq, Tk, [&](int b, int g, int h, float* dS) {
    const size_t kv = size_t(b) * Tk * Ckv + g * D, ph = (size_t(b) * H + h) * Tq * Tk;
    const size_t qo = size_t(b) * Tq * C + h * D;
    // dV_g += P̃ᵀ dO_h ; dS = P ⊙ (dP − rowsum(dP ⊙ P)), dP = (dO_h V_gᵀ) ⊙ dropout mask
    attention_weights_backward(dS, dv_.data() + kv, p_.data() + ph, Pd + ph, drop_, ph, do_.data() + qo,
                               v_.data() + kv, Tq, Tk, D, C, Ckv);
    // dQ_h = s · dS K_g ;  dK_g += s · dSᵀ Q_h
    sgemm(false, false, Tq, D, Tk, scale, dS, Tk, k_.data() + kv, Ckv, 0.0f, dq_.data() + qo, C);
    sgemm(true, false, Tk, D, Tq, scale, dS, Tk, q_.data() + qo, C, 1.0f, dk_.data() + kv, Ckv);
  });
}

// ---- incremental decoding -------------------------------------------------------------------

void ScaledDotProductAttention::cache_reset(int B, int capacity) {
  if (!spec_.causal)
    user_error("attention '{}': incremental decoding needs a causal self-attention slot", spec_.name);
  cache_begin(B, capacity);
  const int Ckv = Hkv_ * D_;
  kc_.resize(size_t(B) * capacity * Ckv);
  vc_.resize(size_t(B) * capacity * Ckv);
  // room for one-token steps up to the capacity, so that decoding does not allocate
  pc_.reserve(size_t(B) * H_ * capacity);
  qn_.reserve(size_t(B) * spec_.d_model);
  on_.reserve(size_t(B) * spec_.d_model);
  kn_.reserve(size_t(B) * Ckv);
  vn_.reserve(size_t(B) * Ckv);
}

// x_new [B,Tn,C] are positions L0 .. L0+Tn−1 (L0 = cache_len()). Their K, V (K rotated under
// RoPE) are appended to the cache; their queries then attend to the L = L0 + Tn cached keys with
// the causal/window band and ALiBi of the full forward, so each output row matches forward()'s.
// Cost: the projections of Tn rows, O(Tn·C²), plus O(H·Tn·L·D) for the attention, where L is
// replaced by Tn + window − 1 with a sliding window.
void ScaledDotProductAttention::forward_cached(float* out, const float* x_new, int B, int Tn) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  cache_check_step(B, Tn);
  const int L0 = cache_len_, L = L0 + Tn, cap = cache_cap_;
  // keys before k0 are outside every new query's window: the step only reads keys [k0, L), so a
  // sliding-window step costs O(window) per token instead of O(L)
  const int w = spec_.window;
  const int k0 = w > 0 ? std::max(0, L0 - w + 1) : 0, Lw = L - k0;

  proj_.qkv(qn_, kn_, vn_, x_new, x_new, B * Tn, B * Tn);
  on_.resize(size_t(B) * Tn * C);
  pc_.resize(size_t(B) * H * Tn * Lw);
  if (rope_) {
    rope_rotate(qn_.data(), B, Tn, H, D, C, L0, spec_.rope_base, +1);
    rope_rotate(kn_.data(), B, Tn, Hkv_, D, Ckv, L0, spec_.rope_base, +1);
  }
  for (int b = 0; b < B; b++) {
    std::copy_n(kn_.data() + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, kc_.data() + (size_t(b) * cap + L0) * Ckv);
    std::copy_n(vn_.data() + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, vc_.data() + (size_t(b) * cap + L0) * Ckv);
  }

  const float scale = scale_;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      float* P = pc_.data() + (size_t(b) * H + h) * Tn * Lw;
      const float* Kg = kc_.data() + (size_t(b) * cap + k0) * Ckv + g * D;
      const float* Vg = vc_.data() + (size_t(b) * cap + k0) * Ckv + g * D;
      sgemm(false, true, Tn, Lw, D, scale, qn_.data() + size_t(b) * Tn * C + h * D, C, Kg, Ckv, 0.0f, P, Lw);
      // new query i is at position L0 + i, block key j at k0 + j: only their difference matters
      softmax_block(P, Tn, Lw, L0 - k0, h, nullptr);
      sgemm(false, false, Tn, D, Lw, 1.0f, P, Lw, Vg, Ckv, 0.0f, on_.data() + size_t(b) * Tn * C + h * D, C);
    }
  proj_.out(out, on_.data(), B * Tn);
  cache_len_ = L;
  last_cached_ = true;
  cached_k0_ = k0;
  cached_Tn_ = Tn;
}

std::vector<float> ScaledDotProductAttention::attention_weights() const {
  if (!keep_weights_) return {};
  if (!last_cached_ && flash_on_) {  // recomputed from Q, K and the saved log-sum-exp
    std::vector<float> w(size_t(B_) * H_ * Tq_ * Tk_);
    if (cuda_on_)
      flash_weights(w.data(), qh_.data(), kh_.data(), lse_.data(), FlashShape{B_, H_, Hkv_, Tq_, Tk_, D_},
                    flash_options());
    else
      flash_weights(w.data(), q_.data(), k_.data(), lse_.data(), flash_shape(), flash_options());
    return w;
  }
  if (!last_cached_) return p_;
  // the step computed keys [k0, L) only; the weights of keys before k0 are 0
  const int Tn = cached_Tn_, L = cache_len_, k0 = cached_k0_, Lw = L - k0;
  std::vector<float> w(size_t(cache_B_) * H_ * Tn * L, 0.0f);
  for (size_t r = 0; r < size_t(cache_B_) * H_ * Tn; r++)
    std::copy_n(pc_.data() + r * Lw, Lw, w.data() + r * L + k0);
  return w;
}

}  // namespace attnlab

namespace attnlab {
std::unique_ptr<Attention> make_scaled_dot_product(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<ScaledDotProductAttention>(spec, store, rng);
}
}  // namespace attnlab
