// `attnlab bench gemm`: the products of one transformer layer's training step (W1's shapes by
// default), timed with the fp32 path and with each bf16 kernel the machine has.
#include <chrono>
#include <vector>

#include "bench/bench.h"
#include "core/gemm.h"
#include "core/rng.h"

namespace attnlab {

std::vector<GemmBenchRow> bench_gemm(const GemmBenchOptions& o) {
  const int R = o.rows, d = o.d_model, F = o.d_ff;
  // name, trans_a, trans_b, M, N, K: a Linear's forward y = x·Wᵀ, its input gradient dx = dy·W
  // and its weight gradient dW = dyᵀ·x, for the fused q/k/v projection, the output projection and
  // the two MLP layers
  struct Shape { const char* name; bool ta, tb; int M, N, K; };
  const Shape shapes[kGemmBenchProducts] = {
      {"qkv fwd", false, true, R, 3 * d, d},  {"out fwd", false, true, R, d, d},    {"fc1 fwd", false, true, R, F, d},
      {"fc2 fwd", false, true, R, d, F},      {"qkv dx", false, false, R, d, 3 * d}, {"out dx", false, false, R, d, d},
      {"fc1 dx", false, false, R, d, F},      {"fc2 dx", false, false, R, F, d},     {"qkv dW", true, false, 3 * d, d, R},
      {"out dW", true, false, d, d, R},       {"fc1 dW", true, false, F, d, R},      {"fc2 dW", true, false, d, F, R}};
  std::vector<Bf16Kernel> paths = bf16_kernels_supported();
  paths.insert(paths.begin(), Bf16Kernel::none);
  Rng rng(o.seed);
  std::vector<GemmBenchRow> rows;
  for (const Shape& s : shapes) {
    GemmBenchRow row{s.name, s.ta, s.tb, s.M, s.N, s.K, 2.0 * s.M * s.N * s.K / 1e9, {}, {}};
    std::vector<float> A(size_t(s.M) * s.K), B(size_t(s.K) * s.N), C(size_t(s.M) * s.N);
    for (float& v : A) v = rng.normal();
    for (float& v : B) v = rng.normal();
    const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    for (Bf16Kernel k : paths) {
      const GemmBf16Scope products(k);
      std::vector<double> t;
      for (int r = 0; r < o.warmup + o.repeats; r++) {
        const auto t0 = std::chrono::steady_clock::now();
        sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (r >= o.warmup) t.push_back(ms);
        if (o.on_call) o.on_call();
      }
      row.paths.push_back(k);
      row.median_ms.push_back(median(t));
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace attnlab
