#include "core/gemm.h"

#ifdef ATTNLAB_HAVE_CBLAS
#include <cblas.h>
#else
#include <Eigen/Core>
#endif

namespace attnlab {

#ifdef ATTNLAB_HAVE_CBLAS
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 4) {
    // A few rows (incremental decoding: one token per sequence). sgemm would pack all of B for
    // them, which costs more than the product; a matrix-vector product per row reads B once.
    //   C[m,:] = alpha · op(B)ᵀ-contracted with row m of op(A) + beta · C[m,:]
    for (int m = 0; m < M; m++) {
      const float* a = trans_a ? A + m : A + size_t(m) * lda;  // row m of op(A), stride inc
      const int inc = trans_a ? lda : 1;
      if (trans_b)  // op(B)[k,n] = B[n,k]: C[m,:] = B · a
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, a, inc, beta, C + size_t(m) * ldc, 1);
      else  // op(B) = B [K,N]: C[m,:] = Bᵀ · a
        cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, a, inc, beta, C + size_t(m) * ldc, 1);
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
