// Device helpers shared by the .cu files: dtype conversion, error checks, shared-memory opt-in.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "cuda/internal.h"

namespace attnlab::cudak {

// Loads an input element as fp32 (bf16 inputs are widened exactly).
__device__ __forceinline__ float load_f32(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load_f32(const __nv_bfloat16* p, size_t i) {
  return __bfloat162float(p[i]);
}

inline void cuda_check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                             cudaGetErrorString(e));
}
#define ATTNLAB_CUDA_OK(expr) ::attnlab::cudak::cuda_check((expr), #expr, __FILE__, __LINE__)

// After a launch. A configuration error (too much shared memory, a bad grid) is reported by
// cudaGetLastError at once; a fault inside the kernel only when the device is next synchronised,
// which without checked mode is the seam's device-to-host copy. In checked mode
// (cuda_checked_mode, internal.h) the launch waits for its kernel, so either kind of error names
// the kernel and its shape. `shape` is a callable returning that description (built only on error).
template <typename Shape>
inline void check_launch(const char* kernel, Shape&& shape) {
  cudaError_t e = cudaGetLastError();
  const char* when = "launch";
  if (e == cudaSuccess && cuda_checked_mode()) {
    e = cudaDeviceSynchronize();
    when = "execution";
  }
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA kernel ") + kernel + " (" + shape() + ") failed at " +
                             when + ": " + cudaGetErrorString(e));
}

// "B=2 Hq=4 Hkv=2 Tq=130 Tk=257 D=64 causal bf16 grid=(5,8) block=128 smem=41216"
inline std::string describe(int B, int Hq, int Hkv, int Tq, int Tk, int D, bool causal, bool bf16,
                            dim3 grid, int block, size_t smem) {
  return "B=" + std::to_string(B) + " Hq=" + std::to_string(Hq) + " Hkv=" + std::to_string(Hkv) +
         " Tq=" + std::to_string(Tq) + " Tk=" + std::to_string(Tk) + " D=" + std::to_string(D) +
         (causal ? " causal" : "") + (bf16 ? " bf16" : " fp32") + " grid=(" +
         std::to_string(grid.x) + "," + std::to_string(grid.y) + ") block=" + std::to_string(block) +
         " smem=" + std::to_string(smem);
}

inline std::string describe(const FlashArgs& a, dim3 grid, int block, size_t smem) {
  return describe(a.B, a.Hq, a.Hkv, a.Tq, a.Tk, a.D, a.causal, a.bf16, grid, block, smem);
}

// The current device's per-block shared-memory limit with opt-in, in bytes.
inline size_t smem_optin_limit() {
  int dev = 0, bytes = 0;
  ATTNLAB_CUDA_OK(cudaGetDevice(&dev));
  ATTNLAB_CUDA_OK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return size_t(bytes);
}

// Kernels that want more than 48 KiB of dynamic shared memory must say so once per kernel. A
// request over the device's limit is refused here with both numbers, rather than by
// cudaFuncSetAttribute's bare "invalid argument".
template <typename Kernel>
inline void allow_smem(Kernel kernel, size_t bytes, const char* name) {
  if (bytes <= 48 * 1024) return;
  const size_t limit = smem_optin_limit();
  if (bytes > limit)
    throw std::runtime_error(std::string("CUDA kernel ") + name + " needs " + std::to_string(bytes) +
                             " bytes of shared memory per block; this device allows " +
                             std::to_string(limit));
  ATTNLAB_CUDA_OK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace attnlab::cudak
