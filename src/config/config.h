// Typed configuration. Every key a user may write is a field of these structs,
// declared once in config.cpp's schema with its type, range and meaning; the
// YAML loader, `--set` overrides, `attnlab config show` and the docs test all
// read that one schema.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace attnlab {

// Options of one attention slot. `model.attention` holds the defaults; each slot
// (`model.encoder.self_attention`, `model.decoder.self_attention`,
// `model.decoder.cross_attention`) inherits every key it does not set.
struct AttentionConfig {
  std::string type = "scaled_dot_product";  // registry name (see docs/attention.md)
  int n_kv_heads = 0;                   // 0 = n_heads
  std::string scale = "inv_sqrt_dk";    // inv_sqrt_dk | none | a positive number
  double dropout = 0.0;                 // on attention weights
  int window = 0;                       // sliding window width; 0 = off
  std::string score = "general";        // luong: dot | general | concat
  double rope_base = 10000.0;           // RoPE frequency base
  bool diff_norm = true;                // differential: headwise RMSNorm on
  enum class Impl { naive, flash, automatic };  // YAML: naive | flash | auto
  Impl impl = Impl::automatic;          // scaled_dot_product family's kernel
};

struct ModelConfig {
  // The closed sets; OptionNames (below) spells each value as a config file does.
  enum class Kind { decoder, encoder, encoder_decoder };
  enum class Norm { pre, post };
  enum class Positions { learned, sinusoidal, rope, alibi, none };
  enum class Device { cpu, cuda };
  enum class Init { gpt2, torch_default };
  enum class Activation { gelu_tanh, gelu };  // the MLP's nonlinearity (gelu: exact, with erf)

  Kind kind = Kind::decoder;
  int n_layers = 4;                     // layers per stack
  int n_encoder_layers = 0;             // encoder_decoder: encoder layers; 0 = n_layers
  int d_model = 128;
  int n_heads = 4;
  int d_ff = 0;                         // 0 = 4 * d_model
  bool mlp = true;                      // false: blocks have no MLP sublayer (attention only)
  Activation activation = Activation::gelu_tanh;  // MLP nonlinearity; checkpoints without the key: gelu_tanh
  int block_size = 128;                 // maximum context length
  Positions positions = Positions::learned;
  bool tie_embeddings = true;
  bool head_bias = false;               // a bias on the output head (tied or not)
  bool bias = true;
  Init init = Init::gpt2;               // how the linear layers start
  double init_std = 0.02;               // gpt2: the linear weights' standard deviation
  double dropout = 0.0;                 // residual and embedding dropout
  Norm norm = Norm::pre;                // layernorm placement
  bool share_embeddings = true;         // encoder_decoder: one token embedding for both stacks
  bool bottleneck = false;              // encoder_decoder: a pooled context vector instead of cross-attention
  std::string pool = "first";           // encoder classification: first | mean
  Device device = Device::cpu;          // where the tiled attention kernels run
  AttentionConfig attention;            // defaults for every slot
  AttentionConfig encoder_self;         // model.encoder.self_attention (resolved)
  AttentionConfig decoder_self;         // model.decoder.self_attention (resolved)
  AttentionConfig decoder_cross;        // model.decoder.cross_attention (resolved)
};

struct DataConfig {
  std::string task = "text";            // text | copy | reverse | sort | addition | dates | mqar | needle |
                                        // induction | parity | balanced_parens | parallel
  std::string path;                     // text: the file to read
  double val_fraction = 0.1;
  int n_symbols = 8;                    // alphabet / vocabulary size of the symbol tasks
  int min_len = 4;
  int max_len = 8;
  int n_val = 256;                      // size of the val set and of the test set
  int n_pairs = 4;                      // mqar / needle: key-value pairs per sequence
  int n_digits = 3;                     // addition: digits per operand
  double mask_prob = 0.15;              // text with an encoder: share of positions masked (MLM)
  std::string src_path, tgt_path;       // parallel: source and target files, one sentence per line
  int batch_tokens = 0;                 // parallel: train batches by token budget (0 = train.batch_size rows)
  std::string tokenizer = "chars";      // text, parallel: chars | bpe
  std::string tokenizer_file;           // bpe: the `tokenizers` JSON file (attnlab tokenizer train)
  bool shared_vocab = true;             // parallel: false = disjoint source and target ids
  std::string filler = "zero";          // mqar: zero | random (uniform ids outside the pairs and queries)
};

struct TrainConfig {
  int steps = 1000;
  int batch_size = 16;                  // the global batch: sequences per optimizer step
  int grad_accum = 1;                   // micro-batches per step (divides batch_size)
  double lr = 1e-3;
  double min_lr = 1e-4;
  int warmup_steps = 100;
  std::string schedule = "cosine";      // cosine | constant | inverse_sqrt
  double weight_decay = 0.1;
  bool decay_embeddings = false;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;               // 0 = off
  double label_smoothing = 0.0;
  int eval_interval = 100;
  int eval_batches = 20;
  int log_interval = 10;
  int checkpoint_interval = 0;          // 0 = only at the end
  int keep_checkpoints = 3;
  int64_t seed = 1337;
  int threads = 0;                      // 0 = all available
  std::string precision = "fp32";       // fp32 | bf16: the inputs of the GEMMs (train/precision.h)
  std::string on_nan = "stop";          // stop | skip: what a NaN/Inf loss or gradient does
  bool attention_maps = true;           // attention_history.jsonl and TensorBoard images at each evaluation
};

struct SampleConfig {
  int max_new_tokens = 200;
  double temperature = 1.0;
  int top_k = 0;
  double top_p = 1.0;                   // nucleus filter; 1 = off
  int beam_width = 1;                   // encoder_decoder: beam search when > 1
  double length_penalty = 1.0;          // beam search: score / length^penalty
  std::string prompt = "";
};

struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  SampleConfig sample;
  std::string source = "<defaults>";  // where it came from (not a key)
  // Where each key the user wrote was set: "file:line:col" or "--set key=value" (not a key; for
  // config_error, so that checks made after loading point at the key as load_config's own do).
  std::map<std::string, std::string> where;
  int ff_dim() const { return model.d_ff > 0 ? model.d_ff : 4 * model.d_model; }
};

// The closed-set options' YAML spellings: OptionNames<E>::names[i] spells E(i).
template <class E>
struct OptionNames;
template <>
struct OptionNames<ModelConfig::Kind> {
  static constexpr const char* names[] = {"decoder", "encoder", "encoder_decoder"};
};
template <>
struct OptionNames<ModelConfig::Norm> {
  static constexpr const char* names[] = {"pre", "post"};
};
template <>
struct OptionNames<ModelConfig::Positions> {
  static constexpr const char* names[] = {"learned", "sinusoidal", "rope", "alibi", "none"};
};
template <>
struct OptionNames<ModelConfig::Init> {
  static constexpr const char* names[] = {"gpt2", "torch_default"};
};
template <>
struct OptionNames<ModelConfig::Activation> {
  static constexpr const char* names[] = {"gelu_tanh", "gelu"};
};
template <>
struct OptionNames<ModelConfig::Device> {
  static constexpr const char* names[] = {"cpu", "cuda"};
};
template <>
struct OptionNames<AttentionConfig::Impl> {
  static constexpr const char* names[] = {"naive", "flash", "auto"};
};

// The spelling of a value, as the config file and `attnlab config` write it.
template <class E>
std::string option_name(E value) {
  return OptionNames<E>::names[size_t(value)];
}
// The value a spelling names; false when it names none.
template <class E>
bool option_from_name(const std::string& name, E& out) {
  size_t i = 0;
  for (const char* n : OptionNames<E>::names) {
    if (name == n) {
      out = E(i);
      return true;
    }
    i++;
  }
  return false;
}

struct ConfigKey {
  std::string key, type, default_value, doc;
};

// Every key of the schema, in order (for docs and `config show`).
std::vector<ConfigKey> config_keys();

// A UserError about config keys, raised where only their values are at hand (the dataset
// constructors). `keys` are the keys at fault, the one whose change most likely fixes it first;
// what() is the message alone. make_dataset turns it into a config_error.
struct ConfigKeyError : UserError {
  ConfigKeyError(std::vector<std::string> k, const std::string& what) : UserError(what), keys(std::move(k)) {}
  std::vector<std::string> keys;
};
template <typename... Args>
[[noreturn]] void key_error(std::vector<std::string> keys, fmt::format_string<Args...> f, Args&&... args) {
  throw ConfigKeyError(std::move(keys), fmt::format(f, std::forward<Args>(args)...));
}

// Throws UserError "WHERE: key 'KEY': WHAT", the form of load_config's own errors. KEY is the first
// of `keys` set by --set (the user's last word), else the first written in the file, else the
// first; WHERE is where it was set (cfg.where), else cfg.source.
[[noreturn]] void config_error(const Config& cfg, const std::vector<std::string>& keys, const std::string& what);

// Load a YAML file and apply `key=value` overrides; validate everything.
// Errors throw UserError: "FILE:LINE:COL: key 'a.b': expected ..., got ...".
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (checkpoints embed their config); `origin` names it in errors.
Config load_config_text(const std::string& yaml, const std::string& origin,
                        const std::vector<std::string>& overrides = {});
// The fully resolved config as YAML (every key, defaults filled in).
std::string dump_config(const Config& cfg);

}  // namespace attnlab
