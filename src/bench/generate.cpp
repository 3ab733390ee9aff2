// `attnlab bench generate` (workload W2 of docs/performance.md): tokens per second of
// autoregressive decoding, sampling (temperature 1) `tokens` new ids after a random prompt.
//   cache:    the prompt goes through forward_cached once, then one forward_cached step per token;
//             each step costs O(L·C²) for the layers plus O(L·H·t·D) attention over t cached positions.
//   no cache: every token recomputes the full forward over the whole sequence so far, O(t) rows.
// Batch 1 runs model/generate.h's generate() itself (what `attnlab sample` runs); batch B > 1 runs
// the same steps over B rows here (generate() decodes one sequence).
// tokens/s = B·tokens / (wall time of one whole generation, median of the repeats), after an untimed
// warm-up generation of min(tokens, 8) tokens; peak extra RSS: the growth during the first timed one.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/model.h"
#include "model/generate.h"
#include "bench/bench.h"
#include "train/checkpoint.h"

namespace attnlab {

namespace {

// B rows at once: the ids of a prompt [B,P] then `tokens` steps. Returns nothing; timing only.
void generate_rows(Model& model, const std::vector<int>& prompt, int B, int P, int tokens, bool cache,
                   Rng& rng) {
  const int V = model.vocab_size(), block = model.config().block_size;
  std::vector<int> seq(size_t(B) * block), next(B), ids;
  for (int b = 0; b < B; b++) std::copy_n(prompt.data() + size_t(b) * P, P, seq.data() + size_t(b) * block);
  int len = P;
  const float* logits = nullptr;
  int rows_T = P;  // logits hold [B, rows_T, V]; each row's last position is sampled
  if (cache) {
    model.cache_reset(B, block);
    logits = model.forward_cached(prompt.data(), B, P);
  }
  for (int i = 0; i < tokens; i++) {
    if (!cache) {
      ids.resize(size_t(B) * len);
      for (int b = 0; b < B; b++) std::copy_n(seq.data() + size_t(b) * block, len, ids.data() + size_t(b) * len);
      model.forward(ids.data(), nullptr, B, len, false, nullptr);
      logits = model.logits();
      rows_T = len;
    }
    for (int b = 0; b < B; b++) {
      next[b] = sample_logits(logits + (size_t(b) * rows_T + rows_T - 1) * V, V, 1.0f, 0, rng);
      seq[size_t(b) * block + len] = next[b];
    }
    len++;
    if (i + 1 == tokens) break;
    if (cache) {
      logits = model.forward_cached(next.data(), B, 1);
      rows_T = 1;
    }
  }
}

// GB/s of reading `bytes` with the current OpenMP threads: the median of 7 passes summing a buffer
// of that size (after one untimed pass that also faults it in). A buffer the size of a decoding
// step's reads is the ceiling for that step: on a machine whose caches hold it this measures the
// cache's bandwidth, otherwise DRAM's.
double read_bandwidth_gbps(double bytes) {
  constexpr size_t kLanes = 64;  // independent partial sums, so that the adds are not one chain
  const size_t chunks = std::max<size_t>(size_t(bytes / sizeof(float)) / kLanes, 1024), n = chunks * kLanes;
  std::vector<float> buf(n, 1.0f);
  std::vector<double> secs;
  volatile float sink = 0.0f;
  for (int r = 0; r < 8; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    float s = 0.0f;
#pragma omp parallel reduction(+ : s)
    {
      float acc[kLanes] = {};
#pragma omp for schedule(static)
      for (size_t c = 0; c < chunks; c++)
        for (size_t j = 0; j < kLanes; j++) acc[j] += buf[c * kLanes + j];
      for (float a : acc) s += a;
    }
    sink = sink + s;
    if (r > 0) secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return double(n) * sizeof(float) / median(secs) / 1e9;
}

}  // namespace

GenerateBench bench_generate(Model& model, const GenerateBenchOptions& o) {
  const ModelConfig& mc = model.config();
  const int block = mc.block_size, V = model.vocab_size();
  if (o.tokens <= 0) user_error("--tokens: expected a positive integer, got {}", o.tokens);
  if (o.prompt_len <= 0) user_error("--prompt-len: expected a positive integer, got {}", o.prompt_len);
  if (o.batch <= 0) user_error("--batch: expected a positive integer, got {}", o.batch);
  if (o.repeats <= 0) user_error("--repeats: expected a positive integer, got {}", o.repeats);
  if (o.prompt_len + o.tokens - 1 > block)
    user_error("--prompt-len + --tokens − 1 = {} exceeds the model's block_size {}: both paths must fit the "
               "context (past it the context slides and the cache is dropped)",
               o.prompt_len + o.tokens - 1, block);

  GenerateBench res;
  const std::string& type = mc.decoder_self.type;
  if (type == "scaled_dot_product" || type == "causal" || type == "differential" || type == "flash") {
    const int kvh = mc.decoder_self.n_kv_heads > 0 ? mc.decoder_self.n_kv_heads : mc.n_heads;
    const double ckv = double(mc.d_model) / mc.n_heads * kvh;
    res.kv_cache_mb = double(mc.n_layers) * 2.0 * o.batch * block * ckv * 4.0 / (1024.0 * 1024.0);
  }

  Rng prng(o.seed);
  std::vector<int> prompt(size_t(o.batch) * o.prompt_len);
  for (int& t : prompt) t = int(prng.below(uint64_t(V)));

  auto run_mode = [&](bool cache) {
    GenerateBenchMode m;
    m.cache = cache;
    auto once = [&](int tokens) {
      Rng rng(o.seed + 1);
      if (o.batch == 1) {
        SampleOptions so;
        so.max_new_tokens = tokens;
        so.temperature = 1.0f;
        so.use_cache = cache;
        const std::vector<int> out = generate(model, prompt, so, rng);
        ATTNLAB_CHECK(int(out.size()) == tokens);
      } else {
        generate_rows(model, prompt, o.batch, o.prompt_len, tokens, cache, rng);
      }
    };
    once(std::min(o.tokens, 8));  // warm-up: threads, first buffers
    if (o.on_repeat) o.on_repeat();
    for (int r = 0; r < o.repeats; r++) {
      const bool probe = r == 0 && reset_rss_hwm();
      const long base = current_rss_kb();
      const auto t0 = std::chrono::steady_clock::now();
      once(o.tokens);
      m.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (probe && base >= 0) m.peak_extra_mb = double(rss_hwm_kb() - base) / 1024.0;
      if (o.on_repeat) o.on_repeat();
    }
    const double med = median(m.seconds);
    m.tokens_per_s = double(o.batch) * o.tokens / med;
    m.ms_per_token = 1e3 * med / o.tokens;
    res.modes.push_back(m);
  };
  if (o.run_cache) {
    if (!model.has_cache())
      user_error("attention type '{}' has no incremental cache: run with --no-cache", type);
    run_mode(true);
    // step t (1-based, after the prompt's P positions) reads K and V of P + t − 1 positions
    const double kv_pos = res.kv_cache_mb >= 0 ? o.prompt_len + (o.tokens - 1) / 2.0 : 0.0;
    const double kv_per_pos_mb = res.kv_cache_mb >= 0 ? res.kv_cache_mb / block : 0.0;
    res.step_read_mb = double(model.params().count()) * sizeof(float) / (1024.0 * 1024.0) + kv_pos * kv_per_pos_mb;
    res.read_gbps = read_bandwidth_gbps(res.step_read_mb * 1024.0 * 1024.0);
  }
  if (o.run_no_cache) run_mode(false);
  return res;
}

}  // namespace attnlab
