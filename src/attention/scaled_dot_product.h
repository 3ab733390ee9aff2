// Scaled dot-product multi-head attention (Vaswani et al. 2017, "Attention Is
// All You Need", section 3.2), with grouped KV heads (Ainslie et al. 2023),
// a sliding window, RoPE or ALiBi positions, and a KV cache for decoding.
//
//   Q = x_q W_qᵀ + b_q      [B,Tq,H·D]
//   K = x_kv W_kᵀ + b_k     [B,Tk,Hkv·D]
//   V = x_kv W_vᵀ + b_v     [B,Tk,Hkv·D]
//   RoPE (positions: rope, Su et al. 2021): Q ← R_p Q, K ← R_r K, every head's interleaved pairs
//     rotated by the row's absolute position (positions.h)
//   per batch b and head h (kv head g = h / (H/Hkv)):
//     S = s · Q_h K_gᵀ + A_h + M [Tq,Tk]   (s = 1/√D by default)
//         A_h[i,j] = −m_h·|p_i − j|   ALiBi only (positions: alibi, Press et al. 2022)
//         M = −inf where masked (causal, window, key padding), else 0
//     P = softmax_rows(S)
//     O_h = dropout(P) V_g       [Tq,D]
//   out = O W_oᵀ + b_o       [B,Tq,C]
//
// Positions: query i is at absolute position p_i = i + (Tk − Tq) and key j at j (aligned to
// the end, so Tq < Tk continues a prefix). Query i may see key j iff
//   causal:           j ≤ p_i                       and, with window w > 0, p_i − w < j
//   not causal:       any j                         and, with window w > 0, |p_i − j| < w
//   and the key is not padding. Every case is one contiguous band [lo, hi) of keys per row, plus
//   the padding mask. A fully masked row yields zero weights and zero output.
// ALiBi's bias is −m_h·(p − j) as in the paper for the causal mask (p − j ≥ 0 there); for a
// non-causal slot we use the symmetric −m_h·|p − j| (the paper defines only the causal form;
// −m_h·(p − j) would, after the softmax's shift invariance, just favour later keys).
//
// Backward (per b, h; ⊙ elementwise, P̃ = dropout(P)):
//     dP̃ = dO_h V_gᵀ ;  dV_g += P̃ᵀ dO_h ;  dP = dP̃ ⊙ mask/(1-p)
//     dS = P ⊙ (dP − rowsum(dP ⊙ P))              (softmax backward; A_h and M are constants)
//     dQ_h = s · dS K_g ;  dK_g += s · dSᵀ Q_h     (rotated Q, K under RoPE)
//     RoPE: dQ ← R_pᵀ dQ, dK ← R_rᵀ dK (rotation by −p) before the projections' backward.
//
// KV cache (cache_reset / forward_cached): K (rotated) and V of every position so far, in
// [B, capacity, Hkv·D] buffers, i.e. 2·Hkv·D floats per token; a step of Tn new tokens over L
// cached + new positions costs O(B·H·Tn·L·D) for the attention (L → Tn + window − 1 with a
// sliding window: older keys are skipped) plus the projections of Tn rows, O(B·Tn·C²).
// Memory: O(B·H·Tq·Tk) for P.
//
// Implementations (spec.impl): `naive` materialises S and P as above; `flash` runs the tiled
// kernel of flash.h on head-major copies of Q, K, V (same masks, positions and GQA mapping,
// O((Tq + Tk)·C) memory, the log-sum-exp saved instead of P, P recomputed in the backward and
// for attention_weights()); `auto` takes flash when the call allows it (no attention dropout in
// training, keep_weights off) and Tk ≥ kFlashAutoMinKeys. The registry type `flash` is this
// module with impl forced to flash. forward_cached always runs the naive step.
#pragma once
#include "attention/attention.h"
#include "attention/flash.h"
#include "attention/projections.h"
#include "attention/variants.h"
#include "ops/attention_core.h"

namespace attnlab {

// impl auto: flash from this many keys on. Measured on the module (B = 8, 4 heads, fwd+bwd,
// 2 threads, a shared 2-core machine, so rough): with D = 32 naive/flash time was 0.86-0.97 at
// T = 64..128 and 1.08 at T = 256 (1.24-1.38 at 512); flash always needs less memory.
constexpr int kFlashAutoMinKeys = 256;

class ScaledDotProductAttention : public Attention {
 public:
  ScaledDotProductAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
  void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
               const AttnMask& mask, bool train, Rng* rng) override;
  void backward(float* dx_q, float* dx_kv, const float* dout) override;
  void cache_reset(int B, int capacity) override;
  void forward_cached(float* out, const float* x_new, int B, int Tn) override;
  std::vector<std::vector<float>*> cache_buffers() override { return {&kc_, &vc_}; }
  // Weights of the last forward() [B,H,Tq,Tk], or of the last forward_cached() [B,H,Tn,L]
  // (L = cache_len() after the step), if keep_weights(true).
  std::vector<float> attention_weights() const override;
  // Whether the last forward() ran the flash kernel (for tests and benchmarks).
  bool last_forward_flash() const { return flash_on_; }
  // Gradients of the last backward() w.r.t. Q, K and V, the projections' outputs ([B,Tq,H·D],
  // [B,Tk,Hkv·D], [B,Tk,Hkv·D]; under RoPE w.r.t. the unrotated ones): what experiment E1
  // compares between impl naive and impl flash.
  const std::vector<float>& grad_q() const { return dq_; }
  const std::vector<float>& grad_k() const { return dk_; }
  const std::vector<float>& grad_v() const { return dv_; }

 private:
  // scores -> weights for the Tq×Tk block P of head h (in place; see the mask rules above)
  void softmax_block(float* P, int Tq, int Tk, int offset, int h, const unsigned char* keep) const;
  bool use_flash(int Tk, bool train) const;  // the impl this forward takes
  void naive_backward();                     // do_ -> dq_, dk_, dv_ through the stored P
  FlashOptions flash_options() const;       // masks/positions for the flash kernel
  FlashShape flash_shape() const;           // the last forward's shape, read in place (CPU)

  int D_;
  float scale_;
  bool rope_ = false, alibi_ = false;
  std::vector<float> slopes_;  // ALiBi slope per query head
  Projections proj_;  // W_q, W_k, W_v, W_o and biases
  std::vector<float> q_, k_, v_, p_, o_;  // Q, K (both rotated under RoPE), V, P, O (pre-projection)
  WeightDropout drop_;                    // dropout mask and dropped weights P̃ (dropout > 0 only)
  std::vector<float> dq_, dk_, dv_, ds_, do_;  // gradients; ds_ is per-(b, kv head) scratch

  // flash path: head-major Q, K, V, O [B,H(kv),T,D], the log-sum-exp [B,H,Tq], the key mask
  bool flash_on_ = false;
  bool cuda_on_ = false;  // the last flash forward ran on the GPU (model.device: cuda)
  bool cuda_call() const;
  bool has_keep_ = false;
  std::vector<unsigned char> keep_;                 // [B,Tk] copy of AttnMask.key_keep
  std::vector<float> lse_;                          // [B,H,Tq] log-sum-exp of the flash forward
  std::vector<float> qh_, kh_, vh_, oh_;            // head-major copies for the GPU seam only
  std::vector<float> doh_, dqh_, dkh_, dvh_;        // (gradients, head-major, GPU seam only)
  FlashWorkspace flash_ws_;

  // KV cache (batch and capacity in the base class)
  std::vector<float> kc_, vc_;            // [cache_B, cache_cap, Hkv·D]
  std::vector<float> qn_, kn_, vn_, pc_, on_;  // new rows' Q, K, V [B,Tn,·], weights [B,H,Tn,L−k0], O
  bool last_cached_ = false;              // attention_weights(): which forward ran last
  int cached_k0_ = 0, cached_Tn_ = 0;     // last step: first key read, new positions
};

}  // namespace attnlab
