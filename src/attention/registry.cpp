// The attention registry: config name -> factory. Adding a variant = one line here.
#include <cmath>
#include <cstdlib>

#include "attention/attention.h"
#include "attention/scaled_dot_product.h"
#include "core/error.h"

namespace attnlab {

namespace {
template <typename T>
AttentionFactory make(int force_causal = -1) {
  return [force_causal](const AttentionSpec& s, ParamStore& store, Rng& rng) -> std::unique_ptr<Attention> {
    AttentionSpec spec = s;
    if (force_causal >= 0) spec.causal = force_causal == 1;
    return std::make_unique<T>(spec, store, rng);
  };
}
}  // namespace

const std::map<std::string, AttentionFactory>& attention_registry() {
  static const std::map<std::string, AttentionFactory> registry = {
      {"scaled_dot_product", make<ScaledDotProductAttention>()},
      {"causal", make<ScaledDotProductAttention>(1)},         // scaled_dot_product + causal mask
      {"bidirectional", make<ScaledDotProductAttention>(0)},  // scaled_dot_product, no mask
  };
  return registry;
}

std::vector<std::string> attention_types() {
  std::vector<std::string> names;
  for (const auto& [k, v] : attention_registry()) names.push_back(k);
  return names;
}

std::unique_ptr<Attention> make_attention(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  const auto& reg = attention_registry();
  auto it = reg.find(spec.type);
  if (it == reg.end()) {
    std::string known;
    for (const auto& n : attention_types()) known += (known.empty() ? "" : ", ") + n;
    user_error("unknown attention type '{}' (known: {})", spec.type, known);
  }
  return it->second(spec, store, rng);
}

float attention_scale(const AttentionSpec& spec, int head_dim) {
  if (spec.scale == "inv_sqrt_dk") return 1.0f / std::sqrt(float(head_dim));
  if (spec.scale == "none") return 1.0f;
  char* end = nullptr;
  const float v = std::strtof(spec.scale.c_str(), &end);
  if (end == spec.scale.c_str() || *end != '\0' || !(v > 0.0f) || !std::isfinite(v))
    user_error("attention.scale: expected inv_sqrt_dk, none or a positive number, got '{}'", spec.scale);
  return v;
}

}  // namespace attnlab
