// Internal to src/cuda: the kernel launchers on DEVICE pointers (defined in the .cu files) and the
// transfer counter (cuda_check.cpp). Plain C++: the seam (cuda_attention.cpp) and the .cu files
// both include it. Shapes and layout as in cuda_attention.h; every launch goes on the default
// stream and a launch error throws std::runtime_error (an internal error, not a user one).
#pragma once
#include <cstddef>
#include <cstdint>

namespace attnlab {

// Adds one copy of `bytes` to the counters behind cuda_transfer_stats().
void cuda_count_transfer(bool to_device, std::size_t bytes);

// Checked mode (cuda_set_checked, or ATTNLAB_CUDA_CHECKED=1): every launch is followed by a
// device synchronisation, so an asynchronous fault is reported by the launch that caused it.
bool cuda_checked_mode();

// Linear attention's shared memory for head dim D and chunk length C, in bytes: the state S
// [D][D+1] and z [D], four chunk tiles [C][D+1], one [C] vector and two [C][C] blocks.
std::size_t linear_smem_bytes(int D, int C);
// The chunk length for head dim D on a device whose blocks may use at most `smem_limit` bytes of
// shared memory (cudaDevAttrMaxSharedMemoryPerBlockOptin): the preferred 32 (16 when D > 64),
// halved until linear_smem_bytes fits; 0 when not even C = 1 fits (the state alone is too big).
int linear_chunk(int D, std::size_t smem_limit);
// For tests: the linear kernels size their chunks as if the device allowed at most `bytes` of
// shared memory per block (0: the device's own limit), e.g. 99 KiB to run the sm_86 choice on an
// H100. The smaller of this and the device's limit applies.
void cuda_set_linear_smem_cap(std::size_t bytes);
std::size_t cuda_linear_smem_cap();

namespace cudak {

// Inputs of the flash kernels. q, k, v (and dout) point to float, or to bf16 (uint16 storage)
// when bf16 is set; key_keep is a device [B,Tk] mask or null.
struct FlashArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const unsigned char* key_keep = nullptr;
  int B = 1, Hq = 1, Hkv = 1, Tq = 1, Tk = 1, D = 64;
  float scale = 1.0f;
  bool causal = false;
  bool bf16 = false;
};

// out [B,Hq,Tq,D] fp32, lse [B,Hq,Tq] fp32
void flash_forward(const FlashArgs& a, float* out, float* lse);
// dout has the inputs' dtype; delta [B,Hq,Tq] is scratch (rowsum(dout ∘ out)); dq, dk, dv fp32
void flash_backward(const FlashArgs& a, const float* out, const float* lse, const void* dout,
                    float* delta, float* dq, float* dk, float* dv);

// Linear attention on fp32 device buffers (bf16 callers round the inputs first, round_bf16).
struct LinearArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  const unsigned char* key_keep = nullptr;
  int B = 1, Hq = 1, Hkv = 1, Tq = 1, Tk = 1, D = 64;
  int C = 32;  // chunk length, from linear_chunk (any C ≥ 1 is correct; it only sizes the tiles)
  bool causal = false;
};
void linear_forward(const LinearArgs& a, float* out, float* den);
// dk, dv are overwritten (the kernel zeroes them before summing over the GQA group)
void linear_backward(const LinearArgs& a, const float* out, const float* den, const float* dout,
                     float* dq, float* dk, float* dv);

// dst[i] = bf16(src[i]) (round to nearest even); dst is bf16 storage (2 bytes per element)
void to_bf16(const float* src, void* dst, std::size_t n);
// x[i] = float(bf16(x[i])) in place
void round_bf16(float* x, std::size_t n);
// x[i] = uniform in [lo, hi) from a counter-based hash of (seed, i): benchmark inputs
void fill_uniform(float* x, std::size_t n, std::uint64_t seed, float lo, float hi);

}  // namespace cudak
}  // namespace attnlab
