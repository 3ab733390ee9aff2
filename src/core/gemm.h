// Row-major single-precision GEMM, the one place big products go through.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
//
// op(X) = X or X^T. lda/ldb/ldc are row strides (elements) of the stored
// matrices. With ATTNLAB_HAVE_CBLAS attnlab cuts the product into blocks that
// depend on the shape only and runs each as one single-threaded call of OpenBLAS
// (OpenMP build, so its threads are ours) or, with ATTNLAB_GEMM=onednn where built
// in, oneDNN's sgemm; a few rows go to matrix-vector products or attnlab's own
// AVX-512 kernel. Without OpenBLAS: Eigen's product kernels.
#pragma once

namespace attnlab {

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

// Which libraries sgemm uses ("onednn + openblas-openmp", "openblas-openmp" or "eigen"), for
// logs and benchmarks.
const char* gemm_backend();

// Reads ATTNLAB_GEMM (unset or openblas: OpenBLAS; onednn) and throws UserError for anything else
// (or for onednn in a build without it); main()
// calls it first, so that a bad value is an error message and not a failure inside a kernel.
void gemm_select_from_env();

}  // namespace attnlab
