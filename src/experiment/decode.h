// E8's measurement (docs/experiments.md): cached greedy decoding after a long context, and the
// checkpoint loading that makes room for it.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "model/model.h"
#include "train/checkpoint.h"

namespace attnlab {

// Cached greedy decoding of `tokens` new ids after the cache holds `prompt` (context ids, fed
// through forward_cached in chunks of `prefill_chunk`, untimed). Each repeat resets the cache,
// refills it and times the `tokens` steps (argmax + forward_cached of one token); ms/token is
// that wall time / tokens, and the result is the median over the repeats. After the last repeat
// the cache holds context + tokens positions; the floats in each decoder self-attention's cache
// buffers (K and V for a KV cache), divided by batch (1) × those positions, give cache_values:
// what one token costs the cache of one layer (2·n_kv_heads·d_head for a KV cache).
// The model's block_size must be at least context + tokens.
struct DecodeAtContextOptions {
  int tokens = 32;
  int repeats = 5;
  int prefill_chunk = 256;
};
struct DecodeAtContext {
  int context = 0, positions = 0;        // prompt length; positions cached after decoding
  std::vector<double> ms_per_token;      // every repeat
  double median_ms_per_token = 0.0;
  std::vector<double> cache_values;      // per decoder layer (self-attention), floats per position
  std::vector<int> generated;            // the greedy tokens of the last repeat
};
DecodeAtContext decode_at_context(Model& model, const std::vector<int>& prompt, const DecodeAtContextOptions& o);
// Whether a model config can be rebuilt with another block_size and keep its weights: positions
// rope, alibi or none (a learned or sinusoidal table has block_size rows).
bool block_size_is_free(const ModelConfig& mc);
// A checkpoint's model with room for `positions` positions: as saved when its block_size allows
// them, else (block_size_is_free) the same weights in a model built with block_size = positions.
// UserError otherwise.
LoadedModel load_model_for_positions(const std::string& checkpoint, int positions);

}  // namespace attnlab
