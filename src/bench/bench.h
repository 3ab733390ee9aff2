// The `attnlab bench` commands (docs/performance.md defines the workloads W1-W4):
//   train      time training steps of a config (bench.cpp)                          W1
//   generate   tokens/s of autoregressive decoding, with and without the KV cache    W2
//              (bench_generate.cpp)
//   attention  one attention module, forward (+ backward), per type and length      W3
//              (bench_attention.cpp)
//   gemm       one layer's training products, fp32 and each bf16 kernel (gemm.cpp)
//   peak       the FP32 multiply-add ceiling of the cores (peak.cpp)
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/gemm_bf16.h"
#include "train/checkpoint.h"

namespace attnlab {

struct TrainBench {
  int steps = 0, warmup = 0, threads = 0;
  std::vector<double> step_ms;      // every timed step
  double median_ms = 0.0;
  double tokens_per_s = 0.0;        // B·T / median step time
  double flops_per_step = 0.0;      // nominal: 6·N_mm·B·T + 12·L·d·T·B·T (see docs/performance.md)
  double gflops = 0.0;              // achieved, at the median
  double gemm_peak_gflops = 0.0;    // measured sgemm 1024³ with the same threads
  size_t params = 0;
  long peak_rss_kb = 0;
  std::string precision;            // train.precision on this machine (train/precision.h)
  std::string precision_warning;    // non-empty: bf16 asked for, not available
  // under mpirun -np N (bench_train's figures are then rank 0's; its tokens/s counts the global batch)
  int processes = 1;
  double allreduce_mb_per_step = 0.0;  // gradient bytes each rank sums with the others per step
  std::vector<double> comm_ms;         // per timed step: rank 0's time inside MPI_Allreduce
  double median_comm_ms = 0.0;
};

// on_step (optional) is called after every step, warm-up included, outside the timed part.
TrainBench bench_train(const Config& cfg, int steps, int warmup, const std::function<void()>& on_step = {});
double measure_gemm_gflops(int n, int reps);
double median(std::vector<double> v);
long peak_rss_kb();

// ---- memory probes (Linux /proc) ----
// Resident set now (VmRSS, kB), and its high-water mark since the last reset (VmHWM, kB).
long current_rss_kb();
long rss_hwm_kb();
// Hands freed heap memory back to the OS (malloc_trim) and resets the high-water mark to the
// current RSS (writes "5" to /proc/self/clear_refs). Returns false if the kernel refused.
bool reset_rss_hwm();

// ---- bench peak: the FP32 multiply-add ceiling (peak.cpp) ----
struct PeakIsa {
  const char* name;  // "AVX-512 FMA", "AVX2 FMA" or "SSE multiply + add"
  int lanes;         // floats per vector
};
PeakIsa peak_isa();  // the widest float vectors this CPU runs
// FP32 GFLOP/s of `threads` threads each running `iters` rounds of 24 independent vector FMA
// chains (registers only; one FMA = 2 FLOP). One call; take the median of several.
double fma_peak_gflops(int threads, long iters);
// The rounds that take about `seconds` on one thread (timed by one short call).
long fma_peak_iters(double seconds);

// ---- bench gemm: one layer's training products, fp32 and each bf16 kernel ----
constexpr int kGemmBenchProducts = 12;  // q/k/v, output, fc1, fc2: forward, dx and dW each
struct GemmBenchOptions {
  int rows = 2048, d_model = 384, d_ff = 1536;  // W1: batch 8 x context 256 rows
  int repeats = 9, warmup = 2;
  uint64_t seed = 1;
  std::function<void()> on_call;  // optional: after each call, outside the timing
};
struct GemmBenchRow {
  std::string name;  // e.g. "fc1 dW"
  bool trans_a = false, trans_b = false;
  int M = 0, N = 0, K = 0;
  double gflop = 0.0;
  std::vector<Bf16Kernel> paths;   // none = fp32 (sgemm's library), then each bf16 kernel here
  std::vector<double> median_ms;   // per path
};
std::vector<GemmBenchRow> bench_gemm(const GemmBenchOptions& o);

// ---- bench attention (W3) ----
struct AttentionBenchOptions {
  std::vector<std::string> types;   // registry names
  std::vector<int> lengths;         // sequence lengths n (Tq = Tk = n, self-attention)
  bool backward = false;            // time forward + backward instead of forward only
  int batch = 1, heads = 8, head_dim = 64, kv_heads = 0;  // d_model = heads · head_dim
  bool causal = true;               // ignored by types that fix the mask (causal, bidirectional)
  std::string impl = "auto";        // AttentionSpec::impl
  bool core = false;                // time the flash kernel alone on head-major q, k, v (no projections)
  int repeats = 5, warmup = 1;      // timed calls; untimed calls before (≥ 1: the first measures memory)
  double max_mem_gb = 8.0;          // skip a (type, n) whose estimated buffers exceed this
  uint64_t seed = 1;
  Bf16Kernel bf16 = Bf16Kernel::none;  // --dtype bf16: products on bf16 inputs with this kernel (GEMMs and flash)
  std::function<void()> on_call;   // optional: after each call (warm-up and timed), outside the timing
};

struct AttentionBenchRow {
  std::string type;
  int n = 0;
  bool skipped = false;
  std::string note;                 // why it was skipped
  double est_mb = 0.0;              // estimated n×n buffers (what the budget checks)
  std::vector<double> ms;           // every timed call
  double median_ms = 0.0, min_ms = 0.0;
  double proj_ms = 0.0;             // the same Q/K/V/O projection GEMMs timed alone (median)
  double gflop = 0.0;               // nominal FLOPs of one call (attention_flops)
  double gflops = 0.0;              // gflop / median
  double peak_extra_mb = -1.0;      // VmHWM during the first call − RSS before it; < 0 = unavailable
};

// Nominal FLOPs of one call of a multi-head self-attention module over n positions: the two
// n×n products counted in full (4·B·H·n²·D forward, twice that backward, as W1 counts them)
// plus the projections (2·B·n·C·(2C + 2·Ckv) forward, twice that backward).
double attention_flops(const AttentionBenchOptions& o, int n);
// FLOPs of one call of the tiled kernel alone (--core), as FlashAttention's papers count them: the
// forward's two n×n products, 4·B·H·n²·D, halved when causal (only the tiles on or below the
// diagonal are computed, so the peak fraction counts only that half); with the backward 3.5× that
// (its five products: S recomputed, dP, dV, dK, dQ).
double core_flops(const AttentionBenchOptions& o, const std::string& type, int n);
// Estimated bytes of the n×n buffers a type keeps (per docs/performance.md).
double attention_buffer_bytes(const AttentionBenchOptions& o, const std::string& type, int n);
// Checks the options (types known, shapes valid) before anything runs: UserError otherwise.
void check_attention_bench(const AttentionBenchOptions& o);
// Runs every (type, n), calling on_row after each.
std::vector<AttentionBenchRow> bench_attention(const AttentionBenchOptions& o,
                                               const std::function<void(const AttentionBenchRow&)>& on_row);
std::string attention_bench_csv(const AttentionBenchOptions& o, const std::vector<AttentionBenchRow>& rows);

// --device cuda: the GPU flash kernel alone on device-resident inputs (--types ignored)
struct CudaAttentionBenchRow {
  int n = 0;
  double fwd_ms = 0.0, fwd_tflops = 0.0, fwd_bwd_ms = 0.0, fwd_bwd_tflops = 0.0;
};
void check_attention_cuda_bench();  // user error without a usable GPU
void bench_attention_cuda(const AttentionBenchOptions& o, bool bf16,
                          const std::function<void(const CudaAttentionBenchRow&)>& on_row);
std::string attention_cuda_bench_csv(const AttentionBenchOptions& o, bool bf16,
                                     const std::vector<CudaAttentionBenchRow>& rows);

// ---- bench generate (W2) ----
class Model;
struct GenerateBenchOptions {
  int tokens = 256;        // new tokens per sequence
  int prompt_len = 1;      // random prompt ids
  int batch = 1;           // 1: model/generate.h's generate(); > 1: the same steps over B rows
  int repeats = 3;
  bool run_cache = true, run_no_cache = true;
  uint64_t seed = 1;
  std::function<void()> on_repeat;  // optional: after each generation (warm-up and timed), outside the timing
};
struct GenerateBenchMode {
  bool cache = false;
  std::vector<double> seconds;   // every timed repeat (one whole generation)
  double tokens_per_s = 0.0;     // B·tokens / median
  double ms_per_token = 0.0;     // median / tokens (one step for all B rows)
  double peak_extra_mb = -1.0;   // RSS growth during the first timed repeat; < 0 = unavailable
};
struct GenerateBench {
  std::vector<GenerateBenchMode> modes;
  double kv_cache_mb = -1.0;     // nominal K and V buffers of every layer; < 0 = not a KV cache
  // Memory traffic of one cached step (the bound at small batch): every parameter once, plus the
  // K and V cached so far, averaged over the generation's steps (0 without a KV cache); and the
  // machine's read bandwidth measured over a buffer of the same size (< 0: not measured)
  double step_read_mb = 0.0;
  double read_gbps = -1.0;
};
GenerateBench bench_generate(Model& model, const GenerateBenchOptions& o);

}  // namespace attnlab
