// Elementwise helpers of the CUDA backend: fp32 -> bf16 (round to nearest even, as
// __float2bfloat16 does), rounding fp32 values to bf16 in place, and the benchmark's random fill.
#include "cuda/common.cuh"
#include "cuda/internal.h"

namespace attnlab::cudak {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) {
  const size_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 65535 * 32 ? b : 65535 * 32);  // grid-stride loops cover the rest
}

__global__ void to_bf16_kernel(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16(src[i]);
}

__global__ void round_bf16_kernel(float* __restrict__ x, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] = __bfloat162float(__float2bfloat16(x[i]));
}

// splitmix64 of (seed, i): independent of the launch shape, so the inputs are reproducible
__global__ void fill_uniform_kernel(float* __restrict__ x, size_t n, unsigned long long seed, float lo,
                                    float hi) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    unsigned long long z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = float(z >> 40) * (1.0f / 16777216.0f);  // 24 bits -> [0, 1)
    x[i] = lo + (hi - lo) * u;
  }
}

}  // namespace

void to_bf16(const float* src, void* dst, size_t n) {
  if (n == 0) return;
  to_bf16_kernel<<<blocks_for(n), kThreads>>>(src, static_cast<__nv_bfloat16*>(dst), n);
  check_launch("to_bf16_kernel", [&] { return "n=" + std::to_string(n); });
}

void round_bf16(float* x, size_t n) {
  if (n == 0) return;
  round_bf16_kernel<<<blocks_for(n), kThreads>>>(x, n);
  check_launch("round_bf16_kernel", [&] { return "n=" + std::to_string(n); });
}

void fill_uniform(float* x, size_t n, std::uint64_t seed, float lo, float hi) {
  if (n == 0) return;
  fill_uniform_kernel<<<blocks_for(n), kThreads>>>(x, n, seed, lo, hi);
  check_launch("fill_uniform_kernel", [&] { return "n=" + std::to_string(n); });
}

}  // namespace attnlab::cudak
