// `attnlab bench train`: time training steps of a config and report the
// figures the benchmarks compare (docs/performance.md).
#pragma once
#include <string>
#include <vector>

#include "config/config.h"

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
};

TrainBench bench_train(const Config& cfg, int steps, int warmup);
double measure_gemm_gflops(int n, int reps);
double median(std::vector<double> v);
long peak_rss_kb();

}  // namespace attnlab
