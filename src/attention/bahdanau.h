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
// query head its own view of the shared keys). While v = 0 the score does not depend on q or k:
// every term of dq, dk carries a factor v (e below), so A_h, B_h, W_q, W_k, b_q and b_k get
// exactly zero gradient; dv = Σ dS·t does not vanish, and W_v, W_o learn through the uniform
// weights. The first step moves v (and W_v, W_o); from then on the others get gradients.
//
// Backward (per b, h; t_ijd = tanh(a_id + c_jd), recomputed, never stored):
//     dS from P·V and the softmax (ops/attention_core.h)
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
#pragma once
#include "attention/scored.h"

namespace attnlab {

class BahdanauAttention : public ScoredAttention {
 public:
  BahdanauAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
};

}  // namespace attnlab
