// Multiplicative attention (Luong, Pham, Manning 2015), per batch b and head h:
//   forward   S_ij = q_iᵀk_j (dot) | q_iᵀ W_a,h k_j (general) | v_hᵀ tanh(W_a,h [q_i; k_j]) (concat),
//             P = softmax_rows(S),  O_h = dropout(P) V_g
//   backward  general: dq̃_i = Σ_j dS_ij k_j with q̃ = W_a,hᵀ q_i, then dq_i = W_a,h dq̃_i,
//             dW_a,h += Σ_i q_i dq̃_iᵀ; concat as bahdanau
// This file holds the scores' parameters and initialisation (luong.h has the formulas in full);
// the shared machinery (masks, softmax, cache, backward) is in scored.cpp.
#include "attention/luong.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab {

LuongAttention::LuongAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng)
    : ScoredAttention(spec, store, rng) {
  const int H = H_, D = D_;
  const std::string& n = spec_.name;
  const AttnScore score = spec_.score;
  if (score == AttnScore::dot) {
    set_score(HeadMap{}, HeadMap{}, nullptr);
  } else if (score == AttnScore::general) {
    // qᵀ W_a k = (W_aᵀ q)ᵀ k: a query-side map (the cache then holds plain keys)
    Param* w_a = store.add(n + ".w_a", {H, D, D}, ParamKind::weight);
    std::fill(w_a->w.begin(), w_a->w.end(), 0.0f);
    for (int h = 0; h < H; h++)
      for (int d = 0; d < D; d++) w_a->w[(size_t(h) * D + d) * D + d] = 1.0f;  // W_a,h = I
    set_score(HeadMap{w_a, D * D, 0, D, /*transposed=*/true}, HeadMap{}, nullptr);
  } else {  // concat
    // W_a [q; k] = W_a[:, :D] q + W_a[:, D:] k: two per-head maps inside one [D, 2D] matrix.
    // It is the paper's W_a (eq. 8); the parameter keeps the name "w_c" that checkpoints hold.
    Param* w_a = store.add(n + ".w_c", {H, D, 2 * D}, ParamKind::weight);
    Param* v = store.add(n + ".v", {H, D}, ParamKind::weight);
    std::fill(w_a->w.begin(), w_a->w.end(), 0.0f);
    for (int h = 0; h < H; h++)
      for (int d = 0; d < D; d++) {
        w_a->w[(size_t(h) * D + d) * 2 * D + d] = 1.0f;      // W_a,h = [I I]
        w_a->w[(size_t(h) * D + d) * 2 * D + D + d] = 1.0f;
      }
    std::fill(v->w.begin(), v->w.end(), 0.0f);
    set_score(HeadMap{w_a, 2 * D * D, 0, 2 * D, false}, HeadMap{w_a, 2 * D * D, D, 2 * D, false}, v);
  }
}

std::unique_ptr<Attention> make_luong(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<LuongAttention>(spec, store, rng);
}

}  // namespace attnlab
