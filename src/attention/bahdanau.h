// Additive attention (Bahdanau, Cho, Bengio 2014, "Neural Machine Translation by Jointly
// Learning to Align and Translate", appendix A.1.2: e_ij = v_aᵀ tanh(W_a s_{i−1} + U_a h_j)),
// multi-head, on the projections of the dot-product family.
//
//   Q = x_q W_qᵀ + b_q      [B,Tq,H·D]
//   K = x_kv W_kᵀ + b_k     [B,Tk,Hkv·D]
//   V = x_kv W_vᵀ + b_v     [B,Tk,Hkv·D]
//   per batch b and head h (kv head g = h / (H/Hkv)):
//     a_i = A_h q_i ,  c_j = B_h k_j            [D]   A_h = u_q[h], B_h = u_k[h]  [D,D]
//     S_ij = v_hᵀ tanh(a_i + c_j) + bias_ij     [Tq,Tk]   (bias: ALiBi −m_h·|p − r|; −∞ where masked)
//     P = softmax_rows(S),  O_h = dropout(P) V_g
//   out = O W_oᵀ + b_o
//
// No score scale (the registry rejects `scale`). v starts at ZERO, as in the paper's
// appendix B.1, so the weights start exactly uniform over the visible keys; A_h, B_h start at
// the identity (the score then starts as v_hᵀ tanh(q_i + k_j): W_q, W_k already play the
// paper's W_a, U_a; A_h, B_h are the paper's form on top of them and, with GQA, give each
// query head its own view of the shared keys).
//
// Backward (per b, h; t_ijd = tanh(a_id + c_jd), recomputed, never stored):
//     dS from the softmax as in scaled_dot_product
//     dv_h += Σ_ij dS_ij t_ij ;  e_ijd = dS_ij v_hd (1 − t_ijd²)
//     da_i = Σ_j e_ij ;  dc_j = Σ_i e_ij
//     dq_i = A_hᵀ da_i ;  dA_h += Σ da_i q_iᵀ ;  dk_j += B_hᵀ dc_j ;  dB_h += Σ dc_j k_jᵀ
// Masks: causal (query i at position p = i + Tk − Tq sees keys r ≤ p), sliding window
// (causal p − w < r ≤ p, otherwise |p − r| < w), key padding; a query with no visible key gets
// zero weights. ALiBi is −m_h·(p − r) under a causal mask, the symmetric −m_h·|p − r| without.
//
// Memory: O(B·H·Tq·Tk) for P (as scaled_dot_product) plus O(B·(Tq+Tk)·H·D) for a, c and their
// gradients. The Tq×Tk×D tensor tanh(a_i + c_j) is never materialised: forward and backward
// evaluate it one query row at a time, in blocks of ≤ 2048 values per thread (8 KiB), and the
// backward recomputes it instead of storing it. Time O(B·H·Tq·Tk·D) each way, dominated by the
// tanh's (a SIMD tanh, ~1.2 ns each; about 3× scaled_dot_product at D = 16).
//
// This header also holds ScoredAttention, the machinery this file shares with luong.cpp:
// projections, masks (causal, key padding, sliding window), ALiBi, softmax, dropout, GQA, the
// KV cache and the backward of all of it; a variant only chooses its score
//     score(i, j) = φ(M_q,h q_i, M_k,h k_j),  φ = dot (xᵀy) or additive (v_hᵀ tanh(x + y)),
// with optional per-head D×D maps M_q,h, M_k,h that are parameters.
#pragma once
#include <Eigen/Core>

#include "attention/attention.h"
#include "attention/projections.h"
#include "attention/variants.h"

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
  std::vector<float> attention_weights() const override;
  void cache_reset(int B, int capacity) override;
  void forward_cached(float* out, const float* x_new, int B, int Tn) override;

 protected:
  std::vector<std::vector<float>*> cache_buffers() override { return {&kc_, &vc_, &ktc_}; }

 public:

 protected:
  // Registers w_q, w_k, w_v, w_o (and biases) exactly as scaled_dot_product does and draws them
  // from rng in the same order (GPT-2 init). The variant then registers its own parameters and
  // calls set_score().
  ScoredAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
  // v: null for the dot score, else the [H,D] parameter of the additive score.
  void set_score(HeadMap mq, HeadMap mk, Param* v);

  int H_, Hkv_, D_;

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

  Projections proj_;  // W_q, W_k, W_v, W_o and biases
  HeadMap mq_, mk_;
  Param* v_param_ = nullptr;
  std::vector<float> alibi_;  // ALiBi slope per head (0 without ALiBi)
  // saved by forward for backward (x_q / x_kv are the caller's buffers and must outlive backward)
  const float* x_q_ = nullptr;
  const float* x_kv_ = nullptr;
  int B_ = 0, Tq_ = 0, Tk_ = 0;
  bool dropout_on_ = false;
  std::vector<float> q_, k_, v_, qt_, kt_, p_, o_;  // Q, K, V, M_q Q, M_k K (per query head), P, O
  std::vector<float> drop_, pdrop_;
  std::vector<float> dq_, dk_, dv_, dqt_, dkt_, ds_, do_, dvh_;  // gradients and scratch
  // per-thread blocks of tanh(a_i + c_j) (additive score), aligned for SIMD packets
  mutable std::vector<float, Eigen::aligned_allocator<float>> scratch_;
  // KV cache: K, V [B,cap,Hkv·D] and the key terms M_k K [B,cap,H·D] (when there is a key map),
  // and the buffers of one cached step (new Q, M_q Q, K, V, weights, O)
  int cache_B_ = 0, cache_cap_ = 0;
  bool last_cached_ = false;  // attention_weights() returns the last forward's or cached step's
  std::vector<float> kc_, vc_, ktc_, qn_, qtn_, kn_, vn_, pc_, on_;
};

class BahdanauAttention : public ScoredAttention {
 public:
  BahdanauAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
};

}  // namespace attnlab
