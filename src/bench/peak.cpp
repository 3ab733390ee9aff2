// `attnlab bench peak`: the machine's FP32 multiply-add peak, measured, so that a kernel's
// GFLOP/s can be quoted as a fraction of what the cores can do (docs/performance.md).
//
// Each thread runs chains of fused multiply-adds a ← a·m + c on the widest float vectors the CPU
// has (AVX-512: 16 lanes, AVX2 + FMA: 8, else 4-lane SSE multiply and add), with 24 independent
// accumulators: more than latency × ports (4 cycles × 2 FMA ports = 8 vectors in flight), so the
// ports, not a dependency chain, bound the loop. Registers only, no memory traffic: this is the
// arithmetic ceiling, not a GEMM. m is just below 1 and c tiny, so the values neither overflow nor
// turn subnormal. One FMA counts as 2 FLOP.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include "bench/bench.h"

namespace attnlab {

namespace {

constexpr int kChains = 24;

#define ATTNLAB_PEAK_LOOP(VEC, SET1, FMA)                                    \
  VEC a[kChains];                                                            \
  for (int i = 0; i < kChains; i++) a[i] = SET1(1e-3f * float(i));           \
  const VEC m = SET1(0.9999999f), c = SET1(1e-7f);                           \
  for (long it = 0; it < iters; it++) {                                      \
    _Pragma("GCC unroll 24") for (int i = 0; i < kChains; i++) a[i] = FMA;   \
  }                                                                          \
  float out[sizeof(VEC) / sizeof(float)], s = 0.0f;                          \
  for (int i = 0; i < kChains; i++) {                                        \
    std::memcpy(out, &a[i], sizeof(VEC));                                    \
    s += out[0];                                                             \
  }                                                                          \
  return s;

__attribute__((target("avx512f"), noinline)) float chains512(long iters) {
  ATTNLAB_PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps(a[i], m, c))
}
__attribute__((target("avx2,fma"), noinline)) float chains256(long iters) {
  ATTNLAB_PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps(a[i], m, c))
}
__attribute__((noinline)) float chains128(long iters) {  // no FMA: a multiply and an add
  ATTNLAB_PEAK_LOOP(__m128, _mm_set1_ps, _mm_add_ps(_mm_mul_ps(a[i], m), c))
}
#undef ATTNLAB_PEAK_LOOP

}  // namespace

PeakIsa peak_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {"AVX-512 FMA", 16};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {"AVX2 FMA", 8};
  return {"SSE multiply + add", 4};
}

double fma_peak_gflops(int threads, long iters) {
  const PeakIsa isa = peak_isa();
  auto run = [&](long n) -> float {
    if (isa.lanes == 16) return chains512(n);
    if (isa.lanes == 8) return chains256(n);
    return chains128(n);
  };
  std::vector<float> sink(threads, 0.0f);  // the results are used, so the loops stay
  const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
  sink[omp_get_thread_num()] = run(iters);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float keep = 0.0f;
  for (float v : sink) keep = keep + v;
  return double(threads) * double(iters) * kChains * isa.lanes * 2.0 / s / 1e9;
}

long fma_peak_iters(double seconds) {
  const long probe = 200000;
  const double gflops = fma_peak_gflops(1, probe);
  const double probe_s = double(probe) * kChains * peak_isa().lanes * 2.0 / (gflops * 1e9);
  return std::max(probe, long(double(probe) * seconds / std::max(probe_s, 1e-6)));
}

}  // namespace attnlab
