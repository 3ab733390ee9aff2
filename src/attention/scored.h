// ScoredAttention: the machinery of the score-function variants (bahdanau.h, luong.h).
// Projections, masks (causal, key padding, sliding window), ALiBi, softmax, dropout, GQA, the
// KV cache and the backward of all of it are here; a variant only chooses its score
//     score(i, j) = φ(M_q,h q_i, M_k,h k_j),  φ = dot (xᵀy) or additive (v_hᵀ tanh(x + y)),
// with optional per-head D×D maps M_q,h, M_k,h that are parameters:
//
//   Q = x_q W_qᵀ + b_q [B,Tq,H·D],  K = x_kv W_kᵀ + b_k,  V = x_kv W_vᵀ + b_v  [B,Tk,Hkv·D]
//   per batch b and head h (kv head g = h / (H/Hkv)):
//     S_ij = φ(M_q,h q_i, M_k,h k_j) + bias_ij   (bias: ALiBi −m_h·|p − j|; −∞ where masked)
//     P = softmax_rows(S),  O_h = dropout(P) V_g ;   out = O W_oᵀ + b_o
//
// Backward: dS from P·V and the softmax (ops/attention_core.h), then through φ:
//   dot:       dq̃_i = Σ_j dS_ij k̃_j ;  dk̃_j += Σ_i dS_ij q̃_i
//   additive:  t_ijd = tanh(a_id + c_jd) (recomputed, never stored), e_ijd = dS_ij v_hd (1 − t_ijd²)
//              dv_h += Σ_ij dS_ij t_ij ;  da_i = Σ_j e_ij ;  dc_j = Σ_i e_ij
//   and through the maps: dq_i += M_q,hᵀ dq̃_i, dM_q,h += Σ_i dq̃_i q_iᵀ (likewise for keys).
// The masks and positions are those of ops/attention_core.h.
#pragma once
#include <Eigen/Core>

#include "attention/attention.h"
#include "attention/projections.h"
#include "attention/variants.h"
#include "ops/attention_core.h"

namespace attnlab {

// One per-head D×D map of the score, stored inside a parameter: head h's matrix starts at
// param->w[h·head_stride + col0] with row stride ld. If `transposed`, the stored matrix is Mᵀ
// (luong general stores W_a with qᵀW_a k = (W_aᵀ q)ᵀ k, so M_q = W_aᵀ).
struct HeadMap {
  Param* param = nullptr;  // null: identity, no map
  int head_stride = 0;
  int col0 = 0;
  int ld = 0;
  bool transposed = false;
};

class ScoredAttention : public Attention {
 public:
  void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
               const AttnMask& mask, bool train, Rng* rng) override;
  void backward(float* dx_q, float* dx_kv, const float* dout) override;
  // Weights of the last forward() [B,H,Tq,Tk], or of the last forward_cached() [B,H,Tn,L]
  // (L = cache_len() after the step), if keep_weights(true).
  std::vector<float> attention_weights() const override;
  void cache_reset(int B, int capacity) override;
  void forward_cached(float* out, const float* x_new, int B, int Tn) override;

 protected:
  std::vector<std::vector<float>*> cache_buffers() override { return {&kc_, &vc_, &ktc_}; }
  // Registers w_q, w_k, w_v, w_o (and biases) exactly as scaled_dot_product does and draws them
  // from rng in the same order (model.init's scheme, projections.h). The variant then registers its own parameters and
  // calls set_score().
  ScoredAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
  // v: null for the dot score, else the [H,D] parameter of the additive score.
  void set_score(HeadMap mq, HeadMap mk, Param* v);

  int D_;

 private:
  // Scores of all (b, h) pairs, masks, ALiBi and softmax -> P [B,H,Tq,Tk].
  // qt: [B,Tq,C] (the mapped queries); kt: key terms, batch stride kt_bs, row stride kt_ld,
  // kt_heads of them per row (H: one per query head; Hkv: the kv heads themselves).
  // Query i sits at position i + offset, key j at position j.
  void weights(float* P, const float* qt, int B, int Tq, int Tk, int offset, bool causal,
               const unsigned char* keep, const float* kt, size_t kt_bs, int kt_ld, int kt_heads) const;
  // O [B,Tq,C] = P V per head; v: batch stride kv_bs, row stride Hkv·D
  void mix(float* O, const float* P, int B, int Tq, int Tk, const float* v, size_t kv_bs) const;
  void map_rows(float* y, const float* x, int ldx, int N, const HeadMap& m, int h) const;
  void map_backward(const HeadMap& m, int h, int N, const float* dy, const float* x, float* dx, int ldx) const;

  Projections proj_;  // W_q, W_k, W_v, W_o and biases
  HeadMap mq_, mk_;
  Param* v_param_ = nullptr;
  std::vector<float> alibi_;  // ALiBi slope per head (0 without ALiBi)
  std::vector<float> q_, k_, v_, qt_, kt_, p_, o_;  // Q, K, V, M_q Q, M_k K (per query head), P, O
  WeightDropout drop_;
  std::vector<float> dq_, dk_, dv_, dqt_, dkt_, ds_, do_, dvh_;  // gradients and scratch
  // per-thread blocks of tanh(a_i + c_j) (additive score), aligned for SIMD packets
  mutable std::vector<float, Eigen::aligned_allocator<float>> scratch_;
  // KV cache: K, V [B,cap,Hkv·D] and the key terms M_k K [B,cap,H·D] (when there is a key map),
  // and the buffers of one cached step (new Q, M_q Q, K, V, weights, O)
  bool last_cached_ = false;  // attention_weights() returns the last forward's or cached step's
  std::vector<float> kc_, vc_, ktc_, qn_, qtn_, kn_, vn_, pc_, on_;
};

}  // namespace attnlab
