// The Attention base class: spec validation on construction, the cache guards and the cache
// operations every variant with a cache shares (attention.h).
#include "attention/attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/permute.h"

namespace attnlab {

void init_linear(Param* w, Param* b, int fan_in, InitScheme scheme, Rng& rng, float gpt2_std) {
  if (scheme == InitScheme::gpt2) {
    for (auto& x : w->w) x = gpt2_std * rng.normal();
    if (b) std::fill(b->w.begin(), b->w.end(), 0.0f);
    return;
  }
  const float bound = 1.0f / std::sqrt(float(std::max(1, fan_in)));
  for (Param* p : {w, b})
    if (p)
      for (auto& x : p->w) x = bound * (2.0f * rng.uniform() - 1.0f);
}

Attention::Attention(AttentionSpec spec)
    : spec_(std::move(spec)), H_(spec_.n_heads), Hkv_(kv_heads(spec_)) {
  require_valid_attention_spec(spec_);
}

void Attention::cache_begin(int B, int capacity) {
  if (B <= 0 || capacity <= 0)
    user_error("attention '{}': cache_reset needs a positive batch and capacity, got B = {}, capacity = {}",
               spec_.name, B, capacity);
  cache_B_ = B;
  cache_cap_ = capacity;
  cache_len_ = 0;
}

void Attention::cache_check_step(int B, int Tn, bool bounded) const {
  if (cache_cap_ == 0) user_error("attention '{}': forward_cached before cache_reset", spec_.name);
  if (B != cache_B_)
    user_error("attention '{}': forward_cached with batch {} but the cache was reset for batch {}", spec_.name, B,
               cache_B_);
  if (Tn <= 0) user_error("attention '{}': forward_cached needs at least one new position, got {}", spec_.name, Tn);
  if (bounded && cache_len_ + Tn > cache_cap_)
    user_error("attention '{}': KV cache full: {} cached + {} new positions > capacity {} (cache_reset with a "
               "larger capacity)",
               spec_.name, cache_len_, Tn, cache_cap_);
}

void Attention::cache_reset(int, int) {
  user_error("attention '{}' ({}) has no incremental decoding cache", spec_.name, spec_.type);
}
void Attention::forward_cached(float*, const float*, int, int) {
  user_error("attention '{}' ({}) has no incremental decoding cache", spec_.name, spec_.type);
}
std::vector<std::vector<float>*> Attention::cache_buffers() {
  user_error("attention '{}' ({}) has no incremental decoding cache", spec_.name, spec_.type);
}

size_t Attention::cache_floats() {
  size_t n = 0;
  for (const std::vector<float>* buf : cache_buffers()) n += buf->size();
  return n;
}

void Attention::cache_reorder(const std::vector<int>& rows) {
  for (std::vector<float>* buf : cache_buffers()) permute_rows(*buf, rows);
}

}  // namespace attnlab
