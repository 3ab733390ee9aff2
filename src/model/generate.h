// Autoregressive generation with a decoder model.
//
// This first version recomputes the full forward over the last block_size
// tokens for every new token (no KV cache): O(n²) per token, simple and
// obviously correct; the cached path is built on top of it and tested
// against it.
#pragma once
#include <vector>

#include "core/rng.h"
#include "model/decoder.h"

namespace attnlab {

struct SampleOptions {
  int max_new_tokens = 100;
  float temperature = 1.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = all tokens
  int stop_token = -1;       // stop after emitting this id (-1 = never)
};

// Returns the new tokens only (prompt excluded). The prompt must be non-empty.
std::vector<int> generate(DecoderModel& model, const std::vector<int>& prompt, const SampleOptions& opt,
                          Rng& rng);

// Draw an id from logits[V] with temperature / top-k (temperature 0 = argmax; ties -> lowest id).
int sample_logits(const float* logits, int V, float temperature, int top_k, Rng& rng);

}  // namespace attnlab
