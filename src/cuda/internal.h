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
