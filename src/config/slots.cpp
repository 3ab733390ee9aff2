#include "config/slots.h"

#include <fmt/format.h>

#include "core/error.h"

namespace attnlab {

namespace {

// ModelConfig's enums as AttentionSpec's. Positions that act inside attention (rope, alibi) apply
// to self-attention only; every other slot or kind of positions gives none.
AttnPositions spec_positions(ModelConfig::Positions p, bool self) {
  if (self && p == ModelConfig::Positions::rope) return AttnPositions::rope;
  if (self && p == ModelConfig::Positions::alibi) return AttnPositions::alibi;
  return AttnPositions::none;
}
AttnImpl spec_impl(AttentionConfig::Impl impl) {
  switch (impl) {
    case AttentionConfig::Impl::naive: return AttnImpl::naive;
    case AttentionConfig::Impl::flash: return AttnImpl::flash;
    case AttentionConfig::Impl::automatic: break;
  }
  return AttnImpl::automatic;
}
AttnDevice spec_device(ModelConfig::Device device) {
  return device == ModelConfig::Device::cuda ? AttnDevice::cuda : AttnDevice::cpu;
}

// A slot's type and, in parentheses, every option that is not at its default. n_kv_heads is
// shown once it differs from n_heads (0 and n_heads both mean one KV head per query head).
std::string slot_summary(const ModelConfig& m, const AttentionConfig& a) {
  const AttentionConfig d;
  std::vector<std::string> opts;
  if (a.n_kv_heads > 0 && a.n_kv_heads != m.n_heads) opts.push_back(fmt::format("n_kv_heads {}", a.n_kv_heads));
  if (a.window > 0) opts.push_back(fmt::format("window {}", a.window));
  if (a.scale != d.scale) opts.push_back("scale " + a.scale);
  if (a.dropout != d.dropout) opts.push_back(fmt::format("dropout {}", a.dropout));
  if (a.type == "luong") opts.push_back("score " + a.score);
  if (m.positions == ModelConfig::Positions::rope && a.rope_base != d.rope_base)
    opts.push_back(fmt::format("rope_base {}", a.rope_base));
  if (a.type == "differential" && !a.diff_norm) opts.push_back("diff_norm off");
  if (a.impl != d.impl) opts.push_back(std::string("impl ") + name_of(spec_impl(a.impl)));
  std::string s = a.type;
  if (opts.empty()) return s;
  s += " (";
  for (size_t i = 0; i < opts.size(); ++i) s += (i ? ", " : "") + opts[i];
  return s + ")";
}

}  // namespace

std::string attention_summary(const ModelConfig& m) {
  std::vector<std::pair<std::string, std::string>> parts;  // (slot in words, its summary)
  for (const auto& slot : model_slots(m.kind)) {
    const bool cross = slot == "model.decoder.cross_attention";
    std::string words = slot.substr(6);  // "encoder.self_attention"
    words = words.substr(0, words.find('.')) + (cross ? " cross" : " self");
    parts.emplace_back(words, cross && m.bottleneck ? "none (bottleneck)" : slot_summary(m, slot_config(m, slot)));
  }
  bool agree = true;
  for (const auto& p : parts) agree = agree && p.second == parts.front().second;
  if (agree) return parts.front().second;
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) s += (i ? "; " : "") + parts[i].first + " " + parts[i].second;
  return s;
}

std::string layers_summary(const ModelConfig& m) {
  if (m.kind != ModelConfig::Kind::encoder_decoder) return fmt::format("{} layers", m.n_layers);
  const int enc = m.n_encoder_layers > 0 ? m.n_encoder_layers : m.n_layers;
  return fmt::format("{} encoder + {} decoder layers", enc, m.n_layers);
}

std::vector<std::string> model_slots(ModelConfig::Kind kind) {
  if (kind == ModelConfig::Kind::decoder) return {"model.decoder.self_attention"};
  if (kind == ModelConfig::Kind::encoder) return {"model.encoder.self_attention"};
  return {"model.encoder.self_attention", "model.decoder.self_attention", "model.decoder.cross_attention"};
}

const AttentionConfig& slot_config(const ModelConfig& m, const std::string& slot) {
  if (slot == "model.encoder.self_attention") return m.encoder_self;
  if (slot == "model.decoder.self_attention") return m.decoder_self;
  if (slot == "model.decoder.cross_attention") return m.decoder_cross;
  throw std::logic_error("unknown attention slot " + slot);
}

AttentionSpec slot_spec(const ModelConfig& m, const std::string& slot, int layer) {
  const AttentionConfig& a = slot_config(m, slot);
  AttentionSpec s;
  s.type = a.type;
  s.name = slot;
  s.d_model = m.d_model;
  s.n_heads = m.n_heads;
  s.n_kv_heads = a.n_kv_heads;
  s.causal = slot == "model.decoder.self_attention";
  s.scale = a.scale;
  s.dropout = float(a.dropout);
  s.bias = m.bias;
  s.layer_index = layer;
  s.n_layers = m.n_layers;
  s.window = a.window;
  const bool self = slot != "model.decoder.cross_attention";
  s.positions = spec_positions(m.positions, self);
  s.rope_base = float(a.rope_base);
  s.score = attn_score(a.score);
  s.max_len = m.block_size;
  s.diff_norm = a.diff_norm;
  s.impl = spec_impl(a.impl);
  s.device = spec_device(m.device);
  s.init = m.init == ModelConfig::Init::torch_default ? InitScheme::torch_default : InitScheme::gpt2;
  s.init_std = float(m.init_std);
  // the registry's shorthands fix the mask
  auto it = attention_registry().find(s.type);
  if (it != attention_registry().end() && it->second.info.force_causal >= 0) s.causal = it->second.info.force_causal == 1;
  return s;
}

}  // namespace attnlab
