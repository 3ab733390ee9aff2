// Single-threaded SGEMM throughput of one library on W1's products (docs/performance.md, "Choosing
// the GEMM library"): each product whole and cut into the row (or column) blocks of 64, 128 and
// 256 that attnlab's sgemm runs one library call each (src/core/gemm.cpp). Built and run by
// scripts/bench/gemm_libs.sh, once per library: -DLIB_OPENBLAS, -DLIB_ONEDNN or -DLIB_BLIS.
// Prints GFLOP/s, the median of 7 timings of the whole product.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#if defined(LIB_OPENBLAS)
#include <cblas.h>
static const char* kName = "openblas";
static void gemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                 int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda,
              B, ldb, 0.0f, C, ldc);
}
#elif defined(LIB_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
static const char* kName = "onednn";
static void gemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                 int ldc) {
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}
#elif defined(LIB_BLIS)
#include <blis.h>
static const char* kName = "blis";
static void gemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                 int ldc) {
  float one = 1.0f, zero = 0.0f;
  bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, M, N, K, &one,
            const_cast<float*>(A), lda, 1, const_cast<float*>(B), ldb, 1, &zero, C, ldc, 1);
}
#else
#error "define LIB_OPENBLAS, LIB_ONEDNN or LIB_BLIS"
#endif

int main() {
  struct Shape {
    const char* what;
    bool ta, tb;
    int M, N, K;
  };
  // B·T = 2048 rows, d = 384, MLP 1536: a Linear's forward (NT), its input gradient (NN) and its
  // weight gradient (TN)
  const Shape shapes[] = {{"qkv fwd NT", 0, 1, 2048, 1152, 384},     {"proj fwd NT", 0, 1, 2048, 384, 384},
                          {"fc fwd NT", 0, 1, 2048, 1536, 384},      {"fc2 fwd NT", 0, 1, 2048, 384, 1536},
                          {"qkv dinp NN", 0, 0, 2048, 384, 1152},    {"fc dinp NN", 0, 0, 2048, 384, 1536},
                          {"qkv dW TN", 1, 0, 1152, 384, 2048},      {"fc2 dW TN", 1, 0, 384, 1536, 2048}};
  std::mt19937 g(1);
  std::normal_distribution<float> nd;
  std::printf("%-9s %-12s %9s %9s %9s %9s   (GFLOP/s, 1 thread, by block length)\n", "library", "product", "64",
              "128", "256", "whole");
  for (const Shape& s : shapes) {
    std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C(size_t(s.M) * s.N);
    for (float& v : A) v = nd(g);
    for (float& v : B) v = nd(g);
    const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::printf("%-9s %-12s", kName, s.what);
    for (int len : {64, 128, 256, 1 << 30}) {
      std::vector<double> t;
      for (int r = 0; r < 7; r++) {
        const auto t0 = std::chrono::steady_clock::now();
        if (s.M >= s.N) {  // row blocks, as attnlab cuts a product with M ≥ N
          for (int m0 = 0; m0 < s.M; m0 += len) {
            const float* a = s.ta ? A.data() + m0 : A.data() + size_t(m0) * lda;
            gemm(s.ta, s.tb, std::min(len, s.M - m0), s.N, s.K, a, lda, B.data(), ldb, C.data() + size_t(m0) * s.N,
                 s.N);
          }
        } else {  // column blocks
          for (int n0 = 0; n0 < s.N; n0 += len) {
            const float* b = s.tb ? B.data() + size_t(n0) * ldb : B.data() + n0;
            gemm(s.ta, s.tb, s.M, std::min(len, s.N - n0), s.K, A.data(), lda, b, ldb, C.data() + n0, s.N);
          }
        }
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      std::printf(" %9.1f", 2.0 * s.M * s.N * s.K / t[3] / 1e9);
    }
    std::printf("\n");
  }
}
