#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "config/config.h"
#include "core/gemm.h"
#include "train/bench.h"

namespace attnlab::cli {

Run add_bench(CLI::App& app) {
  struct Opts {
    std::string config;
    std::vector<std::string> sets;
    int steps = 20, warmup = 3;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("bench", "Benchmarks (docs/performance.md)");
  sub->require_subcommand(1);
  auto* tr = sub->add_subcommand("train", "Time training steps of a config: ms/step, tokens/s, GFLOP/s, peak RSS");
  tr->add_option("config", o->config, "YAML config file")->required();
  tr->add_option("--set", o->sets, "Override a key (repeatable)");
  tr->add_option("--steps", o->steps, "Timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  tr->add_option("--warmup", o->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  return [o]() {
    const Config cfg = load_config(o->config, o->sets);
    fmt::print("bench train {} | gemm: {}\n", o->config, gemm_backend());
    TrainBench r = bench_train(cfg, o->steps, o->warmup);
    std::sort(r.step_ms.begin(), r.step_ms.end());
    fmt::print("threads            {}\n", r.threads);
    fmt::print("parameters         {:.2f} M\n", double(r.params) / 1e6);
    fmt::print("steps              {} timed after {} warm-up\n", r.steps, r.warmup);
    fmt::print("ms/step            median {:.1f}  (min {:.1f}, max {:.1f})\n", r.median_ms, r.step_ms.front(),
               r.step_ms.back());
    fmt::print("tokens/s           {:.0f}\n", r.tokens_per_s);
    fmt::print("GFLOP/step         {:.1f} (nominal)\n", r.flops_per_step / 1e9);
    fmt::print("GFLOP/s            {:.1f}  = {:.0f}% of measured sgemm 1024³ ({:.1f} GFLOP/s)\n", r.gflops,
               100.0 * r.gflops / r.gemm_peak_gflops, r.gemm_peak_gflops);
    fmt::print("peak RSS           {:.0f} MB\n", double(r.peak_rss_kb) / 1024.0);
    return 0;
  };
}

}  // namespace attnlab::cli
