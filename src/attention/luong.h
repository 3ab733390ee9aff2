// Multiplicative ("global") attention (Luong, Pham, Manning 2015, "Effective Approaches to
// Attention-based Neural Machine Translation", section 3.1), multi-head, on the projections of
// the dot-product family. `score` (spec.score) picks the paper's score function:
//
//   Q = x_q W_qᵀ + b_q [B,Tq,H·D],  K = x_kv W_kᵀ + b_k,  V = x_kv W_vᵀ + b_v  [B,Tk,Hkv·D]
//   per batch b and head h (kv head g = h / (H/Hkv)), q_i, k_j the head's D-dim vectors:
//     dot      S_ij = q_iᵀ k_j                           (no 1/√D scale, as in the paper)
//     general  S_ij = q_iᵀ W_a,h k_j                     W_a,h = w_a[h]  [D,D]
//     concat   S_ij = v_hᵀ tanh(W_a,h [q_i; k_j])        W_a,h = w_c[h]  [D,2D], v_h = v[h] [D]
//     S += ALiBi bias −m_h·(p − r), −∞ where masked;  P = softmax_rows(S);  O_h = dropout(P) V_g
//   out = O W_oᵀ + b_o
//
// Both score matrices are the paper's W_a (eq. 8); concat's is stored as `w_c`, the parameter name
// existing checkpoints use. The paper's W_c is another matrix: that of the attentional hidden state
// h̃_t = tanh(W_c[c_t; h_t]) (eq. 5), which is not reproduced: in a transformer block the output
// projection W_o and the residual connection play that role.
//
// Initialisation (the projections: model.init's scheme, as scaled_dot_product, same draws for the
// same seed; the score's parameters below under every scheme):
//   general: W_a,h = I, so the module starts exactly as `dot`; W_q and W_k are already random,
//     and I keeps the scale of qᵀk (N(0, 1/D) entries would add a random bilinear form that
//     changes the logit scale with D). Its gradient is non-zero at I, so it learns at once.
//   concat: W_a,h = [I I] and v_h = 0: since W_a [q; k] = W_a[:, :D] q + W_a[:, D:] k, concat is
//     Bahdanau's additive score, and it starts as Bahdanau does: uniform weights; while v = 0
//     the score does not depend on q or k, so W_a, W_q, W_k, b_q and b_k get exactly zero
//     gradient and only v (with W_v, W_o) moves in the first step (bahdanau.h).
//
// Backward: the machinery of ScoredAttention (scored.h). For the bilinear scores with
// q̃_i = W_a,hᵀ q_i (q̃ = q for dot): dq̃_i = Σ_j dS_ij k_j, dk_j += Σ_i dS_ij q̃_i,
// dq_i = W_a,h dq̃_i, dW_a,h += Σ_i q_i dq̃_iᵀ. For concat, that of Bahdanau with
// A_h = W_a,h[:, :D], B_h = W_a,h[:, D:].
// Memory: O(B·H·Tq·Tk) for P plus O(B·Tq·H·D) for q̃ (general) or O(B·(Tq+Tk)·H·D) (concat).
// Time O(B·H·Tq·Tk·D); concat evaluates Tq·Tk·D tanh's per head each way.
#pragma once
#include "attention/scored.h"

namespace attnlab {

class LuongAttention : public ScoredAttention {
 public:
  LuongAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
};

}  // namespace attnlab
