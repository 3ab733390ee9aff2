#include "bench/bench.h"

#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#include "core/comm.h"
#include "core/error.h"
#include "core/gemm.h"
#include "data/factory.h"
#include "model/model.h"
#include "train/grad_accum.h"
#include "train/optimizer.h"
#include "train/precision.h"

namespace attnlab {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

long peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

namespace {
// A "Vm...:   1234 kB" line of /proc/self/status, in kB (-1 if absent).
long proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.compare(0, k.size(), k) == 0) return std::stol(line.substr(k.size()));
  return -1;
}
}  // namespace

long current_rss_kb() { return proc_status_kb("VmRSS"); }
long rss_hwm_kb() { return proc_status_kb("VmHWM"); }

bool reset_rss_hwm() {
  malloc_trim(0);
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return bool(f);
}

double measure_gemm_gflops(int n, int reps) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    const auto t0 = Clock::now();
    sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * double(n) * n * n / median(t) / 1e9;
}

TrainBench bench_train(const Config& cfg, int steps, int warmup, const std::function<void()>& on_step) {
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  TrainBench r;
  r.steps = steps;
  r.warmup = warmup;
  r.threads = omp_get_max_threads();
  auto data = make_dataset(cfg);
  const int B = cfg.train.batch_size;
  Comm& comm = Comm::world();
  r.processes = comm.size();
  if (B % (comm.size() * cfg.train.grad_accum) != 0)
    throw CollectiveError(fmt::format("train.batch_size {} does not divide into {} processes × train.grad_accum {}",
                                      B, comm.size(), cfg.train.grad_accum));
  // padded row length (and source length for an encoder_decoder); the FLOP estimate below is the
  // decoder's, applied to those rows
  const int T = data->row_length(cfg.model.block_size) + data->source_length();
  Model model(cfg.model, data->tokenizer().size(), uint64_t(cfg.train.seed), data->n_classes());
  AdamW opt(model.params(), cfg.train);
  const PrecisionChoice precision = choose_precision(cfg.train);
  r.precision = precision.summary;
  r.precision_warning = precision.warning;
  {
    const GemmBf16Scope products(precision.kernel);  // the steps only: the sgemm probe below stays fp32
    Rng rng(uint64_t(cfg.train.seed)), drop(1);
    Batch batch;
    GradAccumulator accum;  // train.grad_accum micro-batches per step, as the trainer runs them
    r.params = model.params().count();
    for (int s = 0; s < warmup + steps; s++) {
      data->next_batch(batch, B, cfg.model.block_size, Split::train, rng);
      comm.reset_counters();
      const auto t0 = Clock::now();
      accum.run(model, batch, cfg.train.grad_accum, drop, 0.0f);  // zeroes the gradients first
      opt.step(float(cfg.train.lr), clip_scale(grad_norm(model.params()), cfg.train.grad_clip));
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (s >= warmup) {
        r.step_ms.push_back(ms);
        r.comm_ms.push_back(comm.allreduce_seconds * 1e3);
        r.allreduce_mb_per_step = comm.allreduce_bytes / 1e6;
      }
      if (on_step) on_step();
    }
  }
  r.median_ms = median(r.step_ms);
  r.median_comm_ms = median(r.comm_ms);
  r.tokens_per_s = double(B) * T / (r.median_ms / 1e3);
  const double L = cfg.model.n_layers, d = cfg.model.d_model, V = data->tokenizer().size();
  const double F = cfg.model.mlp ? (cfg.model.d_ff > 0 ? cfg.model.d_ff : 4 * d) : 0.0;  // model.mlp false: none
  const double n_mm = L * (4 * d * d + 2 * d * F) + d * V;  // = 12·L·d² + d·V for F = 4d
  r.flops_per_step = 6.0 * n_mm * B * T + 12.0 * L * d * T * double(B) * T;
  r.gflops = r.flops_per_step / (r.median_ms / 1e3) / 1e9;
  r.gemm_peak_gflops = measure_gemm_gflops(1024, 9);
  r.peak_rss_kb = peak_rss_kb();
  return r;
}

}  // namespace attnlab
