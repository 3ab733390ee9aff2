#include "config/slots.h"

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

}  // namespace

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
  // the registry's shorthands fix the mask
  auto it = attention_registry().find(s.type);
  if (it != attention_registry().end() && it->second.info.force_causal >= 0) s.causal = it->second.info.force_causal == 1;
  return s;
}

}  // namespace attnlab
