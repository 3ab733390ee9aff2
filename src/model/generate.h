// Decoding: sampling and greedy decoding, batched, and beam search.
//
// With use_cache (and every decoder self-attention supporting it) each new token costs one
// incremental step through the layers' caches (KV cache, or linear attention's recurrent state);
// an encoder_decoder encodes its source once and its cross-attention reads that memory at every
// step. Without the cache, every token recomputes the full forward over the last block_size
// tokens: O(n²) per token, simple and obviously correct, the reference the cached path is tested
// against. Past model.context() (model.block_size unless Model::set_context raised it) a decoder's
// context slides; the cache cannot follow a sliding window of learned positions, so from then on
// both paths recompute.
//
// Stopping: a row ends after it emits stop_token, or once stop_when (if set) returns true for the
// tokens it has generated so far (stop_at_text: once their decoded text contains a string). Both
// apply to sampling, batched rows (each row on its own) and beam search (a hypothesis that meets
// either is finished), with and without the cache.
//
// Beam search keeps `beam_width` hypotheses as the rows of one batch. Each step scores every
// (hypothesis, token) by the summed log-probability, keeps the best `beam_width` that have not
// ended, reorders the cache rows to follow their parents (Model::cache_reorder), and sets aside
// those that emitted the stop token. Hypotheses are ranked by log p / length^length_penalty
// (length counts the generated tokens, stop token included). Width 1 is greedy decoding.
#pragma once
#include <vector>

#include <functional>
#include <string>

#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"

namespace attnlab {

struct SampleOptions {
  int max_new_tokens = 100;
  float temperature = 1.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = all tokens
  float top_p = 1.0f;        // nucleus: the smallest set of likeliest tokens with mass ≥ top_p
  int stop_token = -1;       // stop after emitting this id (-1 = never)
  // stop a row once this returns true for the tokens it has generated (prompt excluded); empty = never
  std::function<bool(const std::vector<int>&)> stop_when;
  bool use_cache = true;     // incremental decoding when the model supports it
  int beam_width = 1;        // > 1: beam search (temperature, top-k and top-p are then unused)
  float length_penalty = 1.0f;
  // Ids below this are never emitted (their logits count as -inf in sampling, greedy decoding and
  // beam search): a split vocabulary's source-only ids (data.shared_vocab false). 0 = none.
  int min_token = 0;
};

// Decoder: the new tokens after `prompt` (non-empty), prompt excluded.
std::vector<int> generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt, Rng& rng);
// Decoder: B prompts of equal length decoded side by side (one batch). Rows stop independently
// at stop_token; each returned row ends at its stop token or at max_new_tokens.
std::vector<std::vector<int>> generate_batch(Model& model, const std::vector<std::vector<int>>& prompts,
                                             const SampleOptions& opt, Rng& rng);
// encoder_decoder: the output for source `src`, decoding from `start_token` (not returned).
std::vector<int> translate(Model& model, const std::vector<int>& src, int start_token, const SampleOptions& opt,
                           Rng& rng);

// Beam search with opt.beam_width beams (1 is allowed: it must agree with greedy decoding).
// generate / translate call these when beam_width > 1.
std::vector<int> beam_generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt);
std::vector<int> beam_translate(Model& model, const std::vector<int>& src, int start_token, const SampleOptions& opt);

// A stop_when condition: true once tok.decode(generated tokens) contains `text` (non-empty). The
// decoded text is the generated tokens' alone: a prompt that already holds `text` does not stop.
std::function<bool(const std::vector<int>&)> stop_at_text(const Tokenizer& tok, const std::string& text);
// The generated text as `attnlab sample --stop` prints it: everything before the first occurrence
// of `text` (all of `generated` when it does not occur; `text` empty = no cut).
std::string cut_at_stop(const std::string& generated, const std::string& text);

// Draw an id from logits[V] with temperature / top-k / top-p (temperature 0 = argmax; ties -> lowest id).
int sample_logits(const float* logits, int V, float temperature, int top_k, Rng& rng, float top_p = 1.0f);

}  // namespace attnlab
