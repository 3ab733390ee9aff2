#include "experiment/decode.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/generate.h"
#include "bench/bench.h"

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
