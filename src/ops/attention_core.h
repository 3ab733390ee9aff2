// The attention core shared by every variant: which keys a query may see, the masked softmax of
// one score row, dropout on the attention weights, and the backward through P·V and the softmax.
//
// Positions: query i of a block sits at absolute position p = i + (Tk − Tq) (queries aligned to
// the end of the keys, so a shorter query block continues a prefix), key j at j. Query p may see
// key j iff
//   causal:      j ≤ p            and, with a window w > 0, p − w < j
//   not causal:  any j            and, with a window w > 0, |p − j| < w
// and key j is not padding. The first two rules give one contiguous band [lo, hi) of keys per
// query (key_band); padding (key_kept) removes keys inside it. A query that sees no key gets
// zero weights.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace attnlab {

class Rng;

// The keys [lo, hi) a query may see before padding; empty when lo == hi (never hi < lo).
struct KeyBand {
  int lo, hi;
};

inline KeyBand key_band(int p, int Tk, bool causal, int window) {
  int lo = 0, hi = Tk;
  if (causal) hi = std::min(Tk, p + 1);
  if (window > 0) {
    lo = std::max(0, p - window + 1);
    if (!causal) hi = std::min(Tk, p + window);
  }
  return {lo, std::max(lo, hi)};
}

// keep: one batch row's [Tk] padding mask (1 = a real key), or null (no padding).
inline bool key_kept(const unsigned char* keep, int j) { return !keep || keep[j]; }

// Scores -> weights for the row of query position p, in place over row[0, Tk): keys outside
// `band` and padded keys get weight 0; ALiBi (slope > 0) subtracts slope·|p − j| from each
// visible score first. Then the softmax over the visible keys: w_j = exp(s_j − max) / Σ.
inline void masked_softmax_row(float* row, int Tk, KeyBand band, const unsigned char* keep, int p,
                               float slope) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int lo = band.lo, hi = band.hi;
  if (lo >= hi) {  // nothing to attend to
    std::fill(row, row + Tk, 0.0f);
    return;
  }
  std::fill(row, row + lo, 0.0f);
  std::fill(row + hi, row + Tk, 0.0f);
  if (slope != 0.0f)
    for (int j = lo; j < hi; j++) row[j] -= slope * float(std::abs(p - j));
  if (keep)
    for (int j = lo; j < hi; j++)
      if (!keep[j]) row[j] = neg_inf;
  float mx = neg_inf;
  for (int j = lo; j < hi; j++) mx = std::max(mx, row[j]);
  if (mx == neg_inf) {  // every key of the band is padding
    std::fill(row + lo, row + hi, 0.0f);
    return;
  }
  float sum = 0.0f;
  for (int j = lo; j < hi; j++) {
    const float e = std::exp(row[j] - mx);  // exp(−inf) = 0 for padded keys
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int j = lo; j < hi; j++) row[j] *= inv;
}

// Softmax backward over N rows of C, in place: d holds dL/dP on entry and dL/dS on exit,
// dS = P ⊙ (dP − rowsum(dP ⊙ P)). Serial (the caller parallelises over heads).
inline void softmax_backward_rows(float* d, const float* P, int N, int C) {
  for (int i = 0; i < N; i++) {
    float* r = d + size_t(i) * C;
    const float* pr = P + size_t(i) * C;
    float dot = 0.0f;
    for (int j = 0; j < C; j++) dot += r[j] * pr[j];
    for (int j = 0; j < C; j++) r[j] = pr[j] * (r[j] - dot);
  }
}

// Dropout on attention weights (inverted: kept weights scaled by 1/(1 − p)). The mask is drawn
// serially from the forward's rng, so it does not depend on the thread count.
struct WeightDropout {
  bool on = false;
  std::vector<float> mask, dropped;  // [size of P] (only when on)
  // P̃ = dropout(P) when training with p > 0 (rng required then), else P itself.
  const float* forward(const std::vector<float>& P, float p, bool train, Rng* rng);
  // The weights the last forward multiplied V with: dropped if on, else P.
  const float* weights(const std::vector<float>& P) const { return on ? dropped.data() : P.data(); }
  // dP̃ -> dP through the mask, for the n weights starting at `offset` (no-op when off).
  void backward(float* dP, size_t offset, size_t n) const {
    if (!on) return;
    const float* m = mask.data() + offset;
    for (size_t i = 0; i < n; i++) dP[i] *= m[i];
  }
};

// Runs head(b, g, h, dS) for every batch row b, kv head g and each of its query heads h, in
// order: one (b, g) pair per task, so what is written for kv head g (dK_g, dV_g) is written by
// one thread only and in a fixed order. dS is the task's [Tq,Tk] scratch in ds (resized here).
template <class Head>
inline void for_each_kv_group(std::vector<float>& ds, int B, int H, int Hkv, int Tq, int Tk, Head&& head) {
  const int group = H / Hkv;
  ds.resize(size_t(B) * Hkv * Tq * Tk);
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int g = 0; g < Hkv; g++) {
      float* dS = ds.data() + (size_t(b) * Hkv + g) * Tq * Tk;
      for (int h = g * group; h < (g + 1) * group; h++) head(b, g, h, dS);
    }
}

// The backward of O_h = P̃ V_g for one (b, h): dV_g += P̃ᵀ dO_h and dP̃ = dO_h V_gᵀ (written to
// dP [Tq,Tk]). Rows of dO_h have stride ldo, rows of V_g and dV_g stride ldv.
void pv_backward(float* dP, float* dVg, const float* Pd, const float* dOh, const float* Vg, int Tq, int Tk,
                 int D, int ldo, int ldv);

// The whole backward from dO_h to the score gradient dS [Tq,Tk] for a softmax head:
// pv_backward, the dropout mask (weights from `offset` of drop's mask), and the softmax's.
inline void attention_weights_backward(float* dS, float* dVg, const float* P, const float* Pd,
                                       const WeightDropout& drop, size_t offset, const float* dOh,
                                       const float* Vg, int Tq, int Tk, int D, int ldo, int ldv) {
  pv_backward(dS, dVg, Pd, dOh, Vg, Tq, Tk, D, ldo, ldv);
  drop.backward(dS, offset, size_t(Tq) * Tk);
  softmax_backward_rows(dS, P, Tq, Tk);
}

}  // namespace attnlab
