// Row-major single-precision GEMM, the one place big products go through.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
//
// op(X) = X or X^T. lda/ldb/ldc are row strides (elements) of the stored
// matrices. With ATTNLAB_HAVE_CBLAS the call goes to OpenBLAS (OpenMP build,
// so its threads are ours); otherwise to Eigen's product kernels.
#pragma once

namespace attnlab {

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

// Which kernel sgemm uses ("openblas-openmp" or "eigen"), for logs and benchmarks.
const char* gemm_backend();

}  // namespace attnlab
