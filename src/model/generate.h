// Autoregressive generation with a decoder model.
//
// With use_cache (and every layer's attention supporting it) each new token
// costs one incremental step through the layers' caches (KV cache, or linear
// attention's recurrent state). Without it, every token recomputes the full
// forward over the last block_size tokens: O(n²) per token, simple and
// obviously correct, the reference the cached path is tested against.
// Past block_size the context slides; the cache cannot follow a sliding
// window of learned positions, so from then on both paths recompute.
#pragma once
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace attnlab {

struct SampleOptions {
  int max_new_tokens = 100;
  float temperature = 1.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = all tokens
  int stop_token = -1;       // stop after emitting this id (-1 = never)
  bool use_cache = true;     // incremental decoding when the model supports it
};

// Returns the new tokens only (prompt excluded). The prompt must be non-empty.
std::vector<int> generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt,
                          Rng& rng);

// Draw an id from logits[V] with temperature / top-k (temperature 0 = argmax; ties -> lowest id).
int sample_logits(const float* logits, int V, float temperature, int top_k, Rng& rng);

}  // namespace attnlab
