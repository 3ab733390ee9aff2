// FlashAttention on the CPU (Dao et al. 2022; FlashAttention-2, Dao 2023): exact attention in
// tiles with an online softmax,
//   forward   per tile: m' = max(m, rowmax S), l = l·e^(m−m') + Σ e^(S−m'), O = O·e^(m−m') + e^(S−m') V;
//             at the end O /= l and L = m + log l (the log-sum-exp)
//   backward  P = exp(S − L) recomputed per tile, D_i = rowsum(dO ∘ O), dS = P ∘ (dO Vᵀ − D)
// The masks and the memory bound are in flash.h and docs/attention.md.
//
// Building blocks, all over 16-float packets (GCC/Clang vector extensions: one AVX-512
// register with -march=native, two AVX2 registers elsewhere):
//   tile_gemm   C[M,N] (+)= A·B for one tile, N a multiple of 16: register tiles of 4 rows ×
//               64 columns, A read by broadcasting single elements (so A may be read transposed
//               through its strides), B read as contiguous rows.
//   vexp        exp over a packet (range reduction by ln 2 + degree-7 Taylor polynomial).
//   mask_row    scale, ALiBi bias and the −inf mask of one score row of a tile.
// To feed tile_gemm, K and V are packed once per call: Kᵀ and Vᵀ as [D, Tk'] (for S = Q Kᵀ and
// dP = dO Vᵀ) and K, V, Q, dO as [T, D'] rows padded with zeros to D' = 16·⌈D/16⌉ columns
// (Tk' = 16·⌈Tk/16⌉); padded key columns are masked like any other invisible key.
#include "attention/flash.h"
#include "ops/attention_core.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace attnlab {

namespace {

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
inline float hmax(v16 x) {
  float m = x[0];
  for (int i = 1; i < 16; i++) m = std::max(m, x[i]);
  return m;
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
void strip(int M, int K, const float* A, size_t sam, size_t sak, const float* B, size_t ldb, float* C, size_t ldc,
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
void tile_gemm(int M, int N, int K, const float* A, size_t sam, size_t sak, const float* B, size_t ldb, float* C,
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

// Packs src [rows, D] (row stride rs) as dst [rows, Dp] (zero columns D..Dp).
void pack_rows(float* dst, const float* src, size_t rs, int rows, int D, int Dp) {
  for (int r = 0; r < rows; r++) {
    std::memcpy(dst + size_t(r) * Dp, src + size_t(r) * rs, sizeof(float) * D);
    std::fill(dst + size_t(r) * Dp + D, dst + size_t(r) * Dp + Dp, 0.0f);
  }
}

// Packs src [rows, D] (row stride rs) as dstᵀ [D, ld] (zero columns rows..ld).
void pack_transposed(float* dst, const float* src, size_t rs, int rows, int D, int ld) {
  for (int d = 0; d < D; d++) {
    float* o = dst + size_t(d) * ld;
    for (int r = 0; r < rows; r++) o[r] = src[size_t(r) * rs + d];
    std::fill(o + rows, o + ld, 0.0f);
  }
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

void ensure_thread_tiles(FlashWorkspace& ws, size_t floats) {
  const int nt = omp_get_max_threads();
  if (int(ws.thread_tiles.size()) < nt) ws.thread_tiles.resize(nt);
  for (auto& t : ws.thread_tiles)
    if (t.size() < floats) t.resize(floats);
}

// Below this many multiply-adds a call runs on one thread: tiny calls (decoding steps, tests,
// gradchecks) would otherwise pay more for waking threads than for their arithmetic. The
// results do not depend on the thread count, so this changes speed only.
constexpr double kParallelMinWork = 1 << 20;

template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

void flash_exp(float* y, const float* x, int n) {
  for (int i = 0; i + 16 <= n; i += 16) st(y + i, vexp(ld(x + i)));
}

// ---- forward -------------------------------------------------------------------------------

void flash_forward(float* out, float* lse, const float* q, const float* k, const float* v, const FlashShape& sh,
                   const FlashOptions& opt, FlashWorkspace& ws) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, Dp = round16(D), Tkp = round16(Tk);
  constexpr int BQ = kFlashBlockQ, BK = kFlashBlockK;
  if (Tq == 0) return;
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
  const bool par = double(B) * Hq * Tq * Tk * D >= kParallelMinWork;
  // Kᵀ [D, Tk'] and V [Tk', D'] of every (b, kv head). When D and Tk are already multiples of 16,
  // V is read in place (no padded copy: the workspace stays O(Tk·D) smaller).
  const bool v_in_place = D == Dp && Tk == Tkp;
  float* kt = grow(ws.kt, size_t(B) * Hkv * D * Tkp);
  float* vpack = v_in_place ? nullptr : grow(ws.vp, size_t(B) * Hkv * Tkp * Dp);
#pragma omp parallel for schedule(static) if (par)
  for (int bg = 0; bg < B * Hkv; bg++) {
    const size_t src = lk.at(bg / Hkv, bg % Hkv);
    pack_transposed(kt + size_t(bg) * D * Tkp, k + src, lk.rs, Tk, D, Tkp);
    if (v_in_place) continue;
    float* vo = vpack + size_t(bg) * Tkp * Dp;
    pack_rows(vo, v + src, lk.rs, Tk, D, Dp);
    std::fill(vo + size_t(Tk) * Dp, vo + size_t(Tkp) * Dp, 0.0f);
  }
  const size_t vs = v_in_place ? lk.rs : size_t(Dp);  // row stride of V as read
  ensure_thread_tiles(ws, size_t(BQ) * BK + size_t(BQ) * Dp + 2 * BQ);
  const int nqb = (Tq + BQ - 1) / BQ;

#pragma omp parallel if (par)
  {
    float* S = ws.thread_tiles[omp_get_thread_num()].data();  // [BQ, BK] scores, then P
    float* acc = S + size_t(BQ) * BK;                          // [BQ, Dp] unnormalised O
    float* mrow = acc + size_t(BQ) * Dp;                       // running max per row
    float* lrow = mrow + BQ;                                   // running Σ exp(s − m)
#pragma omp for collapse(3) schedule(static, 1)
    for (int b = 0; b < B; b++)
      for (int h = 0; h < Hq; h++)
        for (int qb = 0; qb < nqb; qb++) {
          const int g = h / group, i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
          const TileCtx t{&opt, Tk, Tk - Tq, opt.key_keep ? opt.key_keep + size_t(b) * Tk : nullptr,
                          opt.alibi_slopes ? opt.alibi_slopes[h] : 0.0f, opt.alibi_slopes != nullptr};
          const float* Q = q + lq.at(b, h) + size_t(i0) * lq.rs;
          const float* KT = kt + (size_t(b) * Hkv + g) * D * Tkp;
          const float* V = v_in_place ? v + lk.at(b, g) : vpack + (size_t(b) * Hkv + g) * Tkp * Dp;
          std::fill(acc, acc + size_t(mr) * Dp, 0.0f);
          std::fill(mrow, mrow + mr, kNegInf);
          std::fill(lrow, lrow + mr, 0.0f);
          const int klo = key_band(i0 + t.off, Tk, opt.causal, opt.window).lo;
          const int khi = key_band(i0 + mr - 1 + t.off, Tk, opt.causal, opt.window).hi;
          for (int j0 = klo / BK * BK; j0 < khi; j0 += BK) {
            const int nc = std::min(BK, Tk - j0), ncp = round16(nc);
            // S = Q Kᵀ for this tile (scale and mask below)
            tile_gemm(mr, ncp, D, Q, lq.rs, 1, KT + j0, Tkp, S, BK, false);
            const bool full = tile_full(t, i0, mr, j0, nc, ncp);
            for (int r = 0; r < mr; r++) {
              float* s = S + size_t(r) * BK;
              mask_row(s, ncp, nc, j0, i0 + r + t.off, t, full);
              const float mx = row_max(s, ncp);
              if (mx == kNegInf) {  // nothing visible in this tile: P row = 0
                std::fill(s, s + ncp, 0.0f);
                continue;
              }
              // online softmax: rescale what was accumulated under the old max
              const float m_new = std::max(mrow[r], mx);
              const float alpha = std::exp(mrow[r] - m_new);  // 0 on the first visible tile
              lrow[r] = lrow[r] * alpha + exp_row(s, ncp, m_new);
              if (alpha != 1.0f) {
                float* o = acc + size_t(r) * Dp;
                for (int d = 0; d < Dp; d += 16) st(o + d, ld(o + d) * alpha);
              }
              mrow[r] = m_new;
            }
            // O += P V
            tile_gemm(mr, Dp, ncp, S, BK, 1, V + size_t(j0) * vs, vs, acc, Dp, true);
          }
          float* O = out + lq.at(b, h) + size_t(i0) * lq.rs;
          float* L = lse + (size_t(b) * Hq + h) * Tq + i0;
          for (int r = 0; r < mr; r++) {
            float* o = O + size_t(r) * lq.rs;
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
  }
}

// ---- backward ------------------------------------------------------------------------------

namespace {

// dq, dk, dv = 0: the backward of a call without queries or keys.
void zero_grads(float* dq, float* dk, float* dv, const FlashShape& sh, const Layout& lq, const Layout& lk) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++)
      for (int i = 0; i < Tq; i++) std::fill_n(dq + lq.at(b, h) + size_t(i) * lq.rs, D, 0.0f);
    for (int g = 0; g < Hkv; g++)
      for (int j = 0; j < Tk; j++) {
        std::fill_n(dk + lk.at(b, g) + size_t(j) * lk.rs, D, 0.0f);
        std::fill_n(dv + lk.at(b, g) + size_t(j) * lk.rs, D, 0.0f);
      }
  }
}

// Kᵀ and Vᵀ of every (b, kv head) as [D, Tkp]; and K as padded rows [Tkp, Dp] into kpack unless
// it is null (K read in place).
void pack_keys(float* kt, float* vt, float* kpack, const float* k, const float* v, const FlashShape& sh,
               const Layout& lk, int Dp, int Tkp, bool par) {
  const int Hkv = sh.Hkv, Tk = sh.Tk, D = sh.D;
#pragma omp parallel for schedule(static) if (par)
  for (int bg = 0; bg < sh.B * Hkv; bg++) {
    const size_t src = lk.at(bg / Hkv, bg % Hkv);
    pack_transposed(kt + size_t(bg) * D * Tkp, k + src, lk.rs, Tk, D, Tkp);
    pack_transposed(vt + size_t(bg) * D * Tkp, v + src, lk.rs, Tk, D, Tkp);
    if (!kpack) continue;
    float* ko = kpack + size_t(bg) * Tkp * Dp;
    pack_rows(ko, k + src, lk.rs, Tk, D, Dp);
    std::fill(ko + size_t(Tk) * Dp, ko + size_t(Tkp) * Dp, 0.0f);
  }
}

// Q and dO as padded rows into qpack, dopack (unless null: read in place), and D_i = rowsum(dO ∘ O)
// into delta [B,Hq,Tq].
void pack_rows_and_delta(float* qpack, float* dopack, float* delta, const float* q, const float* dout,
                         const float* out, const FlashShape& sh, const Layout& lq, int Dp, bool par,
                         FlashWorkspace& ws) {
  const int Hq = sh.Hq, Tq = sh.Tq, D = sh.D;
  ensure_thread_tiles(ws, size_t(D) + 16);
#pragma omp parallel for schedule(static) if (par)
  for (int bh = 0; bh < sh.B * Hq; bh++) {
    const size_t base = lq.at(bh / Hq, bh % Hq);
    if (qpack) {
      pack_rows(qpack + size_t(bh) * Tq * Dp, q + base, lq.rs, Tq, D, Dp);
      pack_rows(dopack + size_t(bh) * Tq * Dp, dout + base, lq.rs, Tq, D, Dp);
    }
    // D_i is summed by the tile kernel that computes dP_ij = dO_i·v_j below, in the same order
    // (d = 0..D−1, one multiply-add per step), not by a faster reduction of its own. Reason:
    // at huge scores a row of P is exactly one-hot, O_i is then exactly v_max, and the true
    // dS_i,max = P(dP − D_i) is 0. Summed in another order, dP and D_i differed by an ulp of
    // |dO||v|, and that ulp, times K (huge as well), put a spurious gradient into Q and K of up
    // to 1e13 × the real gradients (tests/attention/test_abuse.cpp, flash vs naive). Summed the
    // same way, dP_max == D_i bit for bit and dS is 0, as in the naive backward.
    float* orow = ws.thread_tiles[omp_get_thread_num()].data();  // [D + 16]: O_i, zero-padded
    for (int i = 0; i < Tq; i++) {
      const float* a = dout + base + size_t(i) * lq.rs;
      std::copy_n(out + base + size_t(i) * lq.rs, D, orow);
      std::fill(orow + D, orow + D + 16, 0.0f);
      // one register: lane 0 = Σ_d a[d]·orow[d] (lanes 1..15, shifted rows, are ignored)
      float lanes[16];
      tile_kernel<1, 1>(D, a, 0, 1, orow, 1, lanes, 16, false);
      delta[size_t(bh) * Tq + i] = lanes[0];
    }
  }
}

}  // namespace

void flash_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* out, const float* lse, const FlashShape& sh,
                    const FlashOptions& opt, FlashWorkspace& ws) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, Dp = round16(D), Tkp = round16(Tk);
  constexpr int BQ = kFlashBlockQ, BK = kFlashBlockK;
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
  if (Tq == 0 || Tk == 0) return zero_grads(dq, dk, dv, sh, lq, lk);
  const bool par = double(B) * Hq * Tq * Tk * D >= kParallelMinWork;
  // Rows of K, Q and dO are read in place when no padding is needed (D, and for K also Tk, multiples
  // of 16); otherwise padded copies are made.
  const bool rows_in_place = D == Dp, k_in_place = D == Dp && Tk == Tkp;
  float* kt = grow(ws.kt, size_t(B) * Hkv * D * Tkp);
  float* vt = grow(ws.vt, size_t(B) * Hkv * D * Tkp);
  float* kpack = k_in_place ? nullptr : grow(ws.kp, size_t(B) * Hkv * Tkp * Dp);
  float* qpack = rows_in_place ? nullptr : grow(ws.qp, size_t(B) * Hq * Tq * Dp);
  float* dopack = rows_in_place ? nullptr : grow(ws.dop, size_t(B) * Hq * Tq * Dp);
  float* delta = grow(ws.delta, size_t(B) * Hq * Tq);
  pack_keys(kt, vt, kpack, k, v, sh, lk, Dp, Tkp, par);
  // Rows of K (for dQ += dS K), Q and dO as read: in place, or the padded copies.
  const size_t ks = k_in_place ? lk.rs : size_t(Dp), qs = rows_in_place ? lq.rs : size_t(Dp);
  auto krows = [&](int b, int g) {
    return k_in_place ? k + lk.at(b, g) : kpack + (size_t(b) * Hkv + g) * Tkp * Dp;
  };
  auto qrows = [&](int b, int h) {
    return rows_in_place ? q + lq.at(b, h) : qpack + (size_t(b) * Hq + h) * Tq * Dp;
  };
  auto dorows = [&](int b, int h) {
    return rows_in_place ? dout + lq.at(b, h) : dopack + (size_t(b) * Hq + h) * Tq * Dp;
  };
  // D_i = rowsum(dO ∘ O)
  pack_rows_and_delta(qpack, dopack, delta, q, dout, out, sh, lq, Dp, par, ws);
  const int nqb = (Tq + BQ - 1) / BQ, nkb = (Tk + BK - 1) / BK;
  const int threads = par ? omp_get_max_threads() : 1;
  const bool fused = opt.backward == FlashBackward::fused ||
                     (opt.backward == FlashBackward::automatic &&
                      ((B * Hkv) % threads == 0 || B * Hkv >= 8 * threads));
  const size_t dq_floats = fused ? size_t(group) * Tq * Dp : 0;  // fused: dQ of the task's heads
  ensure_thread_tiles(ws, 2 * size_t(BQ) * BK + 2 * size_t(std::max(BQ, BK)) * Dp + dq_floats);
  const float scale = opt.scale;
  auto ctx = [&](int b, int h) {
    return TileCtx{&opt, Tk, Tk - Tq, opt.key_keep ? opt.key_keep + size_t(b) * Tk : nullptr,
                   opt.alibi_slopes ? opt.alibi_slopes[h] : 0.0f, opt.alibi_slopes != nullptr};
  };
  // P and dS = P ∘ (dP − D) of the tile (queries i0.., keys j0..) of head h: P in P, dS in dS
  auto tile_grads = [&](float* P, float* dS, int b, int h, int i0, int mr, int j0, int nc, int ncp) {
    const int g = h / group;
    const TileCtx t = ctx(b, h);
    const size_t bh = size_t(b) * Hq + h, bg = size_t(b) * Hkv + g;
    tile_gemm(mr, ncp, D, qrows(b, h) + i0 * qs, qs, 1, kt + bg * D * Tkp + j0, Tkp, P, BK, false);
    probs_from_lse(P, mr, ncp, nc, i0, j0, lse + bh * Tq + i0, t, tile_full(t, i0, mr, j0, nc, ncp));
    // dP = dO Vᵀ, then dS = P ∘ (dP − D_i) in place
    tile_gemm(mr, ncp, D, dorows(b, h) + i0 * qs, qs, 1, vt + bg * D * Tkp + j0, Tkp, dS, BK, false);
    const float* Di = delta + bh * Tq + i0;
    for (int r = 0; r < mr; r++) {
      float* ds = dS + size_t(r) * BK;
      const float* p = P + size_t(r) * BK;
      const float dr = Di[r];
      for (int j = 0; j < ncp; j += 16) st(ds + j, ld(p + j) * (ld(ds + j) - dr));
    }
  };
  auto key_range = [&](int i0, int mr) {
    const int off = Tk - Tq;
    return KeyBand{key_band(i0 + off, Tk, opt.causal, opt.window).lo, key_band(i0 + mr - 1 + off, Tk, opt.causal, opt.window).hi};
  };
  // dK_g, dV_g of key block kb, summed over the group's heads and the query blocks that see the
  // keys (in that order), written out scaled; with dQ non-null also dQ_h += dS K for every tile.
  auto key_block = [&](float* P, float* dS, float* dK, float* dV, float* dQ, int b, int g, int kb) {
    const int j0 = kb * BK, nc = std::min(BK, Tk - j0), ncp = round16(nc);
    std::fill(dK, dK + size_t(ncp) * Dp, 0.0f);
    std::fill(dV, dV + size_t(ncp) * Dp, 0.0f);
    const float* Kb = krows(b, g) + size_t(j0) * ks;
    for (int h = g * group; h < (g + 1) * group; h++)
      for (int qb = 0; qb < nqb; qb++) {
        const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
        const KeyBand kr = key_range(i0, mr);
        if (kr.hi <= j0 || kr.lo >= j0 + nc) continue;  // no query of the block sees these keys
        tile_grads(P, dS, b, h, i0, mr, j0, nc, ncp);
        // dV += Pᵀ dO ;  dK += dSᵀ Q   (A read transposed: A(c, r) = P[r, c])
        tile_gemm(ncp, Dp, mr, P, 1, BK, dorows(b, h) + i0 * qs, qs, dV, Dp, true);
        tile_gemm(ncp, Dp, mr, dS, 1, BK, qrows(b, h) + i0 * qs, qs, dK, Dp, true);
        // dQ += dS K
        if (dQ) tile_gemm(mr, Dp, ncp, dS, BK, 1, Kb, ks, dQ + (size_t(h - g * group) * Tq + i0) * Dp, Dp, true);
      }
    for (int c = 0; c < nc; c++) {
      float* dko = dk + lk.at(b, g) + size_t(j0 + c) * lk.rs;
      float* dvo = dv + lk.at(b, g) + size_t(j0 + c) * lk.rs;
      for (int d = 0; d < D; d++) {
        dko[d] = scale * dK[size_t(c) * Dp + d];
        dvo[d] = dV[size_t(c) * Dp + d];
      }
    }
  };
  auto write_dq = [&](const float* dQ, int b, int h, int i0, int mr) {
    float* dqo = dq + lq.at(b, h) + size_t(i0) * lq.rs;
    for (int r = 0; r < mr; r++)
      for (int d = 0; d < D; d++) dqo[size_t(r) * lq.rs + d] = scale * dQ[size_t(r) * Dp + d];
  };

#pragma omp parallel if (par)
  {
    float* P = ws.thread_tiles[omp_get_thread_num()].data();  // [BQ, BK]
    float* dS = P + size_t(BQ) * BK;                           // [BQ, BK]
    float* acc1 = dS + size_t(BQ) * BK;                        // [max(BQ,BK), Dp]
    float* acc2 = acc1 + size_t(std::max(BQ, BK)) * Dp;        // [BK, Dp]
    if (fused) {
      // one task per (b, kv head): every key block once; dQ of the group's heads accumulates
      // over the key blocks in increasing order, as the split schedule sums it
      float* dQ = acc2 + size_t(BK) * Dp;  // [group, Tq, Dp]
#pragma omp for collapse(2) schedule(static, 1)
      for (int b = 0; b < B; b++)
        for (int g = 0; g < Hkv; g++) {
          std::fill(dQ, dQ + dq_floats, 0.0f);
          for (int kb = 0; kb < nkb; kb++) key_block(P, dS, acc1, acc2, dQ, b, g, kb);
          for (int h = g * group; h < (g + 1) * group; h++)
            write_dq(dQ + size_t(h - g * group) * Tq * Dp, b, h, 0, Tq);
        }
    } else {
      // dK_g, dV_g: one task per (b, kv head, key block)
#pragma omp for collapse(3) schedule(static, 1)
      for (int b = 0; b < B; b++)
        for (int g = 0; g < Hkv; g++)
          for (int kb = 0; kb < nkb; kb++) key_block(P, dS, acc1, acc2, nullptr, b, g, kb);

      // dQ_h: one task per (b, h, query block), summing over the key blocks it sees
#pragma omp for collapse(3) schedule(static, 1)
      for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++)
          for (int qb = 0; qb < nqb; qb++) {
            const int g = h / group, i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
            float* dQ = acc1;
            std::fill(dQ, dQ + size_t(mr) * Dp, 0.0f);
            const KeyBand kr = key_range(i0, mr);
            const float* K = krows(b, g);
            for (int j0 = kr.lo / BK * BK; j0 < kr.hi; j0 += BK) {
              const int nc = std::min(BK, Tk - j0), ncp = round16(nc);
              tile_grads(P, dS, b, h, i0, mr, j0, nc, ncp);
              // dQ += dS K
              tile_gemm(mr, Dp, ncp, dS, BK, 1, K + size_t(j0) * ks, ks, dQ, Dp, true);
            }
            write_dq(dQ, b, h, i0, mr);
          }
    }
  }
}

// ---- attention weights for inspection ------------------------------------------------------

void flash_weights(float* P, const float* q, const float* k, const float* lse, const FlashShape& sh,
                   const FlashOptions& opt) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, off = Tk - Tq;
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
#pragma omp parallel for collapse(2) schedule(static) if (double(B) * Hq * Tq * Tk * D >= kParallelMinWork)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < Hq; h++) {
      const unsigned char* keep = opt.key_keep ? opt.key_keep + size_t(b) * Tk : nullptr;
      const float slope = opt.alibi_slopes ? opt.alibi_slopes[h] : 0.0f;
      const float* K = k + lk.at(b, h / group);
      for (int i = 0; i < Tq; i++) {
        const size_t row = (size_t(b) * Hq + h) * Tq + i;
        float* w = P + row * Tk;
        std::fill(w, w + Tk, 0.0f);
        const float L = lse[row];
        if (L == kNegInf) continue;
        const int p = i + off;
        const KeyBand bd = key_band(p, Tk, opt.causal, opt.window);
        const float* Qi = q + lq.at(b, h) + size_t(i) * lq.rs;
        // The scores are recomputed here in another summation order than the tile GEMM of the
        // forward, so they differ from the forward's by a few ulps of |s|. exp(s − L) with the
        // saved L would turn that difference into a factor exp(±ulps): harmless for scores of
        // size ~1, but at |s| ≳ 1e7 (huge inputs with scale none) an ulp is > 1 and the weights
        // came out as 0, off by percents, or inf. So the row is normalised by its own maximum
        // and sum instead (L only says whether the row sees any key): the weights are a softmax
        // of the recomputed scores, sum to 1 and agree with the forward's to the scores' rounding.
        float mx = kNegInf;
        for (int j = bd.lo; j < bd.hi; j++) {
          if (!key_kept(keep, j)) continue;
          const float* Kj = K + size_t(j) * lk.rs;
          float s = 0.0f;
          for (int d = 0; d < D; d++) s += Qi[d] * Kj[d];
          s *= opt.scale;
          if (opt.alibi_slopes) s -= slope * float(std::abs(p - j));
          w[j] = s;
          mx = std::max(mx, s);
        }
        float sum = 0.0f;
        for (int j = bd.lo; j < bd.hi; j++) {
          if (!key_kept(keep, j)) continue;
          w[j] = std::exp(w[j] - mx);
          sum += w[j];
        }
        for (int j = bd.lo; j < bd.hi; j++) w[j] /= sum;  // padded keys stay 0
      }
    }
}

}  // namespace attnlab
