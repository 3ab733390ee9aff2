// Positions applied inside attention.
//
// RoPE, rotary position embedding (Su et al. 2021, "RoFormer"): within each head, the pair
// (x[2i], x[2i+1]) of a query or key at absolute position p is rotated by the angle p·θ_i,
// θ_i = base^(−2i/D). Then q_pᵀk_r depends on p and r only through p − r. Pairs are the
// interleaved (2i, 2i+1) of the paper. The backward of a rotation is the rotation by −p·θ_i.
//
// ALiBi, attention with linear biases (Press et al. 2022): the score of query position p and
// key position r gets −m_h·(p − r) added, with a head-specific slope m_h: for H a power of two,
// m_h = 2^(−8(h+1)/H); otherwise the paper's recipe (the slopes of the nearest lower power of
// two, then every other slope of the next power of two). No parameters, no backward beyond the
// scores'. The paper defines the causal form only (p − r ≥ 0); for a non-causal slot the
// variants use the symmetric −m_h·|p − r|, which equals it wherever p ≥ r.
#pragma once

namespace attnlab {

// x: [B, T, Hx, D] with rows of Hx·D (row stride `stride` ≥ Hx·D); position of row t is pos0 + t.
// In place. `sign` = +1 rotates forward; −1 applies the inverse (the backward of the rotation).
void rope_rotate(float* x, int B, int T, int Hx, int D, int stride, int pos0, float base, int sign = 1);

// ALiBi slope of head h of H.
float alibi_slope(int h, int H);

}  // namespace attnlab
