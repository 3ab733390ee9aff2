// Config loading: every error names where it happened; defaults and the dump round-trip.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "core/error.h"

using namespace attnlab;

namespace {
std::string error_of(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    load_config_text(yaml, "cfg.yaml", sets);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
const std::string kText = "data: {task: text, path: x.txt}\n";
}  // namespace

TEST_CASE("config: the issue's example error, with line and column") {
  CHECK(error_of("model:\n  d_model: 384\n  n_heads: 5\n" + kText) ==
        "cfg.yaml:3:12: key 'model.n_heads': expected a positive integer that divides d_model (384), got 5");
}

TEST_CASE("config: unknown keys are errors that name the key, with a suggestion") {
  CHECK(error_of("model:\n  n_head: 4\n") == "cfg.yaml:2:3: unknown key 'model.n_head' (did you mean 'model.n_heads'?)");
  CHECK(error_of("trian:\n  lr: 1\n").find("unknown key 'trian' (did you mean 'train'?)") != std::string::npos);
  CHECK(error_of(kText, {"train.lrr=3"}).find("unknown key 'train.lrr'") != std::string::npos);
}

TEST_CASE("config: wrong types and out-of-range values") {
  CHECK(error_of("train: {steps: ten}\n" + kText).find("key 'train.steps': expected an integer, got 'ten'") !=
        std::string::npos);
  CHECK(error_of("train: {steps: 2.5}\n" + kText).find("expected an integer") != std::string::npos);
  CHECK(error_of("train: {lr: -1}\n" + kText).find("key 'train.lr': expected a number") != std::string::npos);
  CHECK(error_of("model: {bias: maybe}\n" + kText).find("expected true or false") != std::string::npos);
  CHECK(error_of("model: {positions: rotary}\n" + kText).find("expected one of learned | sinusoidal | rope | alibi | none") !=
        std::string::npos);
  CHECK(error_of("model: {n_layers: [1, 2]}\n" + kText).find("got a list") != std::string::npos);
  CHECK(error_of("model: 3\n" + kText).find("expected a mapping") != std::string::npos);
  CHECK(error_of("model: {attention: {type: bogus}}\n" + kText).find("key 'model.attention.type'") !=
        std::string::npos);
  CHECK(error_of("model: {attention: {type: bidirectional}}\n" + kText).find("causal language model") !=
        std::string::npos);
  CHECK(error_of("model: {attention: {scale: -2}}\n" + kText).find("positive number") != std::string::npos);
  CHECK(error_of("model: {n_heads: 4, attention: {n_kv_heads: 3}}\n" + kText).find("divides n_heads (4)") !=
        std::string::npos);
  CHECK(error_of("data: {task: text}\n").find("key 'data.path'") != std::string::npos);
  CHECK(error_of("model: [\n").find("invalid YAML") != std::string::npos);
}

TEST_CASE("config: --set overrides use the same validation and say where they came from") {
  CHECK(error_of(kText, {"model.n_heads=5", "model.d_model=384"}) ==
        "--set model.n_heads=5: key 'model.n_heads': expected a positive integer that divides d_model (384), got 5");
  CHECK(error_of(kText, {"train.lr"}).find("expected key=value") != std::string::npos);
  const Config c = load_config_text(kText, "cfg.yaml", {"train.lr=3e-4", "model.bias=false", "data.path=y.txt"});
  CHECK(c.train.lr == doctest::Approx(3e-4));
  CHECK_FALSE(c.model.bias);
  CHECK(c.data.path == "y.txt");
}

TEST_CASE("config: the resolved dump loads back to the same config") {
  const Config a = load_config_text("model: {d_model: 96, n_heads: 3}\ntrain: {lr: 0.002, seed: 7}\n" + kText,
                                    "cfg.yaml");
  const std::string dumped = dump_config(a);
  const Config b = load_config_text(dumped, "dump");
  CHECK(dump_config(b) == dumped);
  CHECK(b.model.d_model == 96);
  CHECK(b.train.seed == 7);
  CHECK(b.train.lr == doctest::Approx(0.002));
  // train.grad_accum is written only when it is not 1 (K = 1 checkpoints keep their bytes)
  CHECK(dumped.find("grad_accum:") == std::string::npos);
  // so are the parallel task's keys (data.src_path, data.tgt_path, data.batch_tokens,
  // data.shared_vocab) while unused; with every such key set, every key appears in the dump
  CHECK(dumped.find("src_path:") == std::string::npos);
  CHECK(dumped.find("batch_tokens:") == std::string::npos);
  CHECK(dumped.find("shared_vocab:") == std::string::npos);
  const Config c = load_config_text(
      "model: {d_model: 96, n_heads: 3}\ntrain: {lr: 0.002, seed: 7, grad_accum: 2}\n" + kText, "cfg.yaml",
      {"data.task=parallel", "data.src_path=s.txt", "data.tgt_path=t.txt", "data.batch_tokens=64",
       "data.shared_vocab=false", "model.init_std=0.03"});
  const std::string all = dump_config(c);
  CHECK(dump_config(load_config_text(all, "dump")) == all);
  for (const auto& k : config_keys())
    if (k.key != "data.filler")  // mqar's, below
      CHECK(all.find(k.key.substr(k.key.rfind('.') + 1) + ":") != std::string::npos);
  // data.filler likewise: written only when not `zero`, which only task mqar allows
  CHECK(dumped.find("filler:") == std::string::npos);
  const std::string mqar = dump_config(load_config_text(kText, "cfg.yaml", {"data.task=mqar", "data.filler=random"}));
  CHECK(mqar.find("filler: \"random\"") != std::string::npos);
  CHECK(dump_config(load_config_text(mqar, "dump")) == mqar);
  CHECK(error_of(kText, {"data.filler=random"}).find("data.filler") != std::string::npos);
  // model.init_std: gpt2's alone
  CHECK(dumped.find("init_std:") == std::string::npos);
  CHECK(error_of(kText, {"model.init=torch_default", "model.init_std=0.05"}).find("model.init_std") != std::string::npos);
}

TEST_CASE("config: the shipped configs are valid") {
  for (const auto& e : std::filesystem::recursive_directory_iterator(std::string(ATTNLAB_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yaml") continue;
    // experiment files (a top-level `experiment:` key) are checked by tests/experiment_runner
    std::ifstream f(e.path());
    std::stringstream text;
    text << f.rdbuf();
    const std::string t = "\n" + text.str();
    if (t.find("\nexperiment:") != std::string::npos) continue;
    INFO(e.path().string());
    CHECK_NOTHROW(load_config(e.path().string()));
  }
}

TEST_CASE("docs/config.md documents every key") {
  std::ifstream in(std::string(ATTNLAB_SOURCE_DIR) + "/docs/config.md");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  for (const auto& k : config_keys()) {
    INFO("key missing from docs/config.md: " << k.key);
    CHECK(doc.find("`" + k.key + "`") != std::string::npos);
  }
}

TEST_CASE("config: attention slots inherit model.attention and may override it") {
  const Config c = load_config_text(
      "model:\n  attention: {n_kv_heads: 2, window: 3}\n  decoder:\n    self_attention: {window: 5}\n" + kText, "cfg.yaml");
  CHECK(c.model.decoder_self.n_kv_heads == 2);  // inherited
  CHECK(c.model.decoder_self.window == 5);      // overridden
  CHECK(c.model.decoder_self.type == "scaled_dot_product");
  const std::string dumped = dump_config(c);
  CHECK(dumped.find("self_attention") != std::string::npos);
  CHECK(dumped.find("cross_attention") == std::string::npos);  // a decoder has no cross-attention slot
  CHECK(dump_config(load_config_text(dumped, "dump")) == dumped);
}

TEST_CASE("config: slot errors name the slot key, unused slots and unsupported options are errors") {
  CHECK(error_of("model:\n  encoder:\n    self_attention: {type: linear}\n" + kText) ==
        "cfg.yaml:3:28: key 'model.encoder.self_attention.type': this slot does not exist in a 'decoder' model");
  CHECK(error_of("model:\n  decoder:\n    self_attention: {type: bidirectional}\n" + kText)
            .find("key 'model.decoder.self_attention.type'") != std::string::npos);
  CHECK(error_of("model:\n  decoder:\n    self_attention: {n_kv_heads: 3}\n" + kText)
            .find("key 'model.decoder.self_attention.n_kv_heads': expected 0 or a positive integer that divides "
                  "n_heads (4), got 3") != std::string::npos);
  CHECK(error_of("model: {positions: rope, d_model: 12, n_heads: 4}\n" + kText)
            .find("key 'model.positions': rope needs an even head dimension, got 3") != std::string::npos);
}

TEST_CASE("config: model.mlp defaults on, reads booleans, and rejects a hidden width it would ignore") {
  CHECK(load_config_text(kText, "cfg.yaml").model.mlp);
  CHECK_FALSE(load_config_text("model: {mlp: false}\n" + kText, "cfg.yaml").model.mlp);
  CHECK_FALSE(load_config_text(kText, "cfg.yaml", {"model.mlp=false"}).model.mlp);
  CHECK(error_of("model: {mlp: none}\n" + kText).find("key 'model.mlp': expected true or false, got 'none'") !=
        std::string::npos);
  CHECK(error_of("model: {mlp: false, d_ff: 256}\n" + kText)
            .find("key 'model.d_ff': model.mlp is false, so the blocks have no MLP") != std::string::npos);
  // d_ff 0 (the dump of a no-MLP config) and d_ff with the MLP on stay valid
  CHECK_FALSE(load_config_text("model: {mlp: false, d_ff: 0}\n" + kText, "cfg.yaml").model.mlp);
  CHECK(load_config_text("model: {mlp: true, d_ff: 256}\n" + kText, "cfg.yaml").model.d_ff == 256);
}

TEST_CASE("config: a causal type where the whole sequence is read is an error at the key that set it") {
  CHECK(error_of("model:\n  kind: encoder\n  attention:\n    type: causal\ndata: {task: parity}\n") ==
        "cfg.yaml:4:11: key 'model.attention.type': 'causal' masks future positions, but an encoder reads its whole "
        "input: use bidirectional (or scaled_dot_product, which has no mask in an encoder)");
  // encoder_decoder: inherited by the encoder slot, or written in it, or in the cross-attention slot
  const std::string inherited = error_of("model: {kind: encoder_decoder, attention: {type: causal}}\ndata: {task: copy}\n");
  CHECK(inherited.find("cfg.yaml:1:50: key 'model.attention.type': 'causal' (inherited by model.encoder.self_attention)") == 0);
  CHECK(inherited.find("set model.encoder.self_attention.type: bidirectional") != std::string::npos);
  CHECK(error_of("data: {task: copy}\n", {"model.kind=encoder_decoder", "model.encoder.self_attention.type=causal"})
            .find("--set model.encoder.self_attention.type=causal: key 'model.encoder.self_attention.type'") == 0);
  CHECK(error_of("data: {task: copy}\n", {"model.kind=encoder_decoder", "model.decoder.cross_attention.type=causal"})
            .find("cross-attention reads the whole source") != std::string::npos);
  // the same types where they belong
  CHECK(error_of("model: {kind: encoder, attention: {type: bidirectional}}\ndata: {task: parity}\n") == "");
  CHECK(error_of("model: {kind: encoder_decoder, decoder: {self_attention: {type: causal}}}\ndata: {task: copy}\n") ==
        "");
}

TEST_CASE("config: an experiment file is named as one, with the command that runs it") {
  CHECK(error_of("# an experiment\nexperiment: e0\nbase: x.yaml\ngrid: {train.lr: [1, 2]}\n") ==
        "cfg.yaml:2:1: unknown key 'experiment': this is an experiment file: run `attnlab experiment run cfg.yaml`");
}

TEST_CASE("config: config_error points at the --set, else the file's line, else the file") {
  const Config cfg = load_config_text("data:\n  task: copy\n  n_val: 20\n", "cfg.yaml", {"data.max_len=9"});
  auto error = [&](const std::vector<std::string>& keys) {
    try {
      config_error(cfg, keys, "what");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error({"data.n_val", "data.max_len"}) == "--set data.max_len=9: key 'data.max_len': what");
  CHECK(error({"data.min_len", "data.n_val"}) == "cfg.yaml:3:10: key 'data.n_val': what");
  CHECK(error({"data.min_len"}) == "cfg.yaml: key 'data.min_len': what");
}
