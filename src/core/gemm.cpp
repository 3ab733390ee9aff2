#include "core/gemm.h"

#ifdef ATTNLAB_HAVE_CBLAS
#include <omp.h>

#include <algorithm>

#include <cblas.h>
#else
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
// depend only on (M, N, K); every block is one single-threaded OpenBLAS call (the OpenMP build of
// OpenBLAS runs single-threaded inside an active parallel region, and with 1 thread anyway); and
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

// Runs f(lo, hi) over [0, side) in blocks of `len`, each block a single-threaded OpenBLAS call: in
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
}  // namespace

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
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
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const long work = long(M) * N * K;
  if (M >= N) {
    // row blocks of C: rows m0..m1 of op(A)
    const long len = block_len(M, work, kBlockWork);
    for_blocks(M, len, [&](long m0, long m1) {
      const float* a = trans_a ? A + m0 : A + size_t(m0) * lda;
      cblas_sgemm(CblasRowMajor, ta, tb, int(m1 - m0), N, K, alpha, a, lda, B, ldb, beta,
                  C + size_t(m0) * ldc, ldc);
    });
  } else {
    // column blocks of C: columns n0..n1 of op(B)
    const long len = block_len(N, work, kBlockWork);
    for_blocks(N, len, [&](long n0, long n1) {
      const float* b = trans_b ? B + size_t(n0) * ldb : B + n0;
      cblas_sgemm(CblasRowMajor, ta, tb, M, int(n1 - n0), K, alpha, A, lda, b, ldb, beta, C + n0, ldc);
    });
  }
}
const char* gemm_backend() { return "openblas-openmp"; }
#else
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using CMap = Eigen::Map<const RowMat, 0, Stride>;
using Map = Eigen::Map<RowMat, 0, Stride>;

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
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
const char* gemm_backend() { return "eigen"; }
#endif

}  // namespace attnlab
