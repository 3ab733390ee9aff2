// Scaled dot-product multi-head attention (Vaswani et al. 2017, "Attention Is
// All You Need", section 3.2), with grouped KV heads (Ainslie et al. 2023).
//
//   Q = x_q W_qᵀ + b_q      [B,Tq,H·D]
//   K = x_kv W_kᵀ + b_k     [B,Tk,Hkv·D]
//   V = x_kv W_vᵀ + b_v     [B,Tk,Hkv·D]
//   per batch b and head h (kv head g = h / (H/Hkv)):
//     S = s · Q_h K_gᵀ + M       [Tq,Tk]   (M = -inf where masked, s = 1/√D by default)
//     P = softmax_rows(S)
//     O_h = dropout(P) V_g       [Tq,D]
//   out = O W_oᵀ + b_o       [B,Tq,C]
//
// Backward (per b, h; ⊙ elementwise, P̃ = dropout(P)):
//     dP̃ = dO_h V_gᵀ ;  dV_g += P̃ᵀ dO_h ;  dP = dP̃ ⊙ mask/(1-p)
//     dS = P ⊙ (dP − rowsum(dP ⊙ P))              (softmax backward)
//     dQ_h = s · dS K_g ;  dK_g += s · dSᵀ Q_h
//
// The causal mask is aligned to the end: query i (of Tq) sees key j iff
// j ≤ i + (Tk − Tq), so Tq < Tk continues a prefix. A fully masked row yields
// zero weights and zero output. Memory: O(B·H·Tq·Tk) for P.
#pragma once
#include "attention/attention.h"
#include "attention/variants.h"

namespace attnlab {

class ScaledDotProductAttention : public Attention {
 public:
  ScaledDotProductAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
  void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
               const AttnMask& mask, bool train, Rng* rng) override;
  void backward(float* dx_q, float* dx_kv, const float* dout) override;
  std::vector<float> attention_weights() const override;

 private:
  int H_, Hkv_, D_;
  float scale_;
  Param *w_q_, *b_q_, *w_k_, *b_k_, *w_v_, *b_v_, *w_o_, *b_o_;
  // saved by forward for backward (x_q / x_kv are the caller's buffers and must outlive backward)
  const float* x_q_ = nullptr;
  const float* x_kv_ = nullptr;
  int B_ = 0, Tq_ = 0, Tk_ = 0;
  bool dropout_on_ = false;
  std::vector<float> q_, k_, v_, p_, o_;  // Q, K, V, P, O (pre-projection)
  std::vector<float> drop_, pdrop_;       // dropout mask and dropped weights P̃ (dropout > 0 only)
  std::vector<float> dq_, dk_, dv_, ds_, do_;  // gradients; ds_ is per-(b, kv head) scratch
};

}  // namespace attnlab
