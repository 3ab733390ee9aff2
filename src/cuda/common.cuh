// Device helpers shared by the .cu files: dtype conversion, error checks, shared-memory opt-in.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

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
// after a launch: configuration errors (too much shared memory, bad grid) surface here
#define ATTNLAB_CUDA_LAUNCHED() ATTNLAB_CUDA_OK(cudaGetLastError())

// Kernels that want more than 48 KiB of dynamic shared memory must say so once per kernel.
template <typename Kernel>
inline void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    ATTNLAB_CUDA_OK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace attnlab::cudak
