// Differential attention (Ye et al. 2024, "Differential Transformer", arXiv 2410.05258, §2.1).
//
// Each of the H differential heads splits its query and key into two halves of width
// d = C/(2H) and computes two softmax maps over the same keys; their difference, weighted by a
// learnable λ, cancels the attention "noise" that both maps share (like a differential
// amplifier). The total projection widths stay C, as in the paper, where the number of heads is
// halved relative to the baseline: `n_heads` counts differential heads, and d_model must be
// divisible by 2·n_heads (by 4·n_heads with RoPE, which rotates pairs within each d-wide half).
//
//   Q = x_q W_qᵀ + b_q   [B,Tq,H·2d]   head h: [Q₁ | Q₂] = columns h·2d + [0,d) and h·2d + [d,2d)
//   K = x_kv W_kᵀ + b_k  [B,Tk,Hkv·2d] kv head g: [K₁ | K₂] likewise
//   V = x_kv W_vᵀ + b_v  [B,Tk,Hkv·2d] kv head g: V_g = columns g·2d + [0,2d)
//   (RoPE, when positions = rope, rotates every d-wide half of Q and K; queries are at positions
//    Tk − Tq + i, keys at j, so a cached step continues the positions of the prefix.)
//   per batch b and head h (kv head g = h / (H/Hkv)), s = 1/√d by default:
//     A₁ = softmax(s·Q₁K₁ᵀ + M),  A₂ = softmax(s·Q₂K₂ᵀ + M)     [Tq,Tk]  (M: −∞ where masked)
//     λ  = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init,  λ_init = 0.8 − 0.6·exp(−0.3·l)
//     D  = A₁ − λ·A₂ ;  D̃ = dropout(D), one mask m for both maps  (D̃ = D without dropout)
//     O_h = D̃ V_g                                               [Tq,2d]
//     Y_h = (1 − λ_init) · RMSNorm(O_h) = (1 − λ_init) · w ⊙ O_h / √(mean(O_h²) + 1e-5)
//   out = Y W_oᵀ + b_o                                          [B,Tq,C]
// l = spec.layer_index (from 0; the paper's l − 1 with l ∈ [1, L]). As in the paper ("λ is shared
// between heads within the same layer") and its code, the four λ vectors [d] and the RMSNorm
// weight w [2d] are one per layer, shared by all heads. Without the headwise norm (the E7
// ablation) Y_h = O_h: no norm, no (1 − λ_init) factor, no norm_w parameter.
//
// Backward (per b, h; dY_h from the output projection):
//     G = (1 − λ_init)·dY_h ;  r = 1/√(mean(O²)+ε) per row
//     dO = r·(w⊙G) − r³·O·Σ(w⊙G⊙O)/(2d) ;  dw += Σ_rows r·O⊙G           (RMSNorm)
//     dD̃ = dO V_gᵀ ;  dV_g += D̃ᵀ dO ;  dD = dD̃ ⊙ m                        (m: the dropout mask)
//     dλ += −Σ A₂ ⊙ dD ;  dA₁ = dD ;  dA₂ = −λ·dD
//     dS_c = A_c ⊙ (dA_c − rowsum(dA_c ⊙ A_c)) ;  dQ_c = s·dS_c K_c ;  dK_c += s·dS_cᵀ Q_c
//   and through the exps: dλ_q1 += dλ·e₁·λ_k1, dλ_k1 += dλ·e₁·λ_q1,
//                         dλ_q2 −= dλ·e₂·λ_k2, dλ_k2 −= dλ·e₂·λ_q2   (e_c = exp(λ_qc·λ_kc)).
//
// Masks are those of scaled_dot_product: causal aligned to the end (query i is at position
// p = i + Tk − Tq and sees key r ≤ p), key padding, sliding window (causal: p − w < r ≤ p;
// non-causal: |p − r| < w). A query with no visible key gets zero maps, O = 0, Y = 0.
// Cost: the GEMMs of scaled_dot_product with 2H heads of width d (B·Tq·Tk·C multiply-adds for the
// scores and as many for D V), the softmax work of 2H maps; memory 3·B·H·Tq·Tk floats for A₁, A₂
// and D (with dropout, a mask and D̃: 2·B·H·Tq·Tk more). The KV cache holds the rotated K and V.
#pragma once
#include "attention/attention.h"
#include "attention/projections.h"
#include "attention/variants.h"
#include "ops/attention_core.h"

namespace attnlab {

class DifferentialAttention : public Attention {
 public:
  // headwise_norm = false drops the RMSNorm and its (1 − λ_init) factor (ablation E7).
  DifferentialAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng, bool headwise_norm = true);
  void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
               const AttnMask& mask, bool train, Rng* rng) override;
  void backward(float* dx_q, float* dx_kv, const float* dout) override;
  // [B,H,Tq,Tk]: the differential map A₁ − λA₂ of the last forward (without dropout), if kept.
  std::vector<float> attention_weights() const override;
  void cache_reset(int B, int capacity) override;
  void forward_cached(float* out, const float* x_new, int B, int Tn) override;

  // λ_init = 0.8 − 0.6·exp(−0.3·layer_index)
  static float lambda_init_for(int layer_index);
  float lambda_init() const { return lambda_init_; }
  float lambda() const;  // λ of the current parameters
  int half_dim() const { return d_; }
  bool headwise_norm() const { return norm_; }

 protected:
  std::vector<std::vector<float>*> cache_buffers() override { return {&kc_, &vc_}; }

 private:
  // per (b, h): both maps A [2,Tq,Tk] from Q_h [Tq,2d] (stride ldq), K_g (stride ldk);
  // query i is at position pos0 + i, key j at position j.
  void maps(float* A, const float* Qh, int ldq, const float* Kg, int ldk, int Tq, int Tk, int pos0,
            bool causal, const unsigned char* keep) const;
  // rows of O [N, H, 2d] -> Y (norm and (1 − λ_init) scale, or a copy); saves rstd [N·H]
  void norm_forward(float* Y, float* rstd, const float* O, int N) const;

  int d_, Ckv_;
  float scale_, lambda_init_;
  bool norm_;
  static constexpr float kEps = 1e-5f;
  Projections proj_;  // W_q, W_k, W_v, W_o and biases
  Param *lq1_, *lk1_, *lq2_, *lk2_, *norm_w_;
  float lambda_ = 0.0f, e1_ = 0.0f, e2_ = 0.0f;
  std::vector<float> q_, k_, v_;      // rotated Q [B,Tq,C], K [B,Tk,Ckv]; V [B,Tk,Ckv]
  std::vector<float> a_;              // both maps [B,H,2,Tq,Tk]
  WeightDropout drop_;                // the dropout mask and D̃ (dropout > 0 only)
  std::vector<float> diff_;           // D = A₁ − λA₂ [B,H,Tq,Tk] (before dropout)
  std::vector<float> o_, rstd_, y_;   // O [B,Tq,C], 1/rms [B,Tq,H], Y [B,Tq,C]
  std::vector<float> dy_, do_, dq_, dk_, dv_, ds_;  // gradients; ds_: per (b, kv head) scratch
  std::vector<double> dlam_;          // per (b, h) partial dλ, summed in a fixed order
  // incremental decoding (batch and capacity in the base class)
  std::vector<float> kc_, vc_;        // cached rotated K, V [B,cap,Ckv]
  std::vector<float> cq_, ck_, ca_, cd_, co_, crstd_, cy_;  // scratch of forward_cached
};

}  // namespace attnlab
