// `bench attention --device cuda`: the GPU flash kernel alone (src/cuda), one row per length.
#include <algorithm>

#include <fmt/format.h>

#include "bench/bench.h"
#include "core/error.h"
#include "cuda/cuda_attention.h"

namespace attnlab {

void check_attention_cuda_bench() {
  if (!cuda_available())
    user_error("bench attention --device cuda: {} (GPU: {})",
               "no CUDA device is visible or this build has no CUDA (configure with -DATTNLAB_CUDA=ON)",
               cuda_device_name());
}

void bench_attention_cuda(const AttentionBenchOptions& a, bool bf16,
                          const std::function<void(const CudaAttentionBenchRow&)>& on_row) {
  check_attention_cuda_bench();
  const int kvh = a.kv_heads > 0 ? a.kv_heads : a.heads;
  for (int n : a.lengths) {
    if (n < 1) user_error("--lengths: every length must be ≥ 1, got {}", n);
    const CudaBenchResult r = cuda_bench_attention(CudaAttnShape{a.batch, a.heads, kvh, n, n, a.head_dim}, a.causal,
                                                   bf16 ? CudaDType::bf16 : CudaDType::f32, std::max(1, a.repeats));
    CudaAttentionBenchRow row;
    row.n = n;
    row.fwd_ms = r.fwd_ms;
    row.fwd_bwd_ms = r.fwd_bwd_ms;
    row.fwd_tflops = r.fwd_flops / (r.fwd_ms * 1e-3) / 1e12;
    row.fwd_bwd_tflops = r.fwd_bwd_flops / (r.fwd_bwd_ms * 1e-3) / 1e12;
    on_row(row);
  }
}

std::string attention_cuda_bench_csv(const AttentionBenchOptions& a, bool bf16,
                                     const std::vector<CudaAttentionBenchRow>& rows) {
  const int kvh = a.kv_heads > 0 ? a.kv_heads : a.heads;
  std::string csv = "device,dtype,batch,heads,kv_heads,head_dim,causal,n,fwd_ms,fwd_tflops,fwd_bwd_ms,fwd_bwd_tflops\n";
  for (const auto& r : rows)
    csv += fmt::format("cuda,{},{},{},{},{},{},{},{},{},{},{}\n", bf16 ? "bf16" : "f32", a.batch, a.heads, kvh,
                       a.head_dim, a.causal ? 1 : 0, r.n, r.fwd_ms, r.fwd_tflops, r.fwd_bwd_ms, r.fwd_bwd_tflops);
  return csv;
}

}  // namespace attnlab
