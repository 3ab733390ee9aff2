#include <fmt/format.h>

#include <omp.h>

#include <algorithm>

#include "attention/attention.h"
#include "cli/commands.h"
#include "core/progress.h"
#include "config/config.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/gemm.h"
#include "core/gemm_bf16.h"
#include "cuda/cuda_attention.h"
#include "data/factory.h"
#include "experiment/decode.h"
#include "model/model.h"
#include "bench/bench.h"
#include "train/checkpoint.h"

namespace attnlab::cli {

namespace {

// `bench generate --context N`: decode_at_context on random ids, printed.
int decode_at_context_report(Model& model, const std::string& src, int context, const GenerateBenchOptions& g,
                             bool random_weights) {
  if (context < 1) user_error("--context: expected a positive number of tokens, got {}", context);
  const ModelConfig& mc = model.config();
  Rng rng(g.seed);
  std::vector<int> prompt(static_cast<size_t>(context));
  for (int& t : prompt) t = int(rng.below(uint64_t(model.vocab_size())));
  DecodeAtContextOptions d;
  d.tokens = g.tokens;
  d.repeats = g.repeats;
  const DecodeAtContext r = decode_at_context(model, prompt, d);
  fmt::print("bench generate {} | gemm: {} | threads {}\n", src, gemm_backend(), omp_get_max_threads());
  fmt::print("model              {} layers, d_model {}, {} heads, {} KV heads, attention {}{}\n", mc.n_layers,
             mc.d_model, mc.n_heads, mc.decoder_self.n_kv_heads > 0 ? mc.decoder_self.n_kv_heads : mc.n_heads,
             mc.decoder_self.type, random_weights ? " (random weights)" : "");
  fmt::print("decode             greedy, {} new tokens after a context of {} (random ids), {} repeat(s)\n", g.tokens,
             context, g.repeats);
  std::string all;
  for (double x : r.ms_per_token) all += fmt::format(" {:.4f}", x);
  fmt::print("ms/token           {:.4f} (median; every repeat:{})\n", r.median_ms_per_token, all);
  std::string per_layer;
  for (double x : r.cache_values) per_layer += fmt::format(" {}", x);
  fmt::print("cache values       per token per layer:{} (read from the caches, {} positions)\n", per_layer,
             r.positions);
  return 0;
}

// `attnlab bench generate CHECKPOINT|CONFIG` (W2)
Run add_bench_generate(CLI::App& bench) {
  struct Opts {
    std::string source;
    std::vector<std::string> sets;
    GenerateBenchOptions g;
    bool no_cache = false, cache_only = false, quiet = false;
    int threads = 0, vocab = 0, context = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = bench.add_subcommand(
      "generate", "Tokens/s of sampling from a checkpoint or a randomly initialised config, with and without the KV cache");
  sub->add_option("source", o->source, "A .safetensors checkpoint, or a YAML config (random weights)")->required();
  sub->add_option("--tokens", o->g.tokens, "New tokens per sequence")->capture_default_str();
  sub->add_option("--prompt-len", o->g.prompt_len, "Prompt length (random ids)")->capture_default_str();
  sub->add_option("--batch", o->g.batch, "Sequences decoded together")->capture_default_str();
  sub->add_option("--repeats", o->g.repeats, "Timed generations per mode (median)")->capture_default_str();
  sub->add_option("--seed", o->g.seed, "Seed of the prompt and the sampling")->capture_default_str();
  auto* nc = sub->add_flag("--no-cache", o->no_cache, "Only the path without the cache");
  sub->add_flag("--cache-only", o->cache_only, "Only the path with the cache")->excludes(nc);
  sub->add_option("--threads", o->threads, "OpenMP threads (default: the config's train.threads, else all)");
  sub->add_option("--set", o->sets, "Override a config key (repeatable; CONFIG only)");
  sub->add_option("--context", o->context,
                  "Instead: time cached greedy decoding of --tokens tokens after filling the cache with this many "
                  "(random) tokens, ms/token median of --repeats, and read the cache size (E8)");
  sub->add_option("--vocab", o->vocab,
                  "Vocabulary size of a CONFIG's random model (default: build the config's dataset to learn it)");
  sub->add_flag("--quiet", o->quiet, "No progress line on stderr");
  return [o]() {
    const std::string& src = o->source;
    const bool is_config = src.size() > 5 && (src.substr(src.size() - 5) == ".yaml" || src.substr(src.size() - 4) == ".yml");
    std::unique_ptr<Model> model;
    LoadedModel lm;
    int threads = 0;
    if (is_config) {
      const Config cfg = load_config(src, o->sets);
      if (cfg.model.kind != ModelConfig::Kind::decoder)
        user_error("bench generate: model.kind must be decoder, got '{}' in {}", option_name(cfg.model.kind), src);
      int V = o->vocab;
      if (V <= 0) {
        try {
          V = make_dataset(cfg)->tokenizer().size();
        } catch (const UserError& e) {
          user_error("{} (bench generate needs the vocabulary size: pass --vocab N to skip the dataset)", e.what());
        }
      }
      threads = cfg.train.threads;
      ModelConfig mc = cfg.model;
      if (o->context > 0 && block_size_is_free(mc)) mc.block_size = std::max(mc.block_size, o->context + o->g.tokens);
      model = std::make_unique<Model>(mc, V, uint64_t(cfg.train.seed));
    } else {
      if (!o->sets.empty()) user_error("--set applies to a CONFIG, not to checkpoint '{}'", src);
      lm = o->context > 0 ? load_model_for_positions(src, o->context + o->g.tokens) : load_model(src);
      threads = lm.config.train.threads;
      model = std::move(lm.model);
    }
    if (o->threads > 0) threads = o->threads;
    if (threads > 0) omp_set_num_threads(threads);
    if (o->context > 0) return decode_at_context_report(*model, src, o->context, o->g, is_config);
    GenerateBenchOptions g = o->g;
    g.run_cache = !o->no_cache;
    g.run_no_cache = !o->cache_only;
    const ModelConfig& mc = model->config();
    fmt::print("bench generate {} | gemm: {} | threads {}\n", src, gemm_backend(), omp_get_max_threads());
    fmt::print("model              {:.2f} M parameters, {} layers, d_model {}, {} heads, vocab {}, attention {}{}\n",
               double(model->params().count()) / 1e6, mc.n_layers, mc.d_model, mc.n_heads, model->vocab_size(),
               mc.decoder_self.type, is_config ? " (random weights)" : "");
    fmt::print("decode             batch {}, prompt {} token(s), {} new tokens, temperature 1, {} repeat(s)\n",
               g.batch, g.prompt_len, g.tokens, g.repeats);
    ProgressMeter meter("bench generate", long(g.run_cache + g.run_no_cache) * (g.repeats + 1), "generations",
                        o->quiet);
    g.on_repeat = [&meter] { meter.tick(); };
    const GenerateBench r = bench_generate(*model, g);
    meter.done();
    for (const auto& m : r.modes) {
      fmt::print("{:<18} {:.1f} tokens/s  {:.3f} ms/token  (median of {}; peak extra RSS {})\n",
                 m.cache ? "cache" : "no-cache", m.tokens_per_s, m.ms_per_token, m.seconds.size(),
                 m.peak_extra_mb >= 0 ? fmt::format("{:.1f} MB", m.peak_extra_mb) : std::string("n/a"));
    }
    if (r.kv_cache_mb >= 0)
      fmt::print("KV cache           {:.2f} MB (K and V, {} layers × batch {} × {} positions, fp32)\n", r.kv_cache_mb,
                 mc.n_layers, g.batch, mc.block_size);
    if (r.read_gbps > 0) {  // the cached step's memory traffic against the machine's read bandwidth
      const double gbps = r.step_read_mb * 1024.0 * 1024.0 / (r.modes[0].ms_per_token * 1e-3) / 1e9;
      fmt::print("memory             {:.2f} MB read per cached step (weights once, K/V averaged over the steps): "
                 "{:.1f} GB/s = {:.0f}% of the {:.1f} GB/s measured reading a buffer of that size\n",
                 r.step_read_mb, gbps, 100.0 * gbps / r.read_gbps, r.read_gbps);
    }
    if (r.modes.size() == 2)
      fmt::print("speed-up           cache / no-cache = {:.1f}x\n", r.modes[0].tokens_per_s / r.modes[1].tokens_per_s);
    return 0;
  };
}

// `bench gemm`: one layer's training products (W1's shapes by default) with sgemm's fp32 path and
// each bf16 kernel of the machine (train.precision: bf16), side by side in one process.
Run add_bench_gemm(CLI::App& bench) {
  struct Opts {
    GemmBenchOptions g;
    int threads = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = bench.add_subcommand(
      "gemm", "Time one transformer layer's training products in fp32 and with each bf16 kernel (ms, GFLOP/s)");
  sub->add_option("--rows", o->g.rows, "Rows of the activations (batch x context)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--d-model", o->g.d_model, "Model width")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--d-ff", o->g.d_ff, "MLP width")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--repeats", o->g.repeats, "Timed calls per product and path (median)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--warmup", o->g.warmup, "Untimed calls first")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--threads", o->threads, "OpenMP threads (0 = all)")->check(CLI::NonNegativeNumber);
  sub->add_flag("--quiet", o->quiet, "No progress line on stderr");
  return [o]() {
    if (o->threads > 0) omp_set_num_threads(o->threads);
    std::string kernels;
    for (Bf16Kernel k : bf16_kernels_supported()) kernels += std::string(kernels.empty() ? "" : ", ") + bf16_kernel_name(k);
    const long paths = 1 + long(bf16_kernels_supported().size());
    ProgressMeter meter("bench gemm", kGemmBenchProducts * paths * (o->g.warmup + o->g.repeats), "calls", o->quiet);
    o->g.on_call = [&meter] { meter.tick(); };
    const std::vector<GemmBenchRow> rows = bench_gemm(o->g);
    meter.done();
    fmt::print("bench gemm | rows {}, d_model {}, d_ff {} | fp32: {} | bf16 kernels: {} | threads {}\n", o->g.rows,
               o->g.d_model, o->g.d_ff, gemm_backend(), kernels.empty() ? "none on this machine" : kernels,
               omp_get_max_threads());
    std::string head = fmt::format("{:<8} {:>6} {:>6} {:>6} {:>5}", "product", "M", "N", "K", "op");
    for (Bf16Kernel k : rows.front().paths) {
      const std::string n = k == Bf16Kernel::none ? "fp32" : bf16_kernel_name(k);
      head += fmt::format(" {:>14} {:>10}", n + " ms", "GFLOP/s");
    }
    fmt::print("{}\n", head);
    std::vector<double> total(rows.front().paths.size(), 0.0);
    double gflop = 0.0;
    for (const GemmBenchRow& r : rows) {
      std::string line = fmt::format("{:<8} {:>6} {:>6} {:>6} {:>5}", r.name, r.M, r.N, r.K,
                                     fmt::format("{}{}", r.trans_a ? "AT" : "A", r.trans_b ? "BT" : "B"));
      for (size_t i = 0; i < r.paths.size(); i++) {
        line += fmt::format(" {:>14.3f} {:>10.1f}", r.median_ms[i], r.gflop / (r.median_ms[i] / 1e3));
        total[i] += r.median_ms[i];
      }
      gflop += r.gflop;
      fmt::print("{}\n", line);
    }
    std::string line = fmt::format("{:<8} {:>6} {:>6} {:>6} {:>5}", "total", "", "", "", "");
    for (size_t i = 0; i < total.size(); i++) line += fmt::format(" {:>14.3f} {:>10.1f}", total[i], gflop / (total[i] / 1e3));
    fmt::print("{}\n", line);
    for (size_t i = 1; i < total.size(); i++)
      fmt::print("{} / fp32: {:.2f}x the speed\n", bf16_kernel_name(rows.front().paths[i]), total[0] / total[i]);
    return 0;
  };
}

// `attnlab bench peak`: the FP32 multiply-add ceiling at 1 thread and at --threads
Run add_bench_peak(CLI::App& bench) {
  struct Opts {
    int threads = 0, repeats = 7;
    double seconds = 0.25;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = bench.add_subcommand(
      "peak", "Measure the cores' FP32 multiply-add peak (GFLOP/s), the ceiling kernels are quoted against");
  sub->add_option("--threads", o->threads, "Threads of the second row (0 = all)")->check(CLI::NonNegativeNumber);
  sub->add_option("--repeats", o->repeats, "Timed runs per row (median)")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--seconds", o->seconds, "About how long each run lasts")
      ->check(CLI::Range(0.01, 10.0))
      ->capture_default_str();
  return [o]() {
    const int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    const PeakIsa isa = peak_isa();
    const long iters = fma_peak_iters(o->seconds);
    fmt::print("bench peak | {} ({} floats a vector), 24 independent chains a thread, registers only | "
               "median of {}\n",
               isa.name, isa.lanes, o->repeats);
    fmt::print("{:>8} {:>10} {:>12}\n", "threads", "GFLOP/s", "per thread");
    std::vector<int> rows{1};
    if (threads > 1) rows.push_back(threads);
    for (int t : rows) {
      std::vector<double> g;
      for (int r = 0; r < o->repeats; r++) g.push_back(fma_peak_gflops(t, iters));
      const double m = median(g);
      fmt::print("{:>8} {:>10.1f} {:>12.1f}\n", t, m, m / t);
    }
    return 0;
  };
}

// `attnlab bench attention` (W3)
Run add_bench_attention(CLI::App& bench) {
  struct Opts {
    AttentionBenchOptions a;
    int threads = 0;
    bool quiet = false;
    std::string csv, device = "cpu", dtype = "f32";
  };
  auto o = std::make_shared<Opts>();
  auto* sub = bench.add_subcommand(
      "attention", "Time one attention module per type and length: ms, GFLOP/s, peak extra memory; CSV out");
  sub->add_option("--types", o->a.types, "Attention types, comma-separated (registry names)")
      ->delimiter(',')
      ->required();
  sub->add_option("--lengths", o->a.lengths, "Sequence lengths, comma-separated")->delimiter(',')->required();
  sub->add_flag("--backward", o->a.backward, "Time forward + backward (default: forward only)");
  sub->add_option("--batch", o->a.batch, "Batch size")->capture_default_str();
  sub->add_option("--heads", o->a.heads, "Query heads")->capture_default_str();
  sub->add_option("--head-dim", o->a.head_dim, "Head dimension (d_model = heads · head-dim)")->capture_default_str();
  sub->add_option("--kv-heads", o->a.kv_heads, "Key/value heads (0 = heads)")->capture_default_str();
  sub->add_flag("--causal,!--no-causal", o->a.causal, "Causal mask (default) or none; `causal` and "
                "`bidirectional` fix their own");
  sub->add_option("--impl", o->a.impl, "scaled_dot_product implementation: naive | flash | auto")->capture_default_str();
  sub->add_flag("--core", o->a.core,
                "Time the tiled kernel alone on head-major q, k, v (no projections; --types flash), like "
                "PyTorch's `core` form in scripts/bench/w3_pytorch.py");
  sub->add_option("--repeats", o->a.repeats, "Timed calls (median)")->capture_default_str();
  sub->add_option("--warmup", o->a.warmup, "Untimed calls first (the first measures memory)")->capture_default_str();
  sub->add_option("--max-mem-gb", o->a.max_mem_gb, "Skip lengths whose estimated n×n buffers exceed this")
      ->capture_default_str();
  sub->add_option("--threads", o->threads, "OpenMP threads (default: all)");
  sub->add_option("--seed", o->a.seed, "Seed of weights and inputs")->capture_default_str();
  sub->add_option("--csv", o->csv, "Also write the rows to this CSV file");
  sub->add_option("--device", o->device,
                  "cpu: the modules above; cuda: the GPU flash kernel alone (src/cuda; no projections, inputs "
                  "already on the device, --types ignored)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_option("--dtype", o->dtype,
                  "f32, or bf16 inputs to every product with fp32 accumulation (cpu: as train.precision: bf16, "
                  "with the best bf16 kernel, ATTNLAB_BF16_KERNEL to choose)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  sub->add_flag("--quiet", o->quiet, "No progress line on stderr");
  return [o]() {
    if (o->threads > 0) omp_set_num_threads(o->threads);
    if (o->device == "cuda") {
      const AttentionBenchOptions& a = o->a;
      const bool bf16 = o->dtype == "bf16";
      check_attention_cuda_bench();
      fmt::print("bench attention --device cuda | {} | flash kernel, {} | batch {}, {} heads ({} kv) × {}, {}; "
                 "median of {} calls\n\n",
                 cuda_device_name(), o->dtype, a.batch, a.heads, a.kv_heads > 0 ? a.kv_heads : a.heads, a.head_dim,
                 a.causal ? "causal" : "no mask", a.repeats);
      fmt::print("{:>6} {:>10} {:>10} {:>14} {:>14}\n", "n", "fwd ms", "fwd TF/s", "fwd+bwd ms", "fwd+bwd TF/s");
      std::vector<CudaAttentionBenchRow> rows;
      bench_attention_cuda(a, bf16, [&](const CudaAttentionBenchRow& r) {
        fmt::print("{:>6} {:>10.3f} {:>10.2f} {:>14.3f} {:>14.2f}\n", r.n, r.fwd_ms, r.fwd_tflops, r.fwd_bwd_ms,
                   r.fwd_bwd_tflops);
        rows.push_back(r);
      });
      if (!o->csv.empty()) {
        write_file_atomic(o->csv, attention_cuda_bench_csv(a, bf16, rows));
        fmt::print("\nwrote {}\n", o->csv);
      }
      return 0;
    }
    AttentionBenchOptions a = o->a;
    check_attention_bench(a);
    if (o->dtype == "bf16") {
      a.bf16 = bf16_kernel_best();
      if (a.bf16 == Bf16Kernel::none)
        user_error("--dtype bf16 needs a CPU with AMX-BF16 or AVX512-BF16 (this one has neither, or "
                   "ATTNLAB_BF16_KERNEL=none says to act as if)");
    }
    const int kvh = a.kv_heads > 0 ? a.kv_heads : a.heads;
    if (!o->csv.empty()) write_file_atomic(o->csv, attention_bench_csv(a, {}));  // fail early if unwritable
    fmt::print("bench attention | gemm: {} | threads {} | {}\n", gemm_backend(), omp_get_max_threads(),
               a.bf16 == Bf16Kernel::none ? std::string("fp32")
                                          : fmt::format("bf16 inputs ({} kernel)", bf16_kernel_name(a.bf16)));
    fmt::print("shape: batch {}, {} heads ({} kv) × {} = d_model {}, self-attention, {}, impl {}; {} repeat(s) "
               "after {} warm-up\n",
               a.batch, a.heads, kvh, a.head_dim, a.heads * a.head_dim, a.backward ? "forward + backward" : "forward",
               a.impl, a.repeats, a.warmup);
    fmt::print("{}\n\n", a.core ? "the flash kernel alone on head-major q, k, v (no projections); GFLOP: the products "
                                   "it computes (causal: the lower half), backward 2.5x the forward"
                                 : "times include the Q/K/V/O projections; proj ms = those GEMMs alone");
    fmt::print("{:<20} {:>6} {:>6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>14}\n", "type", "mask", "n", "ms median",
               "ms min", "proj ms", "GFLOP", "GFLOP/s", "peak extra MB");
    std::vector<AttentionBenchRow> done;
    ProgressMeter meter("bench attention", long(a.types.size() * a.lengths.size()) * (std::max(1, a.warmup) + a.repeats),
                        "calls", o->quiet);
    a.on_call = [&meter] { meter.tick(); };
    auto on_row = [&](const AttentionBenchRow& r) {
      meter.clear();
      const auto& info = attention_registry().at(r.type).info;
      const bool causal = info.force_causal >= 0 ? info.force_causal == 1 : a.causal;
      if (r.skipped) {
        fmt::print("{:<20} {:>6} {:>6} skipped: {}\n", r.type, causal ? "causal" : "none", r.n, r.note);
      } else {
        fmt::print("{:<20} {:>6} {:>6} {:>10.2f} {:>10.2f} {:>9.2f} {:>9.2f} {:>9.1f} {:>14}\n", r.type,
                   causal ? "causal" : "none", r.n, r.median_ms, r.min_ms, r.proj_ms, r.gflop, r.gflops,
                   r.peak_extra_mb >= 0 ? fmt::format("{:.1f}", r.peak_extra_mb) : std::string("n/a"));
      }
      std::fflush(stdout);
      done.push_back(r);
      if (!o->csv.empty()) write_file_atomic(o->csv, attention_bench_csv(a, done));
    };
    bench_attention(a, on_row);
    meter.done();
    if (!o->csv.empty()) fmt::print("\nwrote {}\n", o->csv);
    return 0;
  };
}

}  // namespace

Run add_bench(CLI::App& app) {
  struct Opts {
    std::string config;
    std::vector<std::string> sets;
    int steps = 20, warmup = 3;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("bench", "Benchmarks (docs/performance.md)");
  sub->require_subcommand(1);
  auto* tr = sub->add_subcommand("train", "Time training steps of a config: ms/step, tokens/s, GFLOP/s, peak RSS");
  tr->add_option("config", o->config, "YAML config file")->required();
  tr->add_option("--set", o->sets, "Override a key (repeatable)");
  tr->add_option("--steps", o->steps, "Timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  tr->add_option("--warmup", o->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber)->capture_default_str();
  tr->add_flag("--quiet", o->quiet, "No progress line on stderr");
  Run run_train = [o]() {
    Comm& comm = Comm::world();
    Config cfg;
    on_every_rank(comm, [&] { cfg = load_config(o->config, o->sets); });
    if (comm.root()) fmt::print("bench train {} | gemm: {}\n", o->config, gemm_backend());
    // rank 0 shows the progress of the job (its sgemm probe at the end is not counted)
    ProgressMeter meter("bench train", o->steps + o->warmup, "steps", o->quiet || !comm.root());
    TrainBench r = bench_train(cfg, o->steps, o->warmup, [&meter] { meter.tick(); });
    meter.done();
    if (!comm.root()) return 0;  // rank 0 reports for the job
    std::sort(r.step_ms.begin(), r.step_ms.end());
    if (r.processes > 1)
      fmt::print("processes          {} (MPI) × {} thread{} each; tokens/s below counts the global batch\n",
                 r.processes, r.threads, r.threads == 1 ? "" : "s");
    else
      fmt::print("threads            {}\n", r.threads);
    if (!r.precision_warning.empty()) fmt::print("warning: {}\n", r.precision_warning);
    fmt::print("precision          {}\n", r.precision);
    fmt::print("parameters         {:.2f} M\n", double(r.params) / 1e6);
    fmt::print("steps              {} timed after {} warm-up\n", r.steps, r.warmup);
    fmt::print("ms/step            median {:.1f}  (min {:.1f}, max {:.1f})\n", r.median_ms, r.step_ms.front(),
               r.step_ms.back());
    fmt::print("tokens/s           {:.0f}\n", r.tokens_per_s);
    fmt::print("GFLOP/step         {:.1f} (nominal)\n", r.flops_per_step / 1e9);
    fmt::print("GFLOP/s            {:.1f}  = {:.0f}% of measured sgemm 1024³ ({:.1f} GFLOP/s)\n", r.gflops,
               100.0 * r.gflops / r.gemm_peak_gflops, r.gemm_peak_gflops);
    fmt::print("peak RSS           {:.0f} MB{}\n", double(r.peak_rss_kb) / 1024.0, r.processes > 1 ? " (rank 0)" : "");
    if (r.processes > 1) {
      const double gbps = r.median_comm_ms > 0 ? r.allreduce_mb_per_step * 8 / r.median_comm_ms : 0.0;
      fmt::print("all-reduce         {:.2f} MB of gradients per rank per step, {} call(s) of at most {:.0f} MB\n",
                 r.allreduce_mb_per_step, (size_t(r.allreduce_mb_per_step * 1e6 / 4) + Comm::kBucketFloats - 1) /
                     Comm::kBucketFloats, double(Comm::kBucketFloats) * 4 / 1e6);
      fmt::print("communication      median {:.2f} ms/step = {:.1f}% of the step ({:.2f} Gb/s of buffer; rank 0's time "
                 "in MPI_Allreduce, waiting for the other ranks included)\n",
                 r.median_comm_ms, 100.0 * r.median_comm_ms / r.median_ms, gbps);
    }
    return 0;
  };
  Run gen = add_bench_generate(*sub);
  Run att = add_bench_attention(*sub);
  Run gemm = add_bench_gemm(*sub);
  Run peak = add_bench_peak(*sub);
  return [sub, tr, run_train, gen, att, gemm, peak]() {
    if (sub->got_subcommand(tr)) return run_train();
    if (Comm::world().size() > 1)
      throw CollectiveError("under mpirun only `bench train` runs; the other benchmarks run in one process");
    if (sub->got_subcommand("generate")) return gen();
    if (sub->got_subcommand("gemm")) return gemm();
    if (sub->got_subcommand("peak")) return peak();
    return att();
  };
}

}  // namespace attnlab::cli
