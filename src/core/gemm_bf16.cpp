#include "core/gemm_bf16.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define ATTNLAB_BF16_X86 1
#endif

namespace attnlab {

const char* bf16_kernel_name(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::amx: return "amx";
    case Bf16Kernel::avx512bf16: return "avx512bf16";
    default: return "none";
  }
}

namespace {
Bf16Kernel g_kernel = Bf16Kernel::none;

#ifdef ATTNLAB_BF16_X86
bool cpu_has_avx512bf16() {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl"))  // these also check that the OS saves the AVX-512 state
    return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;  // CPUID.(7,1):EAX[5] AVX512_BF16
}

// AMX-TILE and AMX-BF16 in CPUID, and Linux's permission to use the tile data (asked once; the
// kernel grants it per process, and only where it saves the tile state on a context switch).
bool amx_ready() {
  static const bool ok = [] {
    if (!cpu_has_avx512bf16()) return false;  // the packing converts with AVX512-BF16
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 22) & 1u) || !((d >> 24) & 1u)) return false;  // EDX[22] AMX-BF16, EDX[24] AMX-TILE
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}
#endif
}  // namespace

bool bf16_kernel_supported(Bf16Kernel k) {
#ifdef ATTNLAB_BF16_X86
  if (k == Bf16Kernel::amx) return amx_ready();
  if (k == Bf16Kernel::avx512bf16) return cpu_has_avx512bf16();
#endif
  return k == Bf16Kernel::none;
}

std::vector<Bf16Kernel> bf16_kernels_supported() {
  std::vector<Bf16Kernel> ks;
  for (Bf16Kernel k : {Bf16Kernel::amx, Bf16Kernel::avx512bf16})
    if (bf16_kernel_supported(k)) ks.push_back(k);
  return ks;
}

Bf16Kernel bf16_kernel_best() {
  const char* v = std::getenv("ATTNLAB_BF16_KERNEL");
  if (v && *v) {
    Bf16Kernel k;
    if (std::strcmp(v, "none") == 0) return Bf16Kernel::none;  // as on a CPU without either (tests)
    if (std::strcmp(v, "amx") == 0) k = Bf16Kernel::amx;
    else if (std::strcmp(v, "avx512bf16") == 0) k = Bf16Kernel::avx512bf16;
    else user_error("ATTNLAB_BF16_KERNEL='{}' is not a bf16 kernel: use amx, avx512bf16 or none (or leave it unset)", v);
    if (!bf16_kernel_supported(k))
      user_error("ATTNLAB_BF16_KERNEL={}: this machine cannot run it (CPU flags, or the OS refused AMX)", v);
    return k;
  }
  const std::vector<Bf16Kernel> ks = bf16_kernels_supported();
  return ks.empty() ? Bf16Kernel::none : ks.front();
}

void gemm_set_bf16_kernel(Bf16Kernel k) {
  if (!bf16_kernel_supported(k))
    user_error("the bf16 kernel {} is not supported on this machine", bf16_kernel_name(k));
  g_kernel = k;
}

Bf16Kernel gemm_bf16_kernel() { return g_kernel; }

#ifdef ATTNLAB_BF16_X86
// ---------------------------------------------------------------------------------------------
// Kernels. Every function below that touches AVX-512, AVX512-BF16 or AMX carries the target
// attribute, so this file builds for any x86-64 (GCC and clang alike); they run only after the
// checks above. No templates or shared inline functions here (their one definition could be
// this one).
#define ATTNLAB_BF16_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))
namespace {
// The packed layout. op(A) [M,K] and op(B) [K,N] are cut into tiles of 16 rows (of C) by 32 K
// values, bf16, zero-padded: M and N up to multiples of 32, K to a multiple of 32. A tile is 16
// lines of 16 dwords, each dword one (even k, odd k) pair:
//   A tile [m][p] = (A[m][k0+2p], A[m][k0+2p+1])  -- AMX's A operand, 16 rows x 64 bytes
//   B tile [p][n] = (B[k0+2p][n], B[k0+2p+1][n])  -- AMX's B operand ("VNNI" layout)
// Tile (t, kt) of a matrix with KT tiles along K starts at element (t * KT + kt) * 512.
constexpr int kTileElems = 512;

inline int imin(int a, int b) { return a < b ? a : b; }

// 16 ones from bit 0, the first n of them set (n clamped to 0..16)
inline __mmask16 first(int n) { return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// r[i] := column i of the 16x16 dword matrix whose rows are r[0..15]: 4x4 blocks within the
// 128-bit lanes (unpack), then across the lanes (shuffle_i32x4). The masked forms with every lane
// selected are the same instructions; GCC 12 builds the unmasked ones on _mm512_undefined_*() and
// warns where they are inlined (GCC bug 105593, as in gemm.cpp).
ATTNLAB_BF16_FN inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_mask_unpacklo_epi32(r[i], 0xFFFF, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_epi32(r[i], 0xFFFF, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // lane L of u[i + j]: column 4L + j of rows i..i+3
    u[i] = _mm512_mask_unpacklo_epi64(t[i], 0xFF, t[i], t[i + 2]);
    u[i + 1] = _mm512_mask_unpackhi_epi64(t[i], 0xFF, t[i], t[i + 2]);
    u[i + 2] = _mm512_mask_unpacklo_epi64(t[i + 1], 0xFF, t[i + 1], t[i + 3]);
    u[i + 3] = _mm512_mask_unpackhi_epi64(t[i + 1], 0xFF, t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; j++) {
    const __m512i v0 = _mm512_mask_shuffle_i32x4(u[j], 0xFFFF, u[j], u[4 + j], 0x88);
    const __m512i v1 = _mm512_mask_shuffle_i32x4(u[8 + j], 0xFFFF, u[8 + j], u[12 + j], 0x88);
    const __m512i w0 = _mm512_mask_shuffle_i32x4(u[j], 0xFFFF, u[j], u[4 + j], 0xDD);
    const __m512i w1 = _mm512_mask_shuffle_i32x4(u[8 + j], 0xFFFF, u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_mask_shuffle_i32x4(v0, 0xFFFF, v0, v1, 0x88);
    r[8 + j] = _mm512_mask_shuffle_i32x4(v0, 0xFFFF, v0, v1, 0xDD);
    r[4 + j] = _mm512_mask_shuffle_i32x4(w0, 0xFFFF, w0, w1, 0x88);
    r[12 + j] = _mm512_mask_shuffle_i32x4(w0, 0xFFFF, w0, w1, 0xDD);
  }
}

// Packs tile (r0.., k0..) of the logical matrix X(r, k), r < R, k < K, where X(r, k) is
// x[r * ld + k] (k_contig) or x[k * ld + r], into `out` as an A tile (rows = r) or, with
// b_layout, a B tile (rows = pairs).
ATTNLAB_BF16_FN void pack_tile(const float* x, int ld, bool k_contig, int R, int K, int r0, int k0, bool b_layout,
               uint16_t* out) {
  __m512i v[16];  // v[r]: the 16 pairs of row r (k_contig); else v[p]: pair p of the 16 rows
  if (k_contig) {
    const __mmask16 lo = first(K - k0), hi = first(K - k0 - 16);
    for (int r = 0; r < 16; r++) {
      v[r] = _mm512_setzero_si512();
      if (r0 + r < R) {
        const float* row = x + size_t(r0 + r) * ld + k0;
        const __m512 a = _mm512_maskz_loadu_ps(lo, row), b = _mm512_maskz_loadu_ps(hi, row + 16);
        v[r] = (__m512i)_mm512_cvtne2ps_pbh(b, a);  // halves: k0..k0+15 low, k0+16.. high = pairs in order
      }
    }
  } else {
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23,
                                                7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __mmask16 rm = first(R - r0);
    for (int p = 0; p < 16; p++) {
      const int ke = k0 + 2 * p;
      const __m512 e = ke < K ? _mm512_maskz_loadu_ps(rm, x + size_t(ke) * ld + r0) : _mm512_setzero_ps();
      const __m512 o = ke + 1 < K ? _mm512_maskz_loadu_ps(rm, x + size_t(ke + 1) * ld + r0) : _mm512_setzero_ps();
      // [e0..e15, o0..o15] -> [e0, o0, e1, o1, ...]: dword r = the pair of row r
      v[p] = _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(o, e));
    }
  }
  if (k_contig == b_layout) transpose16(v);  // v holds the other orientation
  // A full-mask store: GCC turned the plain stores of v into a call of memcpy (v sits in memory
  // for the transpose), which cost more than the 16 stores it stands for
  for (int i = 0; i < 16; i++) _mm512_mask_storeu_epi32(out + i * 32, 0xFFFF, v[i]);
}

// C[m0.., n0..] (a 32x32 unit, clipped to M, N) = alpha * acc + beta * C
ATTNLAB_BF16_FN void write_unit(const float* acc, int rows, int cols, float alpha, float beta, float* C, int ldc) {
  const __mmask16 m0 = first(cols), m1 = first(cols - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < rows; i++) {
    float* c = C + size_t(i) * ldc;
    __m512 x0 = _mm512_mul_ps(va, _mm512_load_ps(acc + i * 32));
    __m512 x1 = _mm512_mul_ps(va, _mm512_load_ps(acc + i * 32 + 16));
    if (beta != 0.0f) {  // beta 0: C is not read (it may hold garbage)
      x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c), x0);
      x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + 16), x1);
    }
    _mm512_mask_storeu_ps(c, m0, x0);
    _mm512_mask_storeu_ps(c + 16, m1, x1);
  }
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// One 32x32 unit of C (row stride ldc) with AMX: tiles 0-3 accumulate C (loaded from C when
// accumulating, else zeroed), 4-5 hold A, 6-7 hold B. prefetch: the next K step's tiles into L1
// while these multiply (bf16_gemm's operands stream from L2; a fused kernel's sit in L1).
ATTNLAB_BF16_FN void unit_amx(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0, const uint16_t* b1, int KT,
                              float* C, size_t ldc, bool accumulate, bool prefetch) {
  const size_t stride = ldc * sizeof(float);
  float* c2 = C + 16 * ldc;
  __asm__ volatile("" ::: "memory");  // the tile loads read C and the tiles behind the compiler's back
  if (accumulate) {
    _tile_loadd(0, C, stride);
    _tile_loadd(1, C + 16, stride);
    _tile_loadd(2, c2, stride);
    _tile_loadd(3, c2 + 16, stride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int kt = 0; kt < KT; kt++) {
    const size_t off = size_t(kt) * kTileElems;
    _tile_loadd(4, a0 + off, 64);
    _tile_loadd(5, a1 + off, 64);
    _tile_loadd(6, b0 + off, 64);
    _tile_loadd(7, b1 + off, 64);
    if (prefetch)  // B's next tiles (and A's, which leave L1 when K is long): the loads wait on L2 otherwise
      for (int l = 0; l < 16; l++) {
        _mm_prefetch(reinterpret_cast<const char*>(b0 + off + kTileElems + l * 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b1 + off + kTileElems + l * 32), _MM_HINT_T0);
      }
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, C, stride);
  _tile_stored(1, C + 16, stride);
  _tile_stored(2, c2, stride);
  _tile_stored(3, c2 + 16, stride);
  __asm__ volatile("" ::: "memory");  // the tile stores write C behind the compiler's back
}

// One 32x32 unit with AVX512-BF16, 8 rows x 32 columns at a time: per pair p, two B lines and a
// broadcast pair of each of the 8 rows. Each element sums its pairs in the order AMX does.
ATTNLAB_BF16_FN void unit_avx512(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0, const uint16_t* b1, int KT,
                                 float* acc) {
  for (int h = 0; h < 4; h++) {
    const uint32_t* a = reinterpret_cast<const uint32_t*>(h < 2 ? a0 : a1) + (h % 2) * 8 * 16;
    __m512 c[8][2];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int kt = 0; kt < KT; kt++) {
      const size_t off = size_t(kt) * kTileElems;
      const uint32_t* at = a + off / 2;
      const uint16_t* bt0 = b0 + off;
      const uint16_t* bt1 = b1 + off;
      for (int p = 0; p < 16; p++) {
        const __m512bh v0 = (__m512bh)_mm512_loadu_si512(bt0 + p * 32);
        const __m512bh v1 = (__m512bh)_mm512_loadu_si512(bt1 + p * 32);
        for (int i = 0; i < 8; i++) {
          const __m512bh x = (__m512bh)_mm512_set1_epi32(int(at[i * 16 + p]));
          c[i][0] = _mm512_dpbf16_ps(c[i][0], x, v0);
          c[i][1] = _mm512_dpbf16_ps(c[i][1], x, v1);
        }
      }
    }
    for (int i = 0; i < 8; i++) {
      _mm512_store_ps(acc + (h * 8 + i) * 32, c[i][0]);
      _mm512_store_ps(acc + (h * 8 + i) * 32 + 16, c[i][1]);
    }
  }
}

// The units [u0, u1) of C (units of 32x32 numbered row-major, or column-major with by_cols: all
// rows of one B panel, then the next), with one kernel.
ATTNLAB_BF16_FN void run_units(bool amx, const uint16_t* ap, const uint16_t* bp, int M, int N, int KT, bool by_cols,
                               long u0, long u1, float alpha, float beta, float* C, int ldc) {
  const int MU = (M + 31) / 32, NU = (N + 31) / 32;
  alignas(64) float acc[32 * 32];
  const Bf16TileScope tiles(amx ? Bf16Kernel::amx : Bf16Kernel::none);  // AMX: configured, released at the end
  const size_t panel = size_t(KT) * kTileElems;  // one tile row (16 rows) of A or B, all of K
  for (long u = u0; u < u1; u++) {
    const int mu = by_cols ? int(u % MU) : int(u / NU), nu = by_cols ? int(u / MU) : int(u % NU);
    const uint16_t* a0 = ap + size_t(2 * mu) * panel;
    const uint16_t* b0 = bp + size_t(2 * nu) * panel;
    __asm__ volatile("" ::: "memory");  // the tile loads read the packed buffers behind the compiler's back
    if (amx) unit_amx(a0, a0 + panel, b0, b0 + panel, KT, acc, 32, false, true);
    else unit_avx512(a0, a0 + panel, b0, b0 + panel, KT, acc);
    const int m0 = mu * 32, n0 = nu * 32;
    write_unit(acc, imin(32, M - m0), imin(32, N - n0), alpha, beta, C + size_t(m0) * ldc + n0, ldc);
  }
}

// The same unit with AVX512-BF16: unit_avx512 into a scratch block, then added to (or stored in) C.
ATTNLAB_BF16_FN void unit_avx512_inplace(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0,
                                         const uint16_t* b1, int KT, float* C, size_t ldc, bool accumulate) {
  alignas(64) float acc[32 * 32];
  unit_avx512(a0, a1, b0, b1, KT, acc);
  for (int i = 0; i < 32; i++)
    for (int h = 0; h < 2; h++) {
      float* c = C + size_t(i) * ldc + 16 * h;
      const __m512 x = _mm512_load_ps(acc + i * 32 + 16 * h);
      _mm512_storeu_ps(c, accumulate ? _mm512_add_ps(_mm512_loadu_ps(c), x) : x);
    }
}
}  // namespace

void bf16_gemm(Bf16Kernel k, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (k == Bf16Kernel::none) user_error("bf16_gemm: no kernel");
  if (K <= 0 || alpha == 0.0f) {  // C = beta C (as BLAS does)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        float& c = C[size_t(i) * ldc + j];
        c = beta == 0.0f ? 0.0f : beta * c;
      }
    return;
  }
  const int KT = (K + 31) / 32;
  const size_t a_elems = size_t((M + 31) / 32 * 2) * KT * kTileElems;
  const size_t b_elems = size_t((N + 31) / 32 * 2) * KT * kTileElems;
  // grown, never shrunk: no allocation per call; on cache lines (core/aligned.h: a tile row that
  // straddles two lines loads several times slower)
  thread_local aligned_vector<uint16_t> abuf, bbuf;
  if (abuf.size() < a_elems) abuf.resize(a_elems);
  if (bbuf.size() < b_elems) bbuf.resize(b_elems);
  const bool amx = k == Bf16Kernel::amx;
  // A thread walks its units keeping one operand's panel in cache while the other's stream past:
  // the smaller packed operand is the one streamed (it stays in L2 across the sweeps), the larger
  // is read once. Row-major sweeps all of B per row of A: a 6 MB B (the MLP's weight gradient,
  // K = 2048) came from L3 once per 32 rows of A.
  const bool by_cols = b_elems > a_elems;
  const long units = long((M + 31) / 32) * ((N + 31) / 32);
  uint16_t* ap = abuf.data();
  uint16_t* bp = bbuf.data();
  // The tiles of op(A), then those of op(B), each packed on its own. op(A)[m][k] = A[m*lda+k]
  // unless trans_a, and op(B)[k][n] = B[n*ldb+k] when trans_b: k-contiguous.
  const long a_tiles = long((M + 31) / 32 * 2) * KT, tiles = a_tiles + long((N + 31) / 32 * 2) * KT;
  // Tiles in the order that reads memory in long runs: along K where K is contiguous (16 rows,
  // 128 bytes further each), else across the rows (32 lines of K, the next 64 bytes of each). Going
  // along K through a matrix whose K is strided, every tile touched 32 lines a row apart that the
  // hardware prefetcher did not follow, and packing was 22% of a bf16 training step (perf).
  const long art = (M + 31) / 32 * 2, brt = (N + 31) / 32 * 2;  // row tiles of op(A), column tiles of op(B)
  const auto pack_one = [&](const float* x, int ld, bool k_contig, int R, bool b_layout, long rt, uint16_t* out,
                            long i) {
    const long t = k_contig ? i / KT : i % rt, kt = k_contig ? i % KT : i / rt;
    pack_tile(x, ld, k_contig, R, K, int(t) * 16, int(kt) * 32, b_layout, out + (t * KT + kt) * kTileElems);
  };
  const auto pack = [&](long i) {
    if (i < a_tiles) pack_one(A, lda, !trans_a, M, false, art, ap, i);
    else pack_one(B, ldb, trans_b, N, true, brt, bp, i - a_tiles);
  };
  // inside one of attnlab's parallel loops (attention heads), or small: this thread does it all
  if (omp_in_parallel() || omp_get_max_threads() == 1 || units == 1) {
    for (long i = 0; i < tiles; i++) pack(i);
    run_units(amx, ap, bp, M, N, KT, by_cols, 0, units, alpha, beta, C, ldc);
    return;
  }
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (long i = 0; i < tiles; i++) pack(i);
    // (past the loop's barrier every tile is packed) contiguous ranges of units, in by_cols order:
    // a thread keeps a panel of the larger operand in cache while the smaller streams past
    const long nt = omp_get_num_threads(), t = omp_get_thread_num();
    const long u0 = units * t / nt, u1 = units * (t + 1) / nt;
    if (u1 > u0) run_units(amx, ap, bp, M, N, KT, by_cols, u0, u1, alpha, beta, C, ldc);
  }
}

void bf16_tiles_pack(const float* x, int ld, bool k_contig, int R, int K, int RT, int KT, bool b_layout,
                     uint16_t* out) {
  for (int t = 0; t < RT; t++)
    for (int kt = 0; kt < KT; kt++)
      pack_tile(x, ld, k_contig, R, K, t * 16, kt * 32, b_layout, out + (size_t(t) * KT + kt) * kTileElems);
}

void bf16_tiles_product(Bf16Kernel k, const uint16_t* a, size_t a_ts, const uint16_t* b, size_t b_ts, int MT,
                        int NT, int KT, float* C, size_t ldc, bool accumulate) {
  const bool amx = k == Bf16Kernel::amx;
  for (int mt = 0; mt < MT; mt += 2)
    for (int nt = 0; nt < NT; nt += 2) {
      const uint16_t* a0 = a + size_t(mt) * a_ts;
      const uint16_t* b0 = b + size_t(nt) * b_ts;
      float* c = C + size_t(mt) * 16 * ldc + size_t(nt) * 16;
      if (amx) unit_amx(a0, a0 + a_ts, b0, b0 + b_ts, KT, c, ldc, accumulate, false);
      else unit_avx512_inplace(a0, a0 + a_ts, b0, b0 + b_ts, KT, c, ldc, accumulate);
    }
}

ATTNLAB_BF16_FN Bf16TileScope::Bf16TileScope(Bf16Kernel k) : amx_(k == Bf16Kernel::amx) {
  if (!amx_) return;
  TileConfig cfg;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  // GCC does not see the instruction read cfg through the pointer, and drops the stores above
  // (found by a crash: an all-zero configuration); the barrier keeps them
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

ATTNLAB_BF16_FN Bf16TileScope::~Bf16TileScope() {
  if (amx_) _tile_release();
}
#else
void bf16_gemm(Bf16Kernel, bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*,
               int) {
  user_error("bf16 products need an x86-64 CPU with AVX512-BF16 or AMX");
}
void bf16_tiles_pack(const float*, int, bool, int, int, int, int, bool, uint16_t*) {
  user_error("bf16 products need an x86-64 CPU with AVX512-BF16 or AMX");
}
void bf16_tiles_product(Bf16Kernel, const uint16_t*, size_t, const uint16_t*, size_t, int, int, int, float*, size_t,
                        bool) {
  user_error("bf16 products need an x86-64 CPU with AVX512-BF16 or AMX");
}
Bf16TileScope::Bf16TileScope(Bf16Kernel) : amx_(false) {}
Bf16TileScope::~Bf16TileScope() = default;
#endif

}  // namespace attnlab
