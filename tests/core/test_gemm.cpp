// sgemm against a double-precision reference: every transpose combination, padded leading
// dimensions, alpha/beta, and the few-row paths that decoding takes (M ≤ 4 by matrix-vector
// products; 2 ≤ M ≤ 16 times a [N,K] weight by attnlab's own AVX-512 kernel); and the same bits for
// any thread count (src/core/gemm.cpp owns the partition of a product among threads).
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"

using namespace attnlab;

TEST_CASE("sgemm: matches a double reference for every transpose, shape and few-row case") {
  Rng rng(5);
  for (int M : {1, 2, 4, 5, 8, 13, 16, 17})
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const int N = 23, K = 19, pad = 3;
        // stored shapes: A is [M,K] or [K,M]; B is [K,N] or [N,K]; each row padded by `pad`
        const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        std::vector<float> A(size_t(ta ? K : M) * lda), B(size_t(tb ? N : K) * ldb), C(size_t(M) * ldc);
        for (auto& v : A) v = rng.normal();
        for (auto& v : B) v = rng.normal();
        for (auto& v : C) v = rng.normal();
        const std::vector<float> C0 = C;
        const float alpha = 0.7f, beta = 0.3f;
        sgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
        double worst = 0;
        for (int m = 0; m < M; m++)
          for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
              const double a = ta ? A[size_t(k) * lda + m] : A[size_t(m) * lda + k];
              const double b = tb ? B[size_t(n) * ldb + k] : B[size_t(k) * ldb + n];
              acc += a * b;
            }
            const double want = alpha * acc + beta * C0[size_t(m) * ldc + n];
            worst = std::max(worst, std::fabs(want - C[size_t(m) * ldc + n]));
          }
        // the padding columns of C are left alone
        for (int m = 0; m < M; m++)
          for (int n = N; n < ldc; n++) CHECK(C[size_t(m) * ldc + n] == C0[size_t(m) * ldc + n]);
        INFO("M " << M << " trans_a " << ta << " trans_b " << tb);
        CHECK(worst < 1e-4);
      }
}

namespace {
// C = alpha · op(A) op(B) + beta · C on `threads` OpenMP threads, from fixed A, B and C0
std::vector<float> product_on(int threads, bool ta, bool tb, int M, int N, int K, const std::vector<float>& A,
                              const std::vector<float>& B, const std::vector<float>& C0) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  std::vector<float> C = C0;
  sgemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.5f, C.data(), N);
  omp_set_num_threads(saved);
  return C;
}
}  // namespace

// OpenBLAS partitions a product by its thread count, and some of its kernels (Haswell's, used on
// AMD Zen or with OPENBLAS_CORETYPE=Haswell) give an element other last bits under another
// partition. sgemm cuts C into blocks that depend on the shape only, so 1, 2, 3 and 4 threads must
// give the same bits, on every kernel (CI runs this file under the native and the Haswell kernel).
// The shapes cover one block (small), row blocks (M ≥ N), column blocks (N > M), long sums (the
// weight gradients' K = B·T, where even the SkylakeX kernels split differently by thread count),
// sizes that are no multiple of 16, and the few-row paths (matrix-vector, and the AVX-512 kernel
// for 2..16 rows times a [N,K] matrix, whose blocks of N must not change an element's bits).
TEST_CASE("sgemm: the same bits for 1, 2, 3 and 4 threads, every transpose, blocked and unblocked shapes") {
  struct Shape { int M, N, K; };
  const Shape shapes[] = {{17, 23, 19},   {260, 64, 64},  {130, 130, 16}, {1000, 384, 96},
                          {96, 1000, 128}, {384, 384, 1000}, {4, 1536, 384}, {1, 3000, 200}, {3, 200, 3000},
                          {8, 1152, 384}, {16, 1536, 384}, {13, 385, 1539}};
  Rng rng(11);
  int blocked_cases = 0;
  for (const Shape& s : shapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C0(size_t(s.M) * s.N);
        for (auto& v : A) v = rng.normal();
        for (auto& v : B) v = rng.normal();
        for (auto& v : C0) v = rng.normal();
        const std::vector<float> one = product_on(1, ta, tb, s.M, s.N, s.K, A, B, C0);
        INFO("M " << s.M << " N " << s.N << " K " << s.K << " trans_a " << ta << " trans_b " << tb);
        for (int threads : {2, 3, 4}) {
          const std::vector<float> other = product_on(threads, ta, tb, s.M, s.N, s.K, A, B, C0);
          INFO("threads " << threads);
          CHECK(std::memcmp(one.data(), other.data(), one.size() * sizeof(float)) == 0);
        }
        // and the blocked product is still the product: spot-check rows against double sums
        double worst = 0, scale = 0;
        for (int m : {0, s.M / 2, s.M - 1})
          for (int n = 0; n < s.N; n += std::max(1, s.N / 37)) {
            double acc = 0, mag = 0;
            for (int k = 0; k < s.K; k++) {
              const double a = ta ? A[size_t(k) * s.M + m] : A[size_t(m) * s.K + k];
              const double b = tb ? B[size_t(n) * s.K + k] : B[size_t(k) * s.N + n];
              acc += a * b;
              mag += std::fabs(a * b);
            }
            const double want = acc + 0.5 * C0[size_t(m) * s.N + n];
            worst = std::max(worst, std::fabs(want - one[size_t(m) * s.N + n]));
            scale = std::max(scale, mag);
          }
        // any summation order of K products is within K·u·Σ|a·b| (u = 2⁻²⁴)
        CHECK(worst <= s.K * 0x1p-24 * scale + 1e-6);
        blocked_cases += long(s.M) * s.N * s.K >= (1L << 20);
      }
  CHECK(blocked_cases >= 20);
}
