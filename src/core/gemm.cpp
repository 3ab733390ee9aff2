#include "core/gemm.h"

#include "core/error.h"
#include "core/gemm_bf16.h"

#ifdef ATTNLAB_HAVE_CBLAS
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <cblas.h>
#ifdef ATTNLAB_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#else
#include <cstdlib>

#include <Eigen/Core>
#endif

namespace attnlab {

#ifdef ATTNLAB_HAVE_CBLAS
// Determinism by construction. OpenBLAS splits a product among its threads by a partition that
// depends on the thread count, and an element's last bits can depend on that partition. Measured
// with OpenBLAS 0.3.21 (tests/core/test_gemm.cpp): with the Haswell kernels (chosen on AMD Zen, or
// with OPENBLAS_CORETYPE=Haswell) an element changes when the rows around it are cut differently,
// so 1 and 2 threads disagree on most products; with the SkylakeX kernels long sums (K = 1000)
// disagree between 1 and 2 threads as well.
// So attnlab owns the partition. C is cut into blocks along its longer side, at boundaries that
// depend only on (M, N, K); every block is one single-threaded OpenBLAS (or oneDNN) call (the OpenMP
// builds run single-threaded inside an active parallel region, and with 1 thread anyway); and
// the blocks are spread over attnlab's OpenMP threads. No element's sum is split, and each element
// is computed by the same kernel call on the same block for any thread count.
//
// Block sizes: at least kMinSide rows/columns (multiples of 16, the kernels' unroll) and about
// kBlockWork multiply-adds, at most kMaxBlocks blocks. Packing the shared operand once per block
// costs 1/side of the block's arithmetic, under 2% at 64.
namespace {
constexpr long kMinSide = 64;
constexpr long kBlockWork = 1L << 19;   // multiply-adds per block (64 × 64 × 128)
constexpr long kMaxBlocks = 64;
constexpr long kGemvBlockWork = 1L << 16;  // gemv is memory-bound: smaller blocks still pay

long round_up(long x, long m) { return (x + m - 1) / m * m; }

// The block length along a side of length `side`, for `work` multiply-adds in all.
long block_len(long side, long work, long block_work) {
  long nb = std::min({side / kMinSide, work / block_work, kMaxBlocks});
  if (nb <= 1) return side;
  return round_up((side + nb - 1) / nb, 16);
}

// Runs f(lo, hi) over [0, side) in blocks of `len`, each block a single-threaded library call: in
// parallel when called outside a parallel region with several threads, in order otherwise.
template <class F>
void for_blocks(long side, long len, F&& f) {
  const long nb = (side + len - 1) / len;
  const auto serial = [&] {
    for (long b = 0; b < nb; b++) f(b * len, std::min(side, (b + 1) * len));
  };
  if (omp_in_parallel()) {  // inside attnlab's own parallel loops: OpenBLAS is single-threaded
    serial();
    return;
  }
  const int threads = omp_get_max_threads();
  if (nb == 1 || threads == 1) {
    // OpenBLAS's OpenMP build takes its thread count from omp_get_max_threads(): make it 1 here
    if (threads > 1) omp_set_num_threads(1);
    serial();
    if (threads > 1) omp_set_num_threads(threads);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (long b = 0; b < nb; b++) f(b * len, std::min(side, (b + 1) * len));
}
// Which library runs the blocks of a large product: OpenBLAS, unless ATTNLAB_GEMM=onednn (and
// oneDNN is built in). Read once; a value that is neither is refused.
//
// Why oneDNN is not the default although it is the faster library (docs/performance.md): with
// oneDNN 2.6.3 on a Sapphire Rapids VM, about a third of the training runs stopped by SIGINT
// (tests/e2e/crash_errors.sh) died at exit with "corrupted size vs. prev_size" in free() (of an
// attention module's buffers). Capping oneDNN's ISA below AMX with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16
// in the environment removed it (0 of 10 runs), dnnl_set_max_cpu_isa() did not (3 of 8), and the
// cause is not understood, so oneDNN stays opt-in and, when chosen, gets that variable (unless it is
// already set) before its first call.
bool blocks_by_onednn() {
  static const bool onednn = [] {
    const char* v = std::getenv("ATTNLAB_GEMM");
    if (!v || !*v || std::strcmp(v, "openblas") == 0) return false;
    if (std::strcmp(v, "onednn") == 0) {
#ifdef ATTNLAB_HAVE_ONEDNN
      ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", 0);
      return true;
#else
      user_error("ATTNLAB_GEMM=onednn, but this attnlab was built without oneDNN (install libdnnl-dev and rebuild)");
#endif
    }
    user_error("ATTNLAB_GEMM='{}' is not a GEMM library: use openblas or onednn (or leave it unset)", v);
  }();
  return onednn;
}

// One block: a single-threaded call (OpenBLAS's and oneDNN's OpenMP builds both run
// single-threaded inside an active parallel region, and for_blocks sets 1 thread otherwise).
void block_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
#ifdef ATTNLAB_HAVE_ONEDNN
  // row-major, like attnlab; a call oneDNN refuses (it checks its arguments) goes to OpenBLAS
  if (blocks_by_onednn() &&
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) ==
          dnnl_success)
    return;
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

#if defined(__AVX512F__)
// Few rows times a weight matrix stored [N,K], as a Linear layer's forward in batched decoding:
//   C[m,n] = alpha · Σ_k A[m,k] B[n,k] + beta · C[m,n],   m < M ≤ kSmallRows
// OpenBLAS's sgemm packs B on every call, which for M = 8 costs more memory traffic than the
// product itself (W2 at batch 8 spent a third of its time in the packing routine), and a
// matrix-vector product per row reads B M times. This kernel reads each row of B once: a tile
// of MR rows of A by NR rows of B keeps MR·NR sixteen-lane partial sums in registers along K, then
// reduces each to one number. Every element is the same sequence of operations whatever the tile
// or the block it falls in, so the bits depend on the shape only (no thread-count dependence).
constexpr int kSmallRows = 16;

// The sum of the 16 lanes, in a fixed order. GCC 12's header builds _mm512_reduce_add_ps and the
// unmasked shuffles and extracts on _mm*_undefined_*() and then warns where they are inlined (GCC
// bug 105593, fixed in 13); the masked forms with every lane selected are the same instructions.
inline float lane_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(1, 0, 3, 2)));  // other half
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(2, 3, 0, 1)));  // other quarter
  __m128 x = _mm512_mask_extractf32x4_ps(_mm_setzero_ps(), 0xF, v, 0);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

template <int MR, int NR>
void tile_rows_nt(int K, float alpha, const float* A, int lda, const float* B, int ldb, float beta, float* C,
                  int ldc) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 b[NR];
    for (int j = 0; j < NR; j++) {
      b[j] = _mm512_loadu_ps(B + size_t(j) * ldb + k);
      // the next tile's rows, a tile ahead (B streams from memory; rows are too short for the
      // hardware prefetcher to ramp up on each); a prefetch past the end of B does not fault
      _mm_prefetch(reinterpret_cast<const char*>(B + size_t(j + NR) * ldb + k), _MM_HINT_T0);
    }
    for (int i = 0; i < MR; i++) {
      const __m512 a = _mm512_loadu_ps(A + size_t(i) * lda + k);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
    }
  }
  if (k < K) {  // the last K mod 16 columns, masked (lanes past K read nothing and add 0)
    const __mmask16 tail = __mmask16((1u << (K - k)) - 1);
    __m512 b[NR];
    for (int j = 0; j < NR; j++) b[j] = _mm512_maskz_loadu_ps(tail, B + size_t(j) * ldb + k);
    for (int i = 0; i < MR; i++) {
      const __m512 a = _mm512_maskz_loadu_ps(tail, A + size_t(i) * lda + k);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) {
      float* c = C + size_t(i) * ldc + j;
      const float s = alpha * lane_sum(acc[i][j]);
      *c = beta == 0.0f ? s : s + beta * *c;  // beta 0: C is not read (it may hold garbage)
    }
}

using TileFn = void (*)(int, float, const float*, int, const float*, int, float, float*, int);
template <int MR>
constexpr TileFn tile_row[4] = {tile_rows_nt<MR, 1>, tile_rows_nt<MR, 2>, tile_rows_nt<MR, 3>,
                                tile_rows_nt<MR, 4>};
constexpr const TileFn* tile_table[4] = {tile_row<1>, tile_row<2>, tile_row<3>, tile_row<4>};

// columns n0..n1 of C, every row
void rows_nt(int M, long n0, long n1, int K, float alpha, const float* A, int lda, const float* B, int ldb,
             float beta, float* C, int ldc) {
  for (long n = n0; n < n1; n += 4) {
    const int nr = int(std::min(4L, n1 - n));
    for (int m = 0; m < M; m += 4) {
      const int mr = std::min(4, M - m);
      tile_table[mr - 1][nr - 1](K, alpha, A + size_t(m) * lda, lda, B + size_t(n) * ldb, ldb, beta,
                                 C + size_t(m) * ldc + n, ldc);
    }
  }
}
#endif
}  // namespace

namespace {
void sgemm_fp32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
#if defined(__AVX512F__)
  if (M <= kSmallRows && M > 1 && trans_b && !trans_a) {
    const long len = block_len(N, long(N) * K, kGemvBlockWork);
    for_blocks(N, len, [&](long n0, long n1) { rows_nt(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc); });
    return;
  }
#endif
  if (M <= 4) {
    // A few rows (incremental decoding: one token per sequence). sgemm would pack all of B for
    // them, which costs more than the product; a matrix-vector product per row reads B once.
    //   C[m,:] = alpha · op(B)ᵀ-contracted with row m of op(A) + beta · C[m,:]
    // The N outputs are cut into fixed blocks, as above.
    const long len = block_len(N, long(N) * K, kGemvBlockWork);
    for_blocks(N, len, [&](long n0, long n1) {
      const int nn = int(n1 - n0);
      for (int m = 0; m < M; m++) {
        const float* a = trans_a ? A + m : A + size_t(m) * lda;  // row m of op(A), stride inc
        const int inc = trans_a ? lda : 1;
        float* c = C + size_t(m) * ldc + n0;
        if (trans_b)  // op(B)[k,n] = B[n,k]: C[m,n0:n1] = B[n0:n1,:] · a
          cblas_sgemv(CblasRowMajor, CblasNoTrans, nn, K, alpha, B + size_t(n0) * ldb, ldb, a, inc, beta, c, 1);
        else  // op(B) = B [K,N]: C[m,n0:n1] = B[:,n0:n1]ᵀ · a
          cblas_sgemv(CblasRowMajor, CblasTrans, K, nn, alpha, B + n0, ldb, a, inc, beta, c, 1);
      }
    });
    return;
  }
  const long work = long(M) * N * K;
  if (M >= N) {
    // row blocks of C: rows m0..m1 of op(A)
    const long len = block_len(M, work, kBlockWork);
    for_blocks(M, len, [&](long m0, long m1) {
      const float* a = trans_a ? A + m0 : A + size_t(m0) * lda;
      block_gemm(trans_a, trans_b, int(m1 - m0), N, K, alpha, a, lda, B, ldb, beta, C + size_t(m0) * ldc, ldc);
    });
  } else {
    // column blocks of C: columns n0..n1 of op(B)
    const long len = block_len(N, work, kBlockWork);
    for_blocks(N, len, [&](long n0, long n1) {
      const float* b = trans_b ? B + size_t(n0) * ldb : B + n0;
      block_gemm(trans_a, trans_b, M, int(n1 - n0), K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}

}  // namespace

void gemm_select_from_env() { (void)blocks_by_onednn(); }

const char* gemm_backend() { return blocks_by_onednn() ? "onednn + openblas-openmp" : "openblas-openmp"; }
#else
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using CMap = Eigen::Map<const RowMat, 0, Stride>;
using Map = Eigen::Map<RowMat, 0, Stride>;

namespace {
void sgemm_fp32(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
  Map c(C, M, N, Stride(ldc));
  if (beta == 0.0f) c.setZero();
  else if (beta != 1.0f) c *= beta;
  // a stored matrix of shape [rows, cols] with row stride ld
  CMap a(A, trans_a ? K : M, trans_a ? M : K, Stride(lda));
  CMap b(B, trans_b ? N : K, trans_b ? K : N, Stride(ldb));
  if (!trans_a && !trans_b) c.noalias() += alpha * a * b;
  else if (trans_a && !trans_b) c.noalias() += alpha * a.transpose() * b;
  else if (!trans_a && trans_b) c.noalias() += alpha * a * b.transpose();
  else c.noalias() += alpha * a.transpose() * b.transpose();
}
}  // namespace

void gemm_select_from_env() {
  const char* v = std::getenv("ATTNLAB_GEMM");
  if (v && *v) user_error("ATTNLAB_GEMM='{}': this attnlab was built without OpenBLAS and oneDNN (GEMMs via Eigen)", v);
}

const char* gemm_backend() { return "eigen"; }
#endif

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (const Bf16Kernel k = gemm_bf16_kernel(); k != Bf16Kernel::none)  // train.precision: bf16
    bf16_gemm(k, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    sgemm_fp32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace attnlab
