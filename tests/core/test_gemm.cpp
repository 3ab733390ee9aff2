// sgemm against a double-precision reference: every transpose combination, padded leading
// dimensions, alpha/beta, and the few-row path (M ≤ 4) that decoding takes.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"

using namespace attnlab;

TEST_CASE("sgemm: matches a double reference for every transpose, shape and few-row case") {
  Rng rng(5);
  for (int M : {1, 2, 4, 5, 17})
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
