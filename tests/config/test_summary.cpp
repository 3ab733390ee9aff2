// The one-line model summaries of the train banner and `inspect RUN_DIR` (config/slots.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "config/slots.h"

using namespace attnlab;

namespace {
ModelConfig model_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  return load_config_text(yaml + "data: {task: reverse}\n", "cfg.yaml", sets).model;
}
const std::string kEncDec = "model: {kind: encoder_decoder, d_model: 32, n_heads: 4, block_size: 16}\n";
}  // namespace

TEST_CASE("summary: slots that agree give one entry, options at their defaults are left out") {
  CHECK(attention_summary(model_of("model: {kind: decoder, n_heads: 4}\n")) == "scaled_dot_product");
  CHECK(attention_summary(model_of(kEncDec)) == "scaled_dot_product");
  CHECK(attention_summary(model_of("model: {kind: decoder, n_heads: 4, attention: {type: causal}}\n",
                                   {"model.attention.n_kv_heads=1", "model.attention.window=8"})) ==
        "causal (n_kv_heads 1, window 8)");
  // n_kv_heads equal to n_heads is plain multi-head attention, as 0 is
  CHECK(attention_summary(model_of("model: {kind: decoder, n_heads: 4, attention: {n_kv_heads: 4}}\n")) ==
        "scaled_dot_product");
  CHECK(attention_summary(model_of("model: {kind: decoder, n_heads: 4, attention: {type: luong}}\n")) ==
        "luong (score general)");
}

TEST_CASE("summary: an encoder_decoder whose slots differ names each slot") {
  CHECK(attention_summary(model_of(kEncDec, {"model.decoder.cross_attention.type=bahdanau"})) ==
        "encoder self scaled_dot_product; decoder self scaled_dot_product; decoder cross bahdanau");
  CHECK(attention_summary(model_of(kEncDec, {"model.encoder.self_attention.window=4"})) ==
        "encoder self scaled_dot_product (window 4); decoder self scaled_dot_product; decoder cross "
        "scaled_dot_product");
  CHECK(attention_summary(model_of(kEncDec, {"model.bottleneck=true"})) ==
        "encoder self scaled_dot_product; decoder self scaled_dot_product; decoder cross none (bottleneck)");
}

TEST_CASE("summary: layers of each stack") {
  CHECK(layers_summary(model_of("model: {kind: decoder, n_layers: 3}\n")) == "3 layers");
  CHECK(layers_summary(model_of(kEncDec, {"model.n_layers=2"})) == "2 encoder + 2 decoder layers");
  CHECK(layers_summary(model_of(kEncDec, {"model.n_layers=2", "model.n_encoder_layers=3"})) ==
        "3 encoder + 2 decoder layers");
}
