// The attention registry: config name -> factory and capabilities.
// Adding a variant = its file, one entry here, docs/attention.md and tests.
#include <cmath>
#include <cstdlib>

#include "attention/attention.h"
#include "attention/variants.h"
#include "core/error.h"

namespace attnlab {

namespace {
AttentionInfo info(std::string summary) {
  AttentionInfo i;
  i.summary = std::move(summary);
  return i;
}
}  // namespace

const std::map<std::string, AttentionEntry>& attention_registry() {
  static const std::map<std::string, AttentionEntry> registry = [] {
    std::map<std::string, AttentionEntry> r;
    r["scaled_dot_product"] = {make_scaled_dot_product,
                               info("softmax(s·QKᵀ + mask)V, multi-head (Vaswani et al. 2017)")};
    AttentionInfo causal = info("scaled_dot_product with a causal mask");
    causal.force_causal = 1;
    r["causal"] = {make_scaled_dot_product, causal};
    AttentionInfo bidir = info("scaled_dot_product without a mask");
    bidir.force_causal = 0;
    r["bidirectional"] = {make_scaled_dot_product, bidir};
    AttentionInfo flash = info("scaled_dot_product in tiles with an online softmax, exact, O(T) memory (FlashAttention, Dao et al. 2022)");
    flash.dropout = false;  // the weights are never stored, so there is nothing to drop
    r["flash"] = {[](const AttentionSpec& s, ParamStore& store, Rng& rng) {
                    AttentionSpec f = s;
                    f.impl = AttnImpl::flash;
                    return make_scaled_dot_product(f, store, rng);
                  },
                  flash};

    AttentionInfo bahdanau = info("additive: vᵀ tanh(A q + B k) per head on the projected q, k (Bahdanau et al. 2014)");
    bahdanau.rope = false;
    bahdanau.scale = false;
    r["bahdanau"] = {make_bahdanau, bahdanau};
    AttentionInfo luong = info("multiplicative, score dot | general | concat (Luong et al. 2015)");
    luong.rope = false;
    luong.scale = false;
    r["luong"] = {make_luong, luong};
    AttentionInfo linear = info("φ(Q)(φ(K)ᵀV) / φ(Q)Σφ(K), φ = elu+1 (Katharopoulos et al. 2020)");
    linear.window = false;
    linear.rope = false;
    linear.alibi = false;
    linear.dropout = false;
    linear.scale = false;
    r["linear"] = {make_linear, linear};
    AttentionInfo diff = info("(softmax(Q₁K₁ᵀs) − λ softmax(Q₂K₂ᵀs))V with headwise RMSNorm (Ye et al. 2024)");
    diff.alibi = false;
    diff.head_split = 2;
    r["differential"] = {make_differential, diff};
    return r;
  }();
  return registry;
}

const char* name_of(AttnPositions p) {
  return p == AttnPositions::rope ? "rope" : p == AttnPositions::alibi ? "alibi" : "none";
}
const char* name_of(AttnScore s) { return s == AttnScore::dot ? "dot" : s == AttnScore::concat ? "concat" : "general"; }
const char* name_of(AttnImpl i) { return i == AttnImpl::naive ? "naive" : i == AttnImpl::flash ? "flash" : "auto"; }
const char* name_of(AttnDevice d) { return d == AttnDevice::cuda ? "cuda" : "cpu"; }

AttnPositions attn_positions(const std::string& name) {
  for (AttnPositions p : {AttnPositions::none, AttnPositions::rope, AttnPositions::alibi})
    if (name == name_of(p)) return p;
  user_error("positions: expected rope, alibi or none inside attention, got '{}'", name);
}
AttnScore attn_score(const std::string& name) {
  for (AttnScore s : {AttnScore::dot, AttnScore::general, AttnScore::concat})
    if (name == name_of(s)) return s;
  user_error("score: expected dot, general or concat, got '{}'", name);
}
AttnImpl attn_impl(const std::string& name) {
  for (AttnImpl i : {AttnImpl::naive, AttnImpl::flash, AttnImpl::automatic})
    if (name == name_of(i)) return i;
  user_error("impl: expected naive, flash or auto, got '{}'", name);
}
AttnDevice attn_device(const std::string& name) {
  for (AttnDevice d : {AttnDevice::cpu, AttnDevice::cuda})
    if (name == name_of(d)) return d;
  user_error("device: expected cpu or cuda, got '{}'", name);
}

std::vector<std::string> attention_types() {
  std::vector<std::string> names;
  for (const auto& [k, v] : attention_registry()) names.push_back(k);
  return names;
}

std::string check_attention_spec(const AttentionSpec& s) {
  const auto& reg = attention_registry();
  auto it = reg.find(s.type);
  if (it == reg.end()) {
    std::string known;
    for (const auto& n : attention_types()) known += (known.empty() ? "" : ", ") + n;
    return fmt::format("type: unknown attention type '{}' (known: {})", s.type, known);
  }
  const AttentionInfo& in = it->second.info;
  if (s.n_heads <= 0 || s.d_model <= 0 || s.d_model % s.n_heads != 0)
    return fmt::format("n_heads: expected a positive integer that divides d_model ({}), got {}", s.d_model,
                       s.n_heads);
  if (s.d_model % (s.n_heads * in.head_split) != 0)
    return fmt::format("n_heads: '{}' attention splits each head in {}: expected {}·n_heads to divide d_model ({}), got n_heads {}",
                       s.type, in.head_split, in.head_split, s.d_model, s.n_heads);
  const int head_dim = s.d_model / (s.n_heads * in.head_split);
  if (s.n_kv_heads < 0 || (s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads != 0))
    return fmt::format("n_kv_heads: expected 0 or a positive integer that divides n_heads ({}), got {}",
                       s.n_heads, s.n_kv_heads);
  if (!in.gqa && s.n_kv_heads > 0 && s.n_kv_heads != s.n_heads)
    return fmt::format("n_kv_heads: '{}' attention has no grouped KV heads; use 0", s.type);
  if (s.window < 0) return fmt::format("window: expected a non-negative integer, got {}", s.window);
  if (!in.window && s.window > 0) return fmt::format("window: '{}' attention has no sliding window; use 0", s.type);
  if (s.positions == AttnPositions::rope && !in.rope) return fmt::format("positions: '{}' attention does not support rope", s.type);
  if (s.positions == AttnPositions::alibi && !in.alibi)
    return fmt::format("positions: '{}' attention does not support alibi", s.type);
  if (s.positions == AttnPositions::rope && head_dim % 2 != 0)
    return fmt::format("positions: rope needs an even head dimension, got {}", head_dim);
  if (!(s.rope_base > 1.0f)) return fmt::format("rope_base: expected a number > 1, got {}", s.rope_base);
  if (s.dropout < 0.0f || s.dropout >= 1.0f) return fmt::format("dropout: expected a number in [0, 1), got {}", s.dropout);
  if (s.type == "flash" && s.dropout > 0.0f)
    return fmt::format("dropout: 'flash' attention never stores the attention weights, so it cannot drop them "
                       "(got {}); use 0, or type scaled_dot_product with impl auto (naive while dropout is on)",
                       s.dropout);
  const bool sdp_family = s.type == "scaled_dot_product" || s.type == "causal" || s.type == "bidirectional";
  if (sdp_family && s.impl == AttnImpl::flash && s.dropout > 0.0f)
    return fmt::format("impl: flash has no dropout on the attention weights (dropout is {}); use impl auto or "
                       "naive, or dropout 0", s.dropout);
  if (!in.dropout && s.dropout > 0.0f)
    return fmt::format("dropout: '{}' attention has no attention weights to drop; use 0", s.type);
  if (s.scale != "inv_sqrt_dk") {
    if (!in.scale) return fmt::format("scale: '{}' attention has no score scale; leave it at inv_sqrt_dk", s.type);
    if (s.scale != "none") {
      char* end = nullptr;
      const double v = std::strtod(s.scale.c_str(), &end);
      if (s.scale.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
        return fmt::format("scale: expected inv_sqrt_dk, none or a positive number, got '{}'", s.scale);
    }
  }
  return "";
}

void require_valid_attention_spec(const AttentionSpec& spec) {
  const std::string err = check_attention_spec(spec);
  if (!err.empty()) user_error("attention '{}': {}", spec.name, err);
}

std::unique_ptr<Attention> make_attention(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  require_valid_attention_spec(spec);
  const AttentionEntry& e = attention_registry().at(spec.type);
  AttentionSpec s = spec;
  if (e.info.force_causal >= 0) s.causal = e.info.force_causal == 1;
  return e.make(s, store, rng);
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
