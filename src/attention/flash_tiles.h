// The building blocks of the CPU flash kernel (flash.cpp: forward, flash_backward.cpp: backward),
// all over 16-float packets (GCC/Clang vector extensions: one AVX-512 register with
// -march=native, two AVX2 registers elsewhere). Internal to src/attention.
//   tile_gemm   C[M,N] (+)= A·B for one tile, N a multiple of 16: register tiles of 6 rows ×
//               64 columns, A read by broadcasting single elements (so A may be read transposed
//               through its strides), B read as contiguous rows.
//   vexp        exp over a packet (range reduction by ln 2 + degree-7 Taylor polynomial).
//   mask_row    scale, ALiBi bias and the −inf mask of one score row of a tile.
// To feed tile_gemm, Kᵀ and Vᵀ are packed as [D, Tk'] (for S = Q Kᵀ and dP = dO Vᵀ) and, where
// D is not a multiple of 16, K, V, Q, dO as [T, D'] rows padded with zeros to D' = 16·⌈D/16⌉
// columns (Tk' = 16·⌈Tk/16⌉); padded key columns are masked like any other invisible key.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "attention/flash.h"
#include "ops/attention_core.h"

namespace attnlab::flash_tiles {

typedef float v16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), __may_alias__));

inline v16 ld(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void st(float* p, v16 x) { *reinterpret_cast<v16u*>(p) = x; }
inline v16 splat(float s) { return v16{} + s; }
inline float hsum(v16 x) {
  float s = 0.0f;
  for (int i = 0; i < 16; i++) s += x[i];
  return s;
}
// The max as a tree (halves, quarters, pairs, lanes): 4 shuffles and 4 maxes instead of a chain of
// 15. The max of the same values is the same in any order, so results do not change.
inline float hmax(v16 x) {
  x = x > __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)
          ? x : __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  const v16 q = __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  x = x > q ? x : q;
  const v16 p = __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  x = x > p ? x : p;
  const v16 l = __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  x = x > l ? x : l;
  return x[0];
}

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
inline int round16(int n) { return (n + 15) / 16 * 16; }

// exp(x) = 2ⁿ·eʳ with n = round(x / ln 2), r = x − n·ln 2 ∈ [−0.347, 0.347] (ln 2 split in a
// short high part and a correction, so n·ln2_hi is exact); eʳ by its Taylor series to r⁷
// (the r⁸ term is < 6e-9 relative, below float rounding); 2ⁿ built in the exponent bits.
// x < −87.34 (where exp(x) < FLT_MIN) gives exactly 0, −inf included: masked scores vanish.
inline v16 vexp(v16 x) {
  const v16 xc = x < -88.0f ? splat(-88.0f) : (x > 88.0f ? splat(88.0f) : x);
  const v16 n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  v16 r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16 p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i16 bits = (__builtin_convertvector(n, i16) + 127) << 23;
  const v16 y = p * (v16)bits;
  return x < -87.3365f ? splat(0.0f) : y;
}

// One register tile: C[R, 16·NV] (+)= Σ_k A(r, k) B[k, :], A(r, k) = A[r·sam + k·sak].
template <int R, int NV>
inline void tile_kernel(int K, const float* A, size_t sam, size_t sak, const float* B, size_t ldb, float* C,
                        size_t ldc, bool accumulate) {
  v16 c[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) c[r][v] = accumulate ? ld(C + r * ldc + 16 * v) : splat(0.0f);
  for (int k = 0; k < K; k++) {
    v16 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = ld(B + k * ldb + 16 * v);
    const float* a = A + k * sak;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const float ar = a[r * sam];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[r][v] += ar * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) st(C + r * ldc + 16 * v, c[r][v]);
}

// 6 rows × 4 vectors: 24 accumulators of the 32 registers, 4 loads of B and 6 broadcasts per 24
// FMAs. Measured against 4 rows (W3 flash kernel, n = 4096, fwd+bwd, 2 threads, alternating): 356–376
// ms against 435–440; 7 rows was no better (351–369). The tile shape does not change any
// element's arithmetic (each sums over k in order), so results are bit-identical.
constexpr int kTileRows = 6;

template <int NV>
inline void strip(int M, int K, const float* A, size_t sam, size_t sak, const float* B, size_t ldb, float* C, size_t ldc,
           bool acc) {
  int m = 0;
  for (; m + kTileRows <= M; m += kTileRows)
    tile_kernel<kTileRows, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc);
  switch (M - m) {
    case 1: tile_kernel<1, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc); break;
    case 2: tile_kernel<2, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc); break;
    case 3: tile_kernel<3, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc); break;
    case 4: tile_kernel<4, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc); break;
    case 5: tile_kernel<5, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, acc); break;
    default: break;
  }
}

// C[M,N] (+)= A·B with A(m, k) = A[m·sam + k·sak], B [K,N] (row stride ldb), C [M,N] (row
// stride ldc); N a multiple of 16. The sum over k runs in order 0..K−1 for every element.
inline void tile_gemm(int M, int N, int K, const float* A, size_t sam, size_t sak, const float* B, size_t ldb, float* C,
               size_t ldc, bool acc) {
  int n = 0;
  for (; n + 64 <= N; n += 64) strip<4>(M, K, A, sam, sak, B + n, ldb, C + n, ldc, acc);
  switch ((N - n) / 16) {
    case 1: strip<1>(M, K, A, sam, sak, B + n, ldb, C + n, ldc, acc); break;
    case 2: strip<2>(M, K, A, sam, sak, B + n, ldb, C + n, ldc, acc); break;
    case 3: strip<3>(M, K, A, sam, sak, B + n, ldb, C + n, ldc, acc); break;
    default: break;
  }
}

// What one tile step shares: the mask rules and where the tile sits.
struct TileCtx {
  const FlashOptions* opt;
  int Tk;
  int off;                      // query i is at position i + off
  const unsigned char* keep;    // this batch row's [Tk] mask, or null
  float slope;                  // ALiBi slope of the head (0 = none)
  bool alibi;
};

// The tile context of batch row b, query head h.
inline TileCtx tile_ctx(const FlashOptions& opt, int Tq, int Tk, int b, int h) {
  return TileCtx{&opt, Tk, Tk - Tq, opt.key_keep ? opt.key_keep + size_t(b) * Tk : nullptr,
                 opt.alibi_slopes ? opt.alibi_slopes[h] : 0.0f, opt.alibi_slopes != nullptr};
}

// The keys any of the queries [i0, i0 + mr) sees: from the first query's lowest to the last's end.
inline KeyBand block_keys(const TileCtx& t, int i0, int mr) {
  return KeyBand{key_band(i0 + t.off, t.Tk, t.opt->causal, t.opt->window).lo,
                 key_band(i0 + mr - 1 + t.off, t.Tk, t.opt->causal, t.opt->window).hi};
}

// Keys [j0, j0 + nc) against queries [i0, i0 + mr): true when every query sees every key of the
// tile with no bias, so the scores need only the scale.
inline bool tile_full(const TileCtx& t, int i0, int mr, int j0, int nc, int ncp) {
  if (t.keep || t.alibi || nc != ncp) return false;
  const KeyBand first = key_band(i0 + t.off, t.Tk, t.opt->causal, t.opt->window);
  const KeyBand last = key_band(i0 + mr - 1 + t.off, t.Tk, t.opt->causal, t.opt->window);
  return last.lo <= j0 && first.hi >= j0 + nc;
}

// One score row s[0, ncp) of the tile at keys j0..: s ← s·scale − slope·|p − j| where visible,
// −inf elsewhere (outside the band, padded key, padding columns beyond Tk).
inline void mask_row(float* s, int ncp, int nc, int j0, int p, const TileCtx& t, bool full) {
  const float scale = t.opt->scale;
  if (full) {
    for (int j = 0; j < ncp; j += 16) st(s + j, ld(s + j) * scale);
    return;
  }
  const KeyBand bd = key_band(p, t.Tk, t.opt->causal, t.opt->window);
  const int a = std::clamp(bd.lo - j0, 0, nc), e = std::clamp(bd.hi - j0, a, nc);
  for (int j = 0; j < a; j++) s[j] = kNegInf;
  for (int j = e; j < ncp; j++) s[j] = kNegInf;
  for (int j = a; j < e; j++) s[j] *= scale;
  if (t.alibi)
    for (int j = a; j < e; j++) s[j] -= t.slope * float(std::abs(p - (j0 + j)));
  if (t.keep)
    for (int j = a; j < e; j++)
      if (!t.keep[j0 + j]) s[j] = kNegInf;
}

inline float row_max(const float* s, int ncp) {
  v16 m = splat(kNegInf);
  for (int j = 0; j < ncp; j += 16) {
    const v16 x = ld(s + j);
    m = x > m ? x : m;
  }
  return hmax(m);
}

// s ← exp(s − c) over [0, ncp); returns Σ of the results
inline float exp_row(float* s, int ncp, float c) {
  v16 sum = splat(0.0f);
  for (int j = 0; j < ncp; j += 16) {
    const v16 y = vexp(ld(s + j) - c);
    st(s + j, y);
    sum += y;
  }
  return hsum(sum);
}

// One forward tile step's softmax: the scores S [mr, ncp] (row stride kFlashBlockK) of queries
// i0.. against keys j0.. become P = exp(S − m') in place, where m' is each row's running max
// updated by the tile; the running sums l and the accumulated outputs acc [mr, Dp] are rescaled by
// exp(m − m') where the max grew (the online softmax). A row that sees nothing in the tile gets
// P = 0. The rows' maxima come first, then their exps: each pass is a run of independent rows the
// core overlaps, where one row at a time chained a max, an exp and a sum (same arithmetic).
inline void online_softmax(float* S, float* acc, int Dp, float* mrow, float* lrow, int mr, int ncp, int nc, int i0,
                           int j0, const TileCtx& t) {
  constexpr int BK = kFlashBlockK;
  const bool full = tile_full(t, i0, mr, j0, nc, ncp);
  float mxs[kFlashBlockQ];
  for (int r = 0; r < mr; r++) {
    float* s = S + size_t(r) * BK;
    mask_row(s, ncp, nc, j0, i0 + r + t.off, t, full);
    mxs[r] = row_max(s, ncp);
  }
  for (int r = 0; r < mr; r++) {
    float* s = S + size_t(r) * BK;
    const float mx = mxs[r];
    if (mx == kNegInf) {  // nothing visible in this tile: P row = 0
      std::fill(s, s + ncp, 0.0f);
      continue;
    }
    const float m_new = std::max(mrow[r], mx);
    // 0 on the first visible tile; exactly exp(0) = 1 while the max holds (most tiles), so the
    // call is skipped there
    const float alpha = m_new == mrow[r] ? 1.0f : std::exp(mrow[r] - m_new);
    lrow[r] = lrow[r] * alpha + exp_row(s, ncp, m_new);
    if (alpha != 1.0f) {
      float* o = acc + size_t(r) * Dp;
      for (int d = 0; d < Dp; d += 16) st(o + d, ld(o + d) * alpha);
    }
    mrow[r] = m_new;
  }
}

// The end of a query block's forward: O rows [mr, D] (row stride rs) = acc / l, and the
// log-sum-exp L = m + log l (a row that saw no key: O = 0, L = −inf).
inline void finish_rows(float* O, size_t rs, float* L, const float* acc, int Dp, const float* mrow, const float* lrow,
                        int mr, int D) {
  for (int r = 0; r < mr; r++) {
    float* o = O + size_t(r) * rs;
    if (lrow[r] == 0.0f) {  // the row sees no key
      std::fill(o, o + D, 0.0f);
      L[r] = kNegInf;
      continue;
    }
    const float inv = 1.0f / lrow[r];
    const float* a = acc + size_t(r) * Dp;
    for (int d = 0; d < D; d++) o[d] = a[d] * inv;
    L[r] = mrow[r] + std::log(lrow[r]);
  }
}

// Packs src [rows, D] (row stride rs) as dst [rows, Dp] (zero columns D..Dp).
inline void pack_rows(float* dst, const float* src, size_t rs, int rows, int D, int Dp) {
  for (int r = 0; r < rows; r++) {
    std::memcpy(dst + size_t(r) * Dp, src + size_t(r) * rs, sizeof(float) * D);
    std::fill(dst + size_t(r) * Dp + D, dst + size_t(r) * Dp + Dp, 0.0f);
  }
}

// Packs src [rows, D] (row stride rs) as dstᵀ [D, ld] (zero columns rows..ld).
inline void pack_transposed(float* dst, const float* src, size_t rs, int rows, int D, int ld) {
  for (int d = 0; d < D; d++) {
    float* o = dst + size_t(d) * ld;
    for (int r = 0; r < rows; r++) o[r] = src[size_t(r) * rs + d];
    std::fill(o + rows, o + ld, 0.0f);
  }
}

// Kᵀ of src [T, D] (row stride rs) in panels of kFlashBlockK keys: the panel of keys j0 ..
// j0 + BK − 1 (j0 a multiple of BK) is [D, BK] at dst + j0·D, zero columns past T. A tile product
// reads one panel as a contiguous block (16 KB at D = 64). Read as one [D, T] matrix instead, its
// D rows lie T floats apart, a multiple of 4 KB for T a multiple of 1024: every row then falls
// into the same few L1 sets, and the panel was fetched from L2 on every pass.
inline size_t panel_floats(int T, int D) {
  return size_t((T + kFlashBlockK - 1) / kFlashBlockK) * kFlashBlockK * D;
}
inline void pack_panels(float* dst, const float* src, size_t rs, int T, int D) {
  for (int j0 = 0; j0 < T; j0 += kFlashBlockK)
    pack_transposed(dst + size_t(j0) * D, src + size_t(j0) * rs, rs, std::min(kFlashBlockK, T - j0), D, kFlashBlockK);
}

// Where the rows of (b, h) start, and their stride, in a head-major or token-major buffer
// (FlashShape's ldq / ldk).
struct Layout {
  size_t sb, sh, rs;  // strides of b, h and t
  Layout(int H, int T, int D, int ld)
      : sb(ld > 0 ? size_t(T) * ld : size_t(H) * T * D), sh(ld > 0 ? size_t(D) : size_t(T) * D),
        rs(ld > 0 ? size_t(ld) : size_t(D)) {}
  size_t at(int b, int h) const { return size_t(b) * sb + size_t(h) * sh; }
};

// Recomputes the tile P[mr, ncp] = exp(S − L) (row stride kFlashBlockK) from the scores already
// in P: rows whose L is −inf (no visible key) are all 0.
inline void probs_from_lse(float* P, int mr, int ncp, int nc, int i0, int j0, const float* L, const TileCtx& t,
                           bool full) {
  for (int r = 0; r < mr; r++) {
    float* s = P + size_t(r) * kFlashBlockK;
    if (L[r] == kNegInf) {
      std::fill(s, s + ncp, 0.0f);
      continue;
    }
    mask_row(s, ncp, nc, j0, i0 + r + t.off, t, full);
    exp_row(s, ncp, L[r]);
  }
}

// A key block's gradients out: dk rows j0 .. j0 + nc − 1 of (b, g) = scale · dK, dv's = dV (both
// [nc, Dp] in the thread's tiles; layout lk).
inline void write_key_grads(float* dk, float* dv, const Layout& lk, int b, int g, int j0, int nc, int D, int Dp,
                            float scale, const float* dK, const float* dV) {
  for (int c = 0; c < nc; c++) {
    float* dko = dk + lk.at(b, g) + size_t(j0 + c) * lk.rs;
    float* dvo = dv + lk.at(b, g) + size_t(j0 + c) * lk.rs;
    for (int d = 0; d < D; d++) {
      dko[d] = scale * dK[size_t(c) * Dp + d];
      dvo[d] = dV[size_t(c) * Dp + d];
    }
  }
}

inline void ensure_thread_tiles(FlashWorkspace& ws, size_t floats) {
  const int nt = omp_get_max_threads();
  if (int(ws.thread_tiles.size()) < nt) ws.thread_tiles.resize(nt);
  for (auto& t : ws.thread_tiles)
    if (t.size() < floats) t.resize(floats);
}

inline void ensure_thread_bf16(FlashWorkspace& ws, size_t elems) {
  const int nt = omp_get_max_threads();
  if (int(ws.thread_bf16.size()) < nt) ws.thread_bf16.resize(nt);
  for (auto& t : ws.thread_bf16)
    if (t.size() < elems) t.resize(elems);
}

// Below this many multiply-adds a call runs on one thread: tiny calls (decoding steps, tests,
// gradchecks) would otherwise pay more for waking threads than for their arithmetic. The
// results do not depend on the thread count, so this changes speed only.
constexpr double kParallelMinWork = 1 << 20;

template <typename T>
inline T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Q and dO as padded rows [T, Dp] into qpack, dopack (unless null: read in place), and D_i =
// rowsum(dO ∘ O) into delta [B,Hq,Tq] (flash_backward.cpp).
void pack_rows_and_delta(float* qpack, float* dopack, float* delta, const float* q, const float* dout,
                         const float* out, const FlashShape& sh, const Layout& lq, int Dp, bool par,
                         FlashWorkspace& ws);

// The bf16 kernels (flash_bf16.cpp), taken by flash_forward / flash_backward when opt.bf16 is set.
void forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v, const FlashShape& sh,
                  const FlashOptions& opt, FlashWorkspace& ws);
void backward_bf16(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                   const float* v, const float* out, const float* lse, const FlashShape& sh, const FlashOptions& opt,
                   FlashWorkspace& ws);

// FlashSchedule::automatic: one task per (b, kv head) (fused) keeps every thread busy when the
// pairs split evenly over the threads or are many; otherwise the work is split finer.
inline bool by_pairs(int pairs, int threads) { return pairs % threads == 0 || pairs >= 8 * threads; }

}  // namespace attnlab::flash_tiles
