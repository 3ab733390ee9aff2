// The CUDA attention backend: what CPU code may call (a plain C++ header: no CUDA types).
//
// Kernels (src/cuda/*.cu, algorithms in their opening comments and docs/cuda.md):
//   flash  : tiled exact softmax attention (online softmax), forward -> out, log-sum-exp;
//            backward recomputes the probabilities tile by tile -> dq, dk, dv
//   linear : causal (or unmasked) linear attention, φ(x) = elu(x) + 1, by chunked prefix sums
//
// Every function here works on HOST buffers: it copies the inputs to the device, runs the kernels
// and copies the results back; each copy is counted (cuda_transfer_stats). That is the seam the
// attention modules call when `device: cuda`; full device residency would keep activations on the
// GPU instead (docs/cuda.md).
//
// Layout, head-major and contiguous (row-major float):
//   q [B,Hq,Tq,D]   k, v [B,Hkv,Tk,D]   out [B,Hq,Tq,D]   lse [B,Hq,Tq]   key_keep [B,Tk] (uint8)
//   query head h reads kv head h / (Hq/Hkv) (GQA; MQA at Hkv = 1)
//   causal: query i sits at absolute position Tk − Tq + i and sees the keys j ≤ that position
//   key_keep: 1 = attend, 0 = padding; null = every key is kept
//   a query that sees no key gets out = 0, lse = −inf, and zero gradients
// dtype bf16: q, k, v (and dout in the backward) are rounded to bfloat16 on the device; every sum
// is accumulated in fp32 and the outputs are fp32.
//
// Without CUDA (-DATTNLAB_CUDA=OFF) the functions exist and throw a UserError; cuda_available()
// is then false.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab {

enum class CudaDType { f32, bf16 };

struct CudaAttnShape {
  int B = 1;
  int Hq = 1;   // query heads
  int Hkv = 1;  // key/value heads (divides Hq)
  int Tq = 1;
  int Tk = 1;
  int D = 64;   // head dimension: 32, 64 or 128 for flash; 1..128 for linear
};

struct CudaAttnOptions {
  float scale = 0.0f;                        // flash: softmax scale (0 = 1/√D); unused by linear
  bool causal = false;
  const unsigned char* key_keep = nullptr;   // [B,Tk] host buffer, or null
  CudaDType dtype = CudaDType::f32;
};

// True when the build has CUDA and the runtime sees at least one device.
bool cuda_available();
// "NVIDIA H100 80GB HBM3 (sm_90)", or why there is none.
std::string cuda_device_name();

// CUDA versions as numbers (12040 = 12.4): driver = the newest CUDA the installed driver supports
// (0: no driver), runtime = the CUDA runtime this program uses. A driver older than the runtime
// cannot run the kernels ("CUDA driver version is insufficient for CUDA runtime version").
// Both 0 in a build without CUDA.
struct CudaVersions {
  int driver = 0;
  int runtime = 0;
};
CudaVersions cuda_versions();

// Flash attention forward: q, k, v -> out, lse (lse_i = log Σ_j exp(s_ij) over visible keys,
// s = scale·q·kᵀ).
void cuda_flash_forward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                        const float* k, const float* v, float* out, float* lse);
// Flash attention backward: given the forward's out and lse and the gradient dout, writes
// dq [B,Hq,Tq,D], dk and dv [B,Hkv,Tk,D] (summed over each GQA group). Deterministic.
void cuda_flash_backward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                         const float* k, const float* v, const float* out, const float* lse,
                         const float* dout, float* dq, float* dk, float* dv);

// Linear attention forward: out_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + ε) over the visible
// keys (causal and key padding as above), ε = 1e-6; den [B,Hq,Tq] receives the denominators.
void cuda_linear_forward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                         const float* k, const float* v, float* out, float* den);
void cuda_linear_backward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                          const float* k, const float* v, const float* out, const float* den,
                          const float* dout, float* dq, float* dk, float* dv);

// Checked mode: after every kernel launch, wait for the kernel and throw std::runtime_error naming
// the kernel and its shape if it faulted (otherwise an asynchronous fault surfaces at the next copy,
// as a failed cudaMemcpy). Slower (one synchronisation per launch); for tests and debugging. The
// default comes from the environment: ATTNLAB_CUDA_CHECKED set and not "0" turns it on.
void cuda_set_checked(bool on);

// Host<->device traffic of the functions above since the last reset (all threads together).
struct CudaTransferStats {
  std::uint64_t h2d_bytes = 0, d2h_bytes = 0;
  std::uint64_t h2d_copies = 0, d2h_copies = 0;
};
CudaTransferStats cuda_transfer_stats();
void cuda_reset_transfer_stats();

// Timing on device-resident random inputs (no transfers inside the timed region), for
// `attnlab bench attention --device cuda` and src/cuda/bench_main.cpp. Times are the median of
// `iters` runs after one warm-up, in milliseconds; fwd_bwd_ms is forward + backward.
struct CudaBenchResult {
  double fwd_ms = 0.0;
  double fwd_bwd_ms = 0.0;
  double fwd_flops = 0.0;      // 4·B·Hq·Tq·Tk·D (two GEMMs of 2·Tq·Tk·D), halved when causal
  double fwd_bwd_flops = 0.0;  // 3.5 × fwd_flops (the usual count: backward = 2.5 × forward)
};
CudaBenchResult cuda_bench_attention(const CudaAttnShape& s, bool causal, CudaDType dtype, int iters);

// The checks every entry point runs (UserError naming the field): positive sizes, Hq % Hkv == 0,
// the head dimension (flash: 32 | 64 | 128; linear: 1..128). `what` names the caller.
void cuda_check_shape(const CudaAttnShape& s, bool flash, const char* what);

}  // namespace attnlab
