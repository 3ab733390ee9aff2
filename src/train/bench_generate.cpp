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
#include "train/bench.h"
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
    for (int r = 0; r < o.repeats; r++) {
      const bool probe = r == 0 && reset_rss_hwm();
      const long base = current_rss_kb();
      const auto t0 = std::chrono::steady_clock::now();
      once(o.tokens);
      m.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (probe && base >= 0) m.peak_extra_mb = double(rss_hwm_kb() - base) / 1024.0;
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
  }
  if (o.run_no_cache) run_mode(false);
  return res;
}

}  // namespace attnlab

namespace attnlab {

bool block_size_is_free(const ModelConfig& mc) {
  using P = ModelConfig::Positions;
  return mc.positions == P::rope || mc.positions == P::alibi || mc.positions == P::none;
}

LoadedModel load_model_for_positions(const std::string& checkpoint, int positions) {
  const CheckpointFile ck = read_checkpoint(checkpoint);
  LoadedModel lm = load_model(ck, checkpoint);
  if (lm.config.model.block_size >= positions) return lm;
  if (!block_size_is_free(lm.config.model))
    user_error("checkpoint '{}': {} positions exceed its model.block_size {}, and model.positions '{}' has one row "
               "per position (rope, alibi or none could be rebuilt larger)",
               checkpoint, positions, lm.config.model.block_size, option_name(lm.config.model.positions));
  ModelConfig mc = lm.config.model;
  mc.block_size = positions;
  lm.model = std::make_unique<Model>(mc, lm.tokenizer.size(), 0);
  load_params(ck, lm.model->params(), checkpoint);
  return lm;
}

DecodeAtContext decode_at_context(Model& model, const std::vector<int>& prompt, const DecodeAtContextOptions& o) {
  const ModelConfig& mc = model.config();
  if (mc.kind != ModelConfig::Kind::decoder)
    user_error("decoding at a context needs a decoder model, got model.kind '{}'", option_name(mc.kind));
  if (!model.has_cache())
    user_error("decoding at a context needs an incremental cache; attention type '{}' has none", mc.decoder_self.type);
  if (prompt.empty()) user_error("decoding at a context needs a non-empty prompt");
  if (o.tokens <= 0 || o.repeats <= 0 || o.prefill_chunk <= 0)
    user_error("decoding at a context: tokens, repeats and prefill chunk must be positive, got {}, {}, {}", o.tokens,
               o.repeats, o.prefill_chunk);
  const int context = int(prompt.size()), capacity = context + o.tokens, V = model.vocab_size();
  if (capacity > mc.block_size)
    user_error("decoding {} tokens after a context of {} needs model.block_size ≥ {}, got {}", o.tokens, context,
               capacity, mc.block_size);
  DecodeAtContext r;
  r.context = context;
  std::vector<float> last(static_cast<size_t>(V));
  for (int rep = 0; rep < o.repeats; rep++) {
    // fill the cache with the prompt (untimed), in chunks so the score rows stay small
    model.cache_reset(1, capacity);
    const float* lg = nullptr;
    int n = 0;
    for (int p = 0; p < context; p += n) {
      n = std::min(o.prefill_chunk, context - p);
      lg = model.forward_cached(prompt.data() + p, 1, n);
    }
    std::copy_n(lg + size_t(n - 1) * V, V, last.begin());
    Rng unused(0);
    std::vector<int> out;
    out.reserve(size_t(o.tokens));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.tokens; i++) {
      const int next = sample_logits(i == 0 ? last.data() : lg, V, 0.0f, 0, unused);  // greedy
      out.push_back(next);
      lg = model.forward_cached(&next, 1, 1);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.ms_per_token.push_back(1e3 * s / o.tokens);
    r.generated = std::move(out);
  }
  r.median_ms_per_token = median(r.ms_per_token);
  r.positions = model.cache_len();
  ATTNLAB_CHECK(r.positions == capacity);
  // read back what the caches hold, layer by layer (labels decoder_self_L<i>)
  std::vector<std::pair<int, Attention*>> layers;
  for (auto& [label, a] : model.named_attention())
    if (label.rfind("decoder_self_L", 0) == 0) layers.push_back({std::atoi(label.c_str() + 14), a});
  std::sort(layers.begin(), layers.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  for (auto& [l, a] : layers) r.cache_values.push_back(double(a->cache_floats()) / double(r.positions));
  return r;
}

}  // namespace attnlab
