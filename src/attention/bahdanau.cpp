// Additive attention (Bahdanau, Cho, Bengio 2014), per batch b and head h:
//   forward   S_ij = v_hᵀ tanh(A_h q_i + B_h k_j),  P = softmax_rows(S),  O_h = dropout(P) V_g
//   backward  with t = tanh(·): e_ijd = dS_ij v_hd (1 − t_ijd²) flows to A_h q_i and B_h k_j
// This file holds its parameters and their initialisation; bahdanau.h has the formulas in full
// and scored.cpp the machinery it shares with luong.
#include "attention/bahdanau.h"

#include <algorithm>

namespace attnlab {

BahdanauAttention::BahdanauAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng)
    : ScoredAttention(spec, store, rng) {
  const int H = H_, D = D_;
  const std::string& n = spec_.name;
  Param* u_q = store.add(n + ".u_q", {H, D, D}, ParamKind::weight);
  Param* u_k = store.add(n + ".u_k", {H, D, D}, ParamKind::weight);
  Param* v = store.add(n + ".v", {H, D}, ParamKind::weight);
  // A_h = B_h = I: the score starts as v_hᵀ tanh(q_i + k_j) on the (random) projections;
  // v = 0 (the paper's appendix B.1): the weights start exactly uniform; until v moves, A_h, B_h,
  // W_q, W_k and b_q, b_k get exactly zero gradient (bahdanau.h).
  for (Param* u : {u_q, u_k}) {
    std::fill(u->w.begin(), u->w.end(), 0.0f);
    for (int h = 0; h < H; h++)
      for (int d = 0; d < D; d++) u->w[(size_t(h) * D + d) * D + d] = 1.0f;
  }
  std::fill(v->w.begin(), v->w.end(), 0.0f);
  set_score(HeadMap{u_q, D * D, 0, D, false}, HeadMap{u_k, D * D, 0, D, false}, v);
}

std::unique_ptr<Attention> make_bahdanau(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<BahdanauAttention>(spec, store, rng);
}

}  // namespace attnlab
