// `attnlab bench attention` (workload W3 of docs/performance.md): time one attention module
// built through the registry, self-attention over x [B,n,C] (C = heads · head_dim), forward
//   out [B,n,C] = attn(x, x)
// and, with backward, forward + backward from a fixed dout [B,n,C]. The module is the whole block
// of attention.h: Q/K/V projections, the attention core, the output projection. W3's peer figures
// time the bare core (q, k, v given); the projections are timed alone on the same shapes
// (proj_ms) so the core's share can be told apart (docs/performance.md).
//
// Peak extra memory: on a fresh module, with its inputs touched, freed heap handed back
// (malloc_trim) and the RSS high-water mark reset (/proc/self/clear_refs "5"), the first call's
// VmHWM minus the RSS before it, i.e. the pages the call itself touched.
//
// --core times the flash kernel alone (flash.h) on head-major q, k, v, like the peer's core form.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "attention/attention.h"
#include "attention/flash.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "ops/ops.h"
#include "bench/bench.h"

namespace attnlab {

using Clock = std::chrono::steady_clock;

namespace {

int kv_heads(const AttentionBenchOptions& o) { return o.kv_heads > 0 ? o.kv_heads : o.heads; }

AttentionSpec make_spec(const AttentionBenchOptions& o, const std::string& type, int n) {
  AttentionSpec s;
  s.type = type;
  s.name = "bench." + type;
  s.d_model = o.heads * o.head_dim;
  s.n_heads = o.heads;
  s.n_kv_heads = o.kv_heads;
  s.causal = o.causal;  // make_attention overrides it for `causal` / `bidirectional`
  s.dropout = 0.0f;
  s.max_len = n;
  s.impl = attn_impl(o.impl);
  return s;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The module's four projections alone, on the shapes of one call: forward Q = x W_qᵀ + b,
// K, V (Ckv wide), out = O W_oᵀ + b; backward the linear backward of each (dinput and dW).
double time_projections(const AttentionBenchOptions& o, int n, int repeats) {
  const int C = o.heads * o.head_dim, Ckv = kv_heads(o) * o.head_dim, N = o.batch * n;
  Rng rng(o.seed + 7);
  std::vector<float> x(size_t(N) * C), wq(size_t(C) * C), wkv(size_t(Ckv) * C), bq(C, 0.0f), bkv(Ckv, 0.0f);
  for (auto* v : {&x, &wq, &wkv})
    for (float& e : *v) e = 0.02f * rng.normal();
  std::vector<float> q(size_t(N) * C), k(size_t(N) * Ckv), v(size_t(N) * Ckv), y(size_t(N) * C);
  std::vector<float> dx(size_t(N) * C, 0.0f), dwq(wq.size(), 0.0f), dwkv(wkv.size(), 0.0f), dbq(C, 0.0f),
      dbkv(Ckv, 0.0f);
  auto once = [&] {
    linear_forward(q.data(), x.data(), wq.data(), bq.data(), N, C, C);
    linear_forward(k.data(), x.data(), wkv.data(), bkv.data(), N, C, Ckv);
    linear_forward(v.data(), x.data(), wkv.data(), bkv.data(), N, C, Ckv);
    linear_forward(y.data(), q.data(), wq.data(), bq.data(), N, C, C);  // the output projection's shape
    if (!o.backward) return;
    linear_backward(dx.data(), dwq.data(), dbq.data(), y.data(), q.data(), wq.data(), N, C, C);
    linear_backward(dx.data(), dwq.data(), dbq.data(), q.data(), x.data(), wq.data(), N, C, C);
    linear_backward(dx.data(), dwkv.data(), dbkv.data(), k.data(), x.data(), wkv.data(), N, C, Ckv);
    linear_backward(dx.data(), dwkv.data(), dbkv.data(), v.data(), x.data(), wkv.data(), N, C, Ckv);
  };
  once();
  std::vector<double> t;
  for (int r = 0; r < repeats; r++) {
    const auto t0 = Clock::now();
    once();
    t.push_back(ms_since(t0));
  }
  return median(t);
}

}  // namespace

double attention_flops(const AttentionBenchOptions& o, int n) {
  const double B = o.batch, H = o.heads, D = o.head_dim, C = H * D, Ckv = kv_heads(o) * D, N = n;
  const double fwd = 4.0 * B * H * N * N * D + 2.0 * B * N * C * (2.0 * C + 2.0 * Ckv);
  return o.backward ? 3.0 * fwd : fwd;
}

double attention_buffer_bytes(const AttentionBenchOptions& o, const std::string& type, int n) {
  const double H = o.heads, Hkv = kv_heads(o), nn = double(o.batch) * n * n;
  // n×n maps kept per head: forward / extra for backward (see each variant's buffers)
  double fwd = 2.0 * H, bwd = Hkv;  // unknown types: a conservative guess
  const bool sdp = type == "scaled_dot_product" || type == "causal" || type == "bidirectional";
  const bool tiled = type == "flash" || (sdp && o.impl == "flash" && attention_registry().count("flash"));
  if (tiled || type == "linear") return 0.0;
  if (sdp || type == "luong" || type == "bahdanau") fwd = H, bwd = Hkv;     // P; dS
  else if (type == "differential") fwd = 3.0 * H, bwd = 3.0 * Hkv;         // A₁, A₂, A₁ − λA₂; dS
  return 4.0 * nn * (fwd + (o.backward ? bwd : 0.0));
}

double core_flops(const AttentionBenchOptions& o, const std::string& type, int n) {
  const auto& info = attention_registry().at(type).info;
  const bool causal = info.force_causal >= 0 ? info.force_causal == 1 : o.causal;
  const double fwd = (causal ? 2.0 : 4.0) * o.batch * o.heads * double(n) * n * o.head_dim;
  return o.backward ? 3.5 * fwd : fwd;
}

void check_attention_bench(const AttentionBenchOptions& o) {
  if (o.types.empty()) user_error("--types: expected at least one attention type");
  if (o.lengths.empty()) user_error("--lengths: expected at least one sequence length");
  for (int n : o.lengths)
    if (n <= 0) user_error("--lengths: expected positive lengths, got {}", n);
  if (o.batch <= 0 || o.heads <= 0 || o.head_dim <= 0)
    user_error("--batch, --heads, --head-dim: expected positive integers, got {}, {}, {}", o.batch, o.heads,
               o.head_dim);
  if (o.impl != "auto" && o.impl != "naive" && o.impl != "flash")
    user_error("--impl: expected naive, flash or auto, got '{}'", o.impl);
  if (o.repeats <= 0) user_error("--repeats: expected a positive integer, got {}", o.repeats);
  if (o.warmup <= 0) user_error("--warmup: expected at least 1 (the first call measures memory), got {}", o.warmup);
  for (const auto& t : o.types) {
    const AttentionSpec spec = make_spec(o, t, o.lengths.front());
    const std::string err = check_attention_spec(spec);
    if (!err.empty()) user_error("--types {}: {}", t, err);
    const bool sdpa_family = t == "scaled_dot_product" || t == "causal" || t == "bidirectional";
    if (o.core && t != "flash" && !(sdpa_family && o.impl == "flash"))
      user_error("--core times the tiled kernel alone: use --types flash (or a scaled_dot_product type with "
                 "--impl flash), got '{}'{}", t, sdpa_family ? " with --impl " + o.impl : "");
  }
}

namespace {
// The flash kernel alone (flash.h) on head-major q, k, v [B,H,n,D] (and dout), as PyTorch's `core`
// form: no projections. Outputs, log-sum-exp, gradients and the kernel's workspace are allocated
// uninitialised outside the probe and first touched by the first call, so they count as its memory.
void bench_flash_core(const AttentionBenchOptions& o, const std::string& type, int n, AttentionBenchRow& r) {
  const int B = o.batch, H = o.heads, Hkv = kv_heads(o), D = o.head_dim;
  const auto& info = attention_registry().at(type).info;
  FlashOptions fo;
  fo.scale = 1.0f / std::sqrt(float(D));
  fo.causal = info.force_causal >= 0 ? info.force_causal == 1 : o.causal;
  fo.bf16 = o.bf16;
  const FlashShape shape{B, H, Hkv, n, n, D};
  const size_t nq = size_t(B) * H * n * D, nkv = size_t(B) * Hkv * n * D;
  Rng rng(o.seed);
  std::vector<float> q(nq), k(nkv), v(nkv), dout(nq);
  for (auto* t : {&q, &k, &v, &dout})
    for (float& e : *t) e = rng.normal();
  std::unique_ptr<float[]> out(new float[nq]), lse(new float[size_t(B) * H * n]), dq(new float[nq]),
      dk(new float[nkv]), dv(new float[nkv]);
  FlashWorkspace ws;
  auto call = [&] {
    flash_forward(out.get(), lse.get(), q.data(), k.data(), v.data(), shape, fo, ws);
    if (o.backward)
      flash_backward(dq.get(), dk.get(), dv.get(), dout.data(), q.data(), k.data(), v.data(), out.get(), lse.get(),
                     shape, fo, ws);
  };
  const bool probe = reset_rss_hwm();
  const long base = current_rss_kb();
  call();
  if (probe && base >= 0) r.peak_extra_mb = double(rss_hwm_kb() - base) / 1024.0;
  if (o.on_call) o.on_call();
  for (int w = 1; w < o.warmup; w++) {
    call();
    if (o.on_call) o.on_call();
  }
  for (int i = 0; i < o.repeats; i++) {
    const auto t0 = Clock::now();
    call();
    r.ms.push_back(ms_since(t0));
    if (o.on_call) o.on_call();
  }
}
}  // namespace

std::vector<AttentionBenchRow> bench_attention(const AttentionBenchOptions& o,
                                               const std::function<void(const AttentionBenchRow&)>& on_row) {
  check_attention_bench(o);
  const GemmBf16Scope products(o.bf16);  // the modules' GEMMs (and their flash kernels) in bf16 too
  const int C = o.heads * o.head_dim;
  // start the OpenMP threads before any memory is measured
  {
    std::vector<float> a(64 * 64, 1.0f), c(64 * 64);
    linear_forward(c.data(), a.data(), a.data(), nullptr, 64, 64, 64);
  }
  std::vector<AttentionBenchRow> rows;
  for (const auto& type : o.types)
    for (int n : o.lengths) {
      AttentionBenchRow r;
      r.type = type;
      r.n = n;
      r.est_mb = attention_buffer_bytes(o, type, n) / (1024.0 * 1024.0);
      r.gflop = o.core ? core_flops(o, type, n) / 1e9 : attention_flops(o, n) / 1e9;
      if (r.est_mb > o.max_mem_gb * 1024.0) {
        r.skipped = true;
        r.note = fmt::format("needs about {:.0f} MB of n×n buffers > --max-mem-gb {}", r.est_mb, o.max_mem_gb);
        rows.push_back(r);
        if (o.on_call)
          for (int c = 0; c < std::max(1, o.warmup) + o.repeats; c++) o.on_call();  // the calls it would have made
        if (on_row) on_row(r);
        continue;
      }
      if (o.core) {
        bench_flash_core(o, type, n, r);
      } else {
        ParamStore store;
        Rng rng(o.seed);
        auto attn = make_attention(make_spec(o, type, n), store, rng);
        const size_t NC = size_t(o.batch) * n * C;
        std::vector<float> x(NC), dout(NC), out(NC), dx(NC, 0.0f);
        for (float& e : x) e = rng.normal();
        for (float& e : dout) e = rng.normal();
        auto call = [&] {
          attn->forward(out.data(), x.data(), x.data(), o.batch, n, n, AttnMask{}, o.backward, nullptr);
          if (o.backward) attn->backward(dx.data(), dx.data(), dout.data());
        };
        const bool probe = reset_rss_hwm();
        const long base = current_rss_kb();
        call();  // first call: allocates and touches the module's buffers
        if (probe && base >= 0) r.peak_extra_mb = double(rss_hwm_kb() - base) / 1024.0;
        if (o.on_call) o.on_call();
        for (int w = 1; w < o.warmup; w++) {
          call();
          if (o.on_call) o.on_call();
        }
        for (int i = 0; i < o.repeats; i++) {
          std::fill(dx.begin(), dx.end(), 0.0f);
          store.zero_grad();
          const auto t0 = Clock::now();
          call();
          r.ms.push_back(ms_since(t0));
          if (o.on_call) o.on_call();
        }
      }
      r.median_ms = median(r.ms);
      r.min_ms = *std::min_element(r.ms.begin(), r.ms.end());
      r.gflops = r.gflop / (r.median_ms / 1e3);
      r.proj_ms = o.core ? 0.0 : time_projections(o, n, std::min(o.repeats, 5));
      rows.push_back(r);
      if (on_row) on_row(r);
    }
  return rows;
}

std::string attention_bench_csv(const AttentionBenchOptions& o, const std::vector<AttentionBenchRow>& rows) {
  std::string s =
      "type,impl,n,batch,heads,head_dim,kv_heads,causal,backward,threads,repeats,ms_median,ms_min,proj_ms,"
      "gflop,gflops,peak_extra_mb,est_buffers_mb,status\n";
  for (const auto& r : rows) {
    const auto& reg = attention_registry();
    const int fc = reg.count(r.type) ? reg.at(r.type).info.force_causal : -1;
    const bool causal = fc >= 0 ? fc == 1 : o.causal;
    s += fmt::format("{},{},{},{},{},{},{},{},{},{},{},", r.type, o.impl, r.n, o.batch, o.heads, o.head_dim,
                     kv_heads(o), causal ? 1 : 0, o.backward ? 1 : 0, omp_get_max_threads(), o.repeats);
    if (r.skipped)
      s += fmt::format(",,,{:.6f},,,{:.1f},skipped\n", r.gflop, r.est_mb);
    else
      s += fmt::format("{:.3f},{:.3f},{:.3f},{:.6f},{:.2f},{},{:.1f},ok\n", r.median_ms, r.min_ms, r.proj_ms,
                       r.gflop, r.gflops, r.peak_extra_mb >= 0 ? fmt::format("{:.1f}", r.peak_extra_mb) : "",
                       r.est_mb);
  }
  return s;
}

}  // namespace attnlab
