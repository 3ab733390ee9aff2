// bf16 products (src/core/gemm_bf16.cpp, train.precision: bf16): rounding to bf16; each kernel
// (AMX, AVX512-BF16) against a double-precision sum of the rounded inputs; the distance from the
// fp32 product that bf16's 8-bit significand allows; the same bits for any thread count; and
// sgemm's routing while a kernel is set. A kernel the machine lacks is skipped with a message.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"

using namespace attnlab;

namespace {
float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

std::vector<Bf16Kernel> kernels_here() {
  const std::vector<Bf16Kernel> ks = bf16_kernels_supported();
  for (Bf16Kernel k : {Bf16Kernel::amx, Bf16Kernel::avx512bf16})
    if (std::find(ks.begin(), ks.end(), k) == ks.end())
      MESSAGE("bf16 kernel " << std::string(bf16_kernel_name(k)) << " not supported on this machine: its cases are skipped");
  return ks;
}

struct Case {
  int M, N, K;
  bool ta, tb;
  int pad;
  std::vector<float> A, B, C0;
  int lda() const { return (ta ? M : K) + pad; }
  int ldb() const { return (tb ? K : N) + pad; }
  int ldc() const { return N + pad; }
  float a(int m, int k) const { return ta ? A[size_t(k) * lda() + m] : A[size_t(m) * lda() + k]; }
  float b(int k, int n) const { return tb ? B[size_t(n) * ldb() + k] : B[size_t(k) * ldb() + n]; }
  Case(int M_, int N_, int K_, bool ta_, bool tb_, int pad_, Rng& rng) : M(M_), N(N_), K(K_), ta(ta_), tb(tb_), pad(pad_) {
    A.resize(size_t(ta ? K : M) * lda());
    B.resize(size_t(tb ? N : K) * ldb());
    C0.resize(size_t(M) * ldc());
    for (auto& v : A) v = rng.normal();
    for (auto& v : B) v = rng.normal();
    for (auto& v : C0) v = rng.normal();
  }
  std::vector<float> run(Bf16Kernel k, float alpha, float beta) const {
    std::vector<float> C = C0;
    bf16_gemm(k, ta, tb, M, N, K, alpha, A.data(), lda(), B.data(), ldb(), beta, C.data(), ldc());
    return C;
  }
};

const int kShapes[][3] = {{1, 1, 1},    {17, 23, 19}, {32, 32, 32}, {33, 40, 64},  {64, 48, 100},
                          {5, 70, 31},  {100, 17, 2}, {2, 16, 384}, {130, 97, 65}, {40, 300, 1000}};
}  // namespace

TEST_CASE("bf16: to_bf16 rounds to nearest, ties to even, and keeps NaN and infinity") {
  CHECK(to_bf16(1.0f) == 0x3F80);
  CHECK(to_bf16(from_bits(0x3F808000u)) == 0x3F80);  // 1 + 2^-8: a tie, to the even 1
  CHECK(to_bf16(from_bits(0x3F818000u)) == 0x3F82);  // 1 + 3·2^-8: a tie, to the even 1 + 2^-6
  CHECK(to_bf16(from_bits(0x3F808001u)) == 0x3F81);  // just above the tie: up
  CHECK(to_bf16(from_bits(0x3F807FFFu)) == 0x3F80);  // just below: down
  CHECK(to_bf16(-2.5f) == 0xC020);
  CHECK(to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(to_bf16(from_bits(0x7F7FFFFFu)) == 0x7F80);  // the largest float rounds to infinity
  CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(from_bf16(to_bf16(from_bits(0x7F800001u)))));  // a NaN whose payload would round away
  // every bf16 value is a float, exactly: rounding it again changes nothing
  for (uint32_t h = 0; h < 0x7F80u; h += 97) CHECK(to_bf16(from_bf16(uint16_t(h))) == h);
}

TEST_CASE("bf16 gemm: each kernel is the fp32-accumulated product of the rounded inputs") {
  Rng rng(21);
  for (Bf16Kernel k : kernels_here())
    for (const auto& s : kShapes)
      for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
          const Case c(s[0], s[1], s[2], ta, tb, 3, rng);
          INFO("kernel " << std::string(bf16_kernel_name(k)) << " M " << c.M << " N " << c.N << " K " << c.K << " trans_a "
                         << ta << " trans_b " << tb);
          const float alpha = 0.7f, beta = 0.3f;
          const std::vector<float> C = c.run(k, alpha, beta);
          // beta 0: C is not read, so garbage (NaN) there must not come through
          Case nan_c = c;
          std::fill(nan_c.C0.begin(), nan_c.C0.end(), std::numeric_limits<float>::quiet_NaN());
          const std::vector<float> C_b0 = nan_c.run(k, 1.0f, 0.0f);
          double worst_exact = 0, worst_fp32 = 0, bound_ratio = 0;
          for (int m = 0; m < c.M; m++)
            for (int n = 0; n < c.N; n++) {
              double rounded = 0, exact = 0, mag = 0;
              for (int kk = 0; kk < c.K; kk++) {
                const double a = c.a(m, kk), b = c.b(kk, n);
                const double ar = from_bf16(to_bf16(float(a))), br = from_bf16(to_bf16(float(b)));
                rounded += ar * br;
                exact += a * b;
                mag += std::fabs(ar * br);
              }
              const double c0 = c.C0[size_t(m) * c.ldc() + n];
              const double got = C[size_t(m) * c.ldc() + n];
              // fp32 accumulation of K products (any order, with or without fused multiply-adds):
              // within K·u·Σ|a·b| with u = 2^-24, plus the roundings of alpha·acc + beta·C
              const double acc_bound = c.K * 0x1p-24 * mag * alpha + 4 * 0x1p-24 * (alpha * mag + std::fabs(beta * c0));
              worst_exact = std::max(worst_exact, std::fabs(got - (alpha * rounded + beta * c0)) / acc_bound);
              CHECK(std::fabs(C_b0[size_t(m) * c.ldc() + n] - rounded) <= acc_bound / alpha + 1e-30);
              // against the exact product of the unrounded inputs: each input moves by at most
              // u_bf16 = 2^-8 of itself, so a product by at most (2 u + u²) of itself
              const double u = 0x1p-8;
              const double bf16_bound = (2 * u + u * u) * mag * alpha + acc_bound;
              const double d = std::fabs(got - (alpha * exact + beta * c0));
              worst_fp32 = std::max(worst_fp32, d);
              bound_ratio = std::max(bound_ratio, d / bf16_bound);
            }
          CHECK(worst_exact <= 1.0);
          CHECK(bound_ratio <= 1.0);
          // the inputs were really rounded (random normal inputs lose about 2^-9 of each value)
          if (c.K >= 16) CHECK(worst_fp32 > 1e-4);
          for (int m = 0; m < c.M; m++)  // the padding columns of C are left alone
            for (int n = c.N; n < c.ldc(); n++) CHECK(C[size_t(m) * c.ldc() + n] == c.C0[size_t(m) * c.ldc() + n]);
        }
}

TEST_CASE("bf16 gemm: the same bits for 1, 2, 3 and 4 threads, and the two kernels side by side") {
  Rng rng(22);
  const std::vector<Bf16Kernel> ks = kernels_here();
  double kernels_apart = 0;
  for (const auto& s : kShapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const Case c(s[0], s[1], s[2], ta, tb, 0, rng);
        std::vector<std::vector<float>> per_kernel;
        for (Bf16Kernel k : ks) {
          INFO("kernel " << std::string(bf16_kernel_name(k)) << " M " << c.M << " N " << c.N << " K " << c.K << " trans_a "
                         << ta << " trans_b " << tb);
          const int saved = omp_get_max_threads();
          omp_set_num_threads(1);
          const std::vector<float> one = c.run(k, 1.0f, 0.5f);
          for (int threads : {2, 3, 4}) {
            omp_set_num_threads(threads);
            const std::vector<float> other = c.run(k, 1.0f, 0.5f);
            INFO("threads " << threads);
            CHECK(std::memcmp(one.data(), other.data(), one.size() * sizeof(float)) == 0);
          }
          omp_set_num_threads(saved);
          per_kernel.push_back(one);
        }
        if (per_kernel.size() == 2)
          for (size_t i = 0; i < per_kernel[0].size(); i++)
            kernels_apart = std::max(kernels_apart, double(std::fabs(per_kernel[0][i] - per_kernel[1][i])));
      }
  if (ks.size() == 2) MESSAGE("largest difference between the amx and avx512bf16 kernels: " << kernels_apart);
}

TEST_CASE("bf16 gemm: sgemm takes the bf16 path while a kernel is set, and fp32 again after") {
  Rng rng(23);
  const std::vector<Bf16Kernel> ks = kernels_here();
  for (const auto& s : kShapes)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        const Case c(s[0], s[1], s[2], ta, tb, 1, rng);
        std::vector<float> fp32 = c.C0;
        sgemm(ta, tb, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda(), c.B.data(), c.ldb(), 0.5f, fp32.data(), c.ldc());
        for (Bf16Kernel k : ks) {
          INFO("kernel " << std::string(bf16_kernel_name(k)) << " M " << c.M << " N " << c.N << " K " << c.K);
          std::vector<float> routed = c.C0;
          {
            GemmBf16Scope scope(k);
            CHECK(gemm_bf16_kernel() == k);
            sgemm(ta, tb, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda(), c.B.data(), c.ldb(), 0.5f, routed.data(), c.ldc());
          }
          CHECK(gemm_bf16_kernel() == Bf16Kernel::none);
          const std::vector<float> direct = c.run(k, 1.0f, 0.5f);
          CHECK(std::memcmp(routed.data(), direct.data(), direct.size() * sizeof(float)) == 0);
          std::vector<float> again = c.C0;
          sgemm(ta, tb, c.M, c.N, c.K, 1.0f, c.A.data(), c.lda(), c.B.data(), c.ldb(), 0.5f, again.data(), c.ldc());
          CHECK(std::memcmp(again.data(), fp32.data(), fp32.size() * sizeof(float)) == 0);
        }
      }
}

TEST_CASE("bf16 kernels: a name that is no kernel, or a kernel the machine lacks, is a UserError") {
  const char* saved = std::getenv("ATTNLAB_BF16_KERNEL");
  const std::string keep = saved ? saved : "";
  ::setenv("ATTNLAB_BF16_KERNEL", "tensorcores", 1);
  CHECK_THROWS_AS(bf16_kernel_best(), UserError);
  ::setenv("ATTNLAB_BF16_KERNEL", "none", 1);  // as on a CPU without either
  CHECK(bf16_kernel_best() == Bf16Kernel::none);
  for (Bf16Kernel k : {Bf16Kernel::amx, Bf16Kernel::avx512bf16}) {
    ::setenv("ATTNLAB_BF16_KERNEL", bf16_kernel_name(k), 1);
    if (bf16_kernel_supported(k)) {
      CHECK(bf16_kernel_best() == k);
    } else {
      CHECK_THROWS_AS(bf16_kernel_best(), UserError);
      CHECK_THROWS_AS(gemm_set_bf16_kernel(k), UserError);
    }
  }
  if (saved) ::setenv("ATTNLAB_BF16_KERNEL", keep.c_str(), 1);
  else ::unsetenv("ATTNLAB_BF16_KERNEL");
  const Bf16Kernel best = bf16_kernel_best();
  CHECK((best == Bf16Kernel::none || bf16_kernel_supported(best)));
  MESSAGE("bf16 kernel on this machine: " << std::string(bf16_kernel_name(best)));
}
