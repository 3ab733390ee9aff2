// Attention slots: which ones a model kind has, and the AttentionSpec a slot's
// resolved config gives. Schema, not model code: the config loader checks each used
// slot's spec against its variant, and the model builds its modules from the same specs.
//
//   decoder:          model.decoder.self_attention (causal)
//   encoder:          model.encoder.self_attention (no mask)
//   encoder_decoder:  all three, model.decoder.cross_attention has no mask
#pragma once
#include <string>
#include <vector>

#include "attention/attention.h"
#include "config/config.h"

namespace attnlab {

std::vector<std::string> model_slots(ModelConfig::Kind kind);
const AttentionConfig& slot_config(const ModelConfig& m, const std::string& slot);
// The spec of `slot` in layer `layer` (name "<slot short>" is set by the caller as needed).
AttentionSpec slot_spec(const ModelConfig& m, const std::string& slot, int layer);

// One line for summaries (the train banner, `attnlab inspect RUN_DIR`): each slot's attention type
// with the options that differ from their defaults, e.g. "scaled_dot_product (n_kv_heads 1,
// window 16)" when every slot of the kind agrees, else "encoder self scaled_dot_product; decoder
// self scaled_dot_product; decoder cross bahdanau". An encoder_decoder with model.bottleneck has
// no cross-attention, and the line says so.
std::string attention_summary(const ModelConfig& m);
// "2 layers", or for an encoder_decoder "3 encoder + 2 decoder layers".
std::string layers_summary(const ModelConfig& m);

}  // namespace attnlab
