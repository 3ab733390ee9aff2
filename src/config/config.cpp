#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <algorithm>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

#include "config/fields.h"
#include "config/slots.h"
#include "config/yaml_errors.h"
#include "core/error.h"
#include "core/suggest.h"

namespace attnlab {

namespace {

using namespace config_fields;  // Field and its makers (fields.h)

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = [] {
    std::vector<Field> v;
    // model
    v.push_back(enum_field("model.kind", [](Config& c) -> auto& { return c.model.kind; },
                          "Model kind. `decoder`: GPT-style causal language model. `encoder`: BERT-style "
                          "bidirectional stack with a masked-token head (text), a classification head (parity, "
                          "balanced_parens) or a per-position head (mqar, needle, induction). `encoder_decoder`: "
                          "Vaswani et al. 2017, an encoder stack and a decoder stack with "
                          "cross-attention (seq2seq tasks)."));
    v.push_back(int_field("model.n_layers", [](Config& c) -> auto& { return c.model.n_layers; }, 1, 256,
                          "Number of transformer blocks (per stack in an encoder_decoder)."));
    v.push_back(int_field("model.n_encoder_layers", [](Config& c) -> auto& { return c.model.n_encoder_layers; },
                          0, 256, "encoder_decoder: encoder blocks; 0 = model.n_layers."));
    v.push_back(int_field("model.d_model", [](Config& c) -> auto& { return c.model.d_model; }, 1, 65536,
                          "Width of the residual stream."));
    v.push_back(int_field("model.n_heads", [](Config& c) -> auto& { return c.model.n_heads; }, 1, 4096,
                          "Attention heads per layer; must divide d_model."));
    v.push_back(int_field("model.d_ff", [](Config& c) -> auto& { return c.model.d_ff; }, 0, 1 << 20,
                          "Hidden width of the MLP; 0 means 4 × d_model."));
    v.push_back(bool_field("model.mlp", [](Config& c) -> auto& { return c.model.mlp; },
                           "An MLP sublayer (and its layernorm) in every block of every stack; false builds "
                           "attention-only blocks (E6's MQAR models), and model.d_ff is then unused."));
    v.push_back(enum_field("model.activation", [](Config& c) -> auto& { return c.model.activation; },
                          "The MLP's nonlinearity: `gelu_tanh`, GELU in its tanh approximation (GPT-2; the default, "
                          "and what checkpoints without this key used), or `gelu`, the exact x·Φ(x) with the error "
                          "function (PyTorch's default nn.GELU, nanoGPT; "
                          "scripts/import_nanogpt.py sets it)."));
    v.push_back(int_field("model.block_size", [](Config& c) -> auto& { return c.model.block_size; }, 2,
                          1 << 20, "Maximum context length (tokens) the model is built for."));
    v.push_back(enum_field("model.positions", [](Config& c) -> auto& { return c.model.positions; },
                          "Position information: a learned table or fixed sinusoids (Vaswani 2017) added to the "
                          "embeddings; rotary embeddings (Su et al. 2021) or linear biases (Press et al. "
                          "2022) applied inside self-attention; or none."));
    v.push_back(bool_field("model.tie_embeddings", [](Config& c) -> auto& { return c.model.tie_embeddings; },
                           "Use the token embedding as the output head (weight tying)."));
    v.push_back(bool_field("model.head_bias", [](Config& c) -> auto& { return c.model.head_bias; },
                           "A bias vector on the output head (`head.b`, V entries), tied or untied; under "
                           "model.init torch_default it starts U(±1/√d_model), under gpt2 at 0."));
    v.push_back(bool_field("model.bias", [](Config& c) -> auto& { return c.model.bias; },
                           "Biases in linear layers."));
    v.push_back(enum_field("model.init", [](Config& c) -> auto& { return c.model.init; },
                           "How the linear layers start (the attention projections, the MLP, the output head when "
                           "untied, the classifier head). `gpt2`: weights N(0, 0.02²), the projections into the "
                           "residual stream 0.02/√(2·n_layers), biases 0 (Radford et al. 2019). `torch_default`: "
                           "weights and biases U(±1/√fan_in), PyTorch's nn.Linear default. Under both: embeddings "
                           "N(0, 0.02²), layernorms (1, 0), and the score parameters of bahdanau and luong and "
                           "differential's λ vectors keep "
                           "their papers' initialisation (docs/attention.md)."));
    v.push_back(omitted(dbl_field("model.init_std", [](Config& c) -> auto& { return c.model.init_std; }, 0.0, 1.0,
                                  true, "model.init gpt2: the standard deviation of the linear layers' weights "
                                  "(the residual projections get init_std/√(2·n_layers)); 0.02 is GPT-2's. "
                                  "Embeddings stay N(0, 0.02²); torch_default does not read it (E6b varies it).")));
    v.push_back(dbl_field("model.dropout", [](Config& c) -> auto& { return c.model.dropout; }, 0.0, 0.99,
                          false, "Dropout on embeddings and on each residual branch (training only)."));
    v.push_back(enum_field("model.norm", [](Config& c) -> auto& { return c.model.norm; },
                          "Layernorm placement: `pre` (x + f(LN(x)), a final LN before the head; GPT-2 and "
                          "modern models) or `post` (LN(x + f(x)), as in Vaswani et al. 2017)."));
    v.push_back(bool_field("model.share_embeddings", [](Config& c) -> auto& { return c.model.share_embeddings; },
                           "encoder_decoder: one token embedding table for source and target (else two)."));
    v.push_back(bool_field("model.bottleneck", [](Config& c) -> auto& { return c.model.bottleneck; },
                           "encoder_decoder: no cross-attention; the mean of the encoder output over the source is "
                           "added to every decoder input (the fixed-vector seq2seq of Sutskever "
                           "et al. 2014, E3's baseline)."));
    v.push_back(str_field("model.pool", [](Config& c) -> auto& { return c.model.pool; }, {"first", "mean"},
                          "encoder classification: pool the first position (a leading separator token, as "
                          "BERT's [CLS]) or the mean over non-padding positions."));
    v.push_back(enum_field("model.device", [](Config& c) -> auto& { return c.model.device; },
                          "Where the tiled attention kernels run: `cpu`, or `cuda` (a build with -DATTNLAB_CUDA=ON "
                          "and a visible GPU): flash-path calls of the scaled_dot_product family go to the GPU "
                          "kernels, copying their inputs and outputs per call (docs/cuda.md); "
                          "everything else stays on the CPU."));
    using ARef = AttentionConfig& (*)(Config&);
    const std::pair<const char*, ARef> slots[] = {
        {"model.attention", [](Config& c) -> AttentionConfig& { return c.model.attention; }},
        {"model.encoder.self_attention", [](Config& c) -> AttentionConfig& { return c.model.encoder_self; }},
        {"model.decoder.self_attention", [](Config& c) -> AttentionConfig& { return c.model.decoder_self; }},
        {"model.decoder.cross_attention", [](Config& c) -> AttentionConfig& { return c.model.decoder_cross; }},
    };
    for (const auto& slot : slots) {
      // a plain copy, not a structured binding: clang 14 cannot capture bindings in lambdas
      const ARef ref = slot.second;
      const std::string p = slot.first;
      const std::string inherit = p == "model.attention" ? "" : " Unset: inherits the `model.attention` value.";
      auto key = [&](const char* k) { return p + "." + k; };
      {
        Field f = str_field(key("type"), [ref](Config& c) -> auto& { return ref(c).type; }, {},
                            "Attention variant (registry name, see docs/attention.md). `scaled_dot_product` uses the "
                            "slot's mask (causal in a decoder's self-attention); `causal` and `bidirectional` force "
                            "it. An encoder's self-attention and the cross-attention read "
                            "the whole sequence, so `causal` is an error there." + inherit);
        f.type = "";  // the registry's names (the loader checks them against it, with the slot's location)
        for (const auto& name : attention_types()) f.type += (f.type.empty() ? "" : " | ") + name;
        v.push_back(std::move(f));
      }
      v.push_back(int_field(key("n_kv_heads"), [ref](Config& c) -> auto& { return ref(c).n_kv_heads; }, 0, 4096,
                            "Key/value heads: 0 or n_heads = MHA, fewer = GQA, 1 = MQA. Must divide n_heads." + inherit));
      v.push_back(str_field(key("scale"), [ref](Config& c) -> auto& { return ref(c).scale; }, {},
                            "Score scale: `inv_sqrt_dk` (1/√d_head), `none` (1), or a positive number." + inherit));
      v.push_back(dbl_field(key("dropout"), [ref](Config& c) -> auto& { return ref(c).dropout; }, 0.0, 0.99, false,
                            "Dropout on the attention weights (training only)." + inherit));
      v.push_back(int_field(key("window"), [ref](Config& c) -> auto& { return ref(c).window; }, 0, 1 << 20,
                            "Sliding window: each query sees at most this many most recent keys; 0 = off." + inherit));
      v.push_back(str_field(key("score"), [ref](Config& c) -> auto& { return ref(c).score; },
                            {"dot", "general", "concat"},
                            "`luong` only: the score function (dot qᵀk, general qᵀWk, concat vᵀtanh(W[q;k]))." +
                                inherit));
      v.push_back(dbl_field(key("rope_base"), [ref](Config& c) -> auto& { return ref(c).rope_base; }, 1.0, 1e9, true,
                            "RoPE frequency base θ (positions: rope)." + inherit));
      v.push_back(bool_field(key("diff_norm"), [ref](Config& c) -> auto& { return ref(c).diff_norm; },
                             "`differential` only: the headwise RMSNorm and (1 − λ_init) scaling of each "
                             "head (false reproduces E7's ablation)." + inherit));
      v.push_back(enum_field(key("impl"), [ref](Config& c) -> auto& { return ref(c).impl; },
                            "`scaled_dot_product` family: `naive` materialises the T×T scores, `flash` is the "
                            "tiled kernel (online softmax, O(T) memory), `auto` picks flash for long sequences." +
                                inherit));
    }
    // data
    v.push_back(str_field("data.task", [](Config& c) -> auto& { return c.data.task; },
                          {"text", "copy", "reverse", "sort", "addition", "dates", "mqar", "needle", "induction",
                           "parity", "balanced_parens", "parallel"},
                          "Training data: a text file (characters or BPE tokens: data.tokenizer) or a synthetic task "
                          "(docs/tasks.md). Each task names the model kinds it suits; another kind is a config error."));
    v.push_back(str_field("data.path", [](Config& c) -> auto& { return c.data.path; }, {},
                          "text: the file to read. parallel: a TSV file, source<TAB>target per line. Relative "
                          "paths are taken from the current directory."));
    v.push_back(omitted(str_field("data.src_path", [](Config& c) -> auto& { return c.data.src_path; }, {},
                                  "parallel: the source sentences, one per line (instead of data.path).")));
    v.push_back(omitted(str_field("data.tgt_path", [](Config& c) -> auto& { return c.data.tgt_path; }, {},
                                  "parallel: the target sentences, line i translating line i of data.src_path.")));
    v.push_back(dbl_field("data.val_fraction", [](Config& c) -> auto& { return c.data.val_fraction; }, 0.0,
                          0.5, true,
                          "text: the last share of the file used for validation. reverse/sort: share of "
                          "the input space reserved for validation."));
    v.push_back(int_field("data.n_symbols", [](Config& c) -> auto& { return c.data.n_symbols; }, 2, 65536,
                          "copy/reverse/sort/induction: alphabet size (letters a..z up to 26, else numbered symbols). "
                          "mqar/needle: vocabulary size (keys in the lower half, values in the "
                          "upper)."));
    v.push_back(int_field("data.min_len", [](Config& c) -> auto& { return c.data.min_len; }, 1, 4096,
                          "Symbol tasks: shortest input (parity/balanced_parens: string length)."));
    v.push_back(int_field("data.max_len", [](Config& c) -> auto& { return c.data.max_len; }, 1, 4096,
                          "Symbol tasks: longest input. mqar/needle: the sequence length. parallel: longer "
                          "pairs (source or target, in tokens) are dropped."));
    v.push_back(int_field("data.n_val", [](Config& c) -> auto& { return c.data.n_val; }, 1, 1 << 20,
                          "Synthetic tasks: examples in the val set and in the test set (each)."));
    v.push_back(int_field("data.n_pairs", [](Config& c) -> auto& { return c.data.n_pairs; }, 1, 1 << 16,
                          "mqar/needle: key-value pairs per sequence."));
    v.push_back(int_field("data.n_digits", [](Config& c) -> auto& { return c.data.n_digits; }, 1, 18,
                          "addition: digits per operand."));
    v.push_back(dbl_field("data.mask_prob", [](Config& c) -> auto& { return c.data.mask_prob; }, 0.0, 1.0, true,
                          "text with an encoder: share of positions chosen for masked-token prediction "
                          "(of those: 80% <mask>, 10% a random token, 10% unchanged)."));
    v.push_back(omitted(int_field("data.batch_tokens", [](Config& c) -> auto& { return c.data.batch_tokens; }, 0,
                        INT32_MAX, "parallel: train batches of pairs of similar length, as many as fit in this many "
                        "padded source + target tokens (docs/tasks.md). 0 = train.batch_size rows.")));
    v.push_back(str_field("data.tokenizer", [](Config& c) -> auto& { return c.data.tokenizer; }, {"chars", "bpe"},
                          "text and parallel: `chars` (one token per byte, the vocabulary made from the (train) text) "
                          "or `bpe` (byte-level BPE read from data.tokenizer_file; docs/tokenizer.md)."));
    v.push_back(str_field("data.tokenizer_file", [](Config& c) -> auto& { return c.data.tokenizer_file; }, {},
                          "data.tokenizer bpe: the JSON file of `attnlab tokenizer train`, relative as data.path."));
    v.push_back(omitted(bool_field("data.shared_vocab", [](Config& c) -> auto& { return c.data.shared_vocab; },
                                   "parallel: one vocabulary for both sides; false = source and target tokens get "
                                   "disjoint ids (decoding never emits a source id; docs/tasks.md).")));
    v.push_back(omitted(str_field("data.filler", [](Config& c) -> auto& { return c.data.filler; }, {"zero", "random"},
                                  "mqar: what the positions outside the pairs and the queries hold: `zero`, the "
                                  "filler id 0 (`_`), or `random`, uniform ids 1..n_symbols-1, keys and values "
                                  "included (MQAR with random filler tokens, E7; docs/tasks.md).")));
    // train
    v.push_back(int_field("train.steps", [](Config& c) -> auto& { return c.train.steps; }, 0, INT32_MAX,
                          "Optimizer steps."));
    v.push_back(int_field("train.batch_size", [](Config& c) -> auto& { return c.train.batch_size; }, 1,
                          1 << 20, "Sequences per optimizer step (the whole batch, however train.grad_accum and "
                                   "mpirun -np split it)."));
    {
      Field f = int_field("train.grad_accum", [](Config& c) -> auto& { return c.train.grad_accum; }, 1, 1 << 20,
                          "Gradient accumulation: each step's train.batch_size sequences are split into this many "
                          "micro-batches of consecutive rows, run one after the other, their gradients summed in "
                          "order with weights 1/(real targets in the whole batch); one optimizer step per batch. Must "
                          "divide train.batch_size. 1 = the whole batch at once. Under mpirun -np N it is per "
                          "process: N times this many micro-batches in all, so "
                          "train.batch_size must divide by N times it (docs/distributed.md).");
      f.omit_default = true;
      v.push_back(std::move(f));
    }
    // no upper bound: an absurd rate is the NaN/Inf guard's job (train.on_nan), and a test's
    v.push_back(dbl_field("train.lr", [](Config& c) -> auto& { return c.train.lr; }, 0.0, INFINITY, true,
                          "Peak learning rate."));
    v.push_back(dbl_field("train.min_lr", [](Config& c) -> auto& { return c.train.min_lr; }, 0.0, 10.0,
                          false, "cosine: final learning rate."));
    v.push_back(int_field("train.warmup_steps", [](Config& c) -> auto& { return c.train.warmup_steps; }, 0,
                          INT32_MAX, "Linear warm-up from 0 to lr over this many steps."));
    v.push_back(str_field("train.schedule", [](Config& c) -> auto& { return c.train.schedule; },
                          {"cosine", "constant", "inverse_sqrt"},
                          "Learning-rate schedule after the linear warm-up: `cosine` decay to train.min_lr over the "
                          "remaining steps, `constant`, or `inverse_sqrt` (lr·√(warmup/step), the "
                          "schedule of Vaswani et al. 2017)."));
    v.push_back(dbl_field("train.weight_decay", [](Config& c) -> auto& { return c.train.weight_decay; }, 0.0,
                          10.0, false,
                          "AdamW decoupled weight decay, applied to weight matrices only (not biases "
                          "or norms)."));
    v.push_back(bool_field("train.decay_embeddings",
                           [](Config& c) -> auto& { return c.train.decay_embeddings; },
                           "Also apply weight decay to embedding tables."));
    v.push_back(dbl_field("train.beta1", [](Config& c) -> auto& { return c.train.beta1; }, 0.0, 1.0, false,
                          "AdamW β₁."));
    v.push_back(dbl_field("train.beta2", [](Config& c) -> auto& { return c.train.beta2; }, 0.0, 1.0, false,
                          "AdamW β₂."));
    v.push_back(dbl_field("train.eps", [](Config& c) -> auto& { return c.train.eps; }, 0.0, 1.0, true,
                          "AdamW ε."));
    v.push_back(dbl_field("train.grad_clip", [](Config& c) -> auto& { return c.train.grad_clip; }, 0.0,
                          1e9, false, "Clip the global gradient norm to this value; 0 turns clipping off."));
    v.push_back(dbl_field("train.label_smoothing", [](Config& c) -> auto& { return c.train.label_smoothing; },
                          0.0, 0.99, false, "Label smoothing ε of the cross-entropy."));
    v.push_back(int_field("train.eval_interval", [](Config& c) -> auto& { return c.train.eval_interval; }, 0,
                          INT32_MAX, "Evaluate on val every N steps (and at the end); 0 = only at the end."));
    v.push_back(int_field("train.eval_batches", [](Config& c) -> auto& { return c.train.eval_batches; }, 1,
                          1 << 20, "Batches averaged per evaluation."));
    v.push_back(int_field("train.log_interval", [](Config& c) -> auto& { return c.train.log_interval; }, 1,
                          INT32_MAX, "Log train loss every N steps."));
    v.push_back(int_field("train.checkpoint_interval",
                          [](Config& c) -> auto& { return c.train.checkpoint_interval; }, 0, INT32_MAX,
                          "Save a checkpoint every N steps; 0 = only at the end."));
    v.push_back(int_field("train.keep_checkpoints", [](Config& c) -> auto& { return c.train.keep_checkpoints; },
                          1, INT32_MAX, "How many periodic checkpoints to keep (oldest deleted first)."));
    v.push_back(seed_field("train.seed", [](Config& c) -> auto& { return c.train.seed; },
                           "Seed for initialisation, data order and dropout."));
    v.push_back(int_field("train.threads", [](Config& c) -> auto& { return c.train.threads; }, 0, 4096,
                          "OpenMP threads; 0 = all available. Losses are reproducible for a fixed count."));
    v.push_back(str_field("train.precision", [](Config& c) -> auto& { return c.train.precision; }, {"fp32", "bf16"},
                          "Matrix products in training and its evaluations: `fp32`, or `bf16`: every GEMM's "
                          "inputs rounded to bfloat16 and multiplied by AMX or AVX512-BF16 instructions, with "
                          "fp32 sums, weights, gradients and optimizer state (docs/architecture.md). A CPU with "
                          "neither instruction set trains in fp32 and says so at the start."));
    v.push_back(str_field("train.on_nan", [](Config& c) -> auto& { return c.train.on_nan; }, {"stop", "skip"},
                          "A NaN/Inf loss or gradient: `stop` with an error naming the step (the last good "
                          "checkpoint stays), or `skip` the step's update."));
    v.push_back(bool_field("train.attention_maps", [](Config& c) -> auto& { return c.train.attention_maps; },
                           "At each evaluation, the attention maps of one fixed validation example: a line of "
                           "attention_history.jsonl and one TensorBoard image per attention slot and layer "
                           "(docs/tensorboard.md)."));
    // sample
    v.push_back(int_field("sample.max_new_tokens", [](Config& c) -> auto& { return c.sample.max_new_tokens; },
                          0, 1 << 20, "Default number of tokens `attnlab sample` generates."));
    v.push_back(dbl_field("sample.temperature", [](Config& c) -> auto& { return c.sample.temperature; }, 0.0,
                          100.0, false, "Default sampling temperature; 0 = greedy."));
    v.push_back(int_field("sample.top_k", [](Config& c) -> auto& { return c.sample.top_k; }, 0, 1 << 20,
                          "Default top-k filter; 0 = off."));
    v.push_back(dbl_field("sample.top_p", [](Config& c) -> auto& { return c.sample.top_p; }, 0.0, 1.0, true,
                          "Default nucleus (top-p) filter: keep the most likely tokens whose probabilities "
                          "sum to at least p; 1 = off."));
    v.push_back(int_field("sample.beam_width", [](Config& c) -> auto& { return c.sample.beam_width; }, 1, 256,
                          "encoder_decoder and seq2seq decoding: beam search with this many beams; 1 = greedy."));
    v.push_back(dbl_field("sample.length_penalty", [](Config& c) -> auto& { return c.sample.length_penalty; },
                          0.0, 10.0, false,
                          "Beam search: hypotheses are ranked by log-probability / length^penalty."));
    v.push_back(str_field("sample.prompt", [](Config& c) -> auto& { return c.sample.prompt; }, {},
                          "Default prompt for `attnlab sample`."));
    return v;
  }();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema())
    if (f.key == key) return &f;
  return nullptr;
}

bool is_section(const std::string& prefix) {
  for (const auto& f : schema())
    if (f.key.rfind(prefix + ".", 0) == 0) return true;
  return false;
}

// " (did you mean 'x'?)" for the closest key or section: same last component, or within 2 edits
std::string suggest(const std::string& key) {
  std::vector<std::string> names;
  for (const auto& f : schema()) {
    names.push_back(f.key);
    for (size_t dot = f.key.find('.'); dot != std::string::npos; dot = f.key.find('.', dot + 1))
      names.push_back(f.key.substr(0, dot));
  }
  const std::string last = key.substr(key.rfind('.') + 1);
  std::string best;
  size_t best_d = 3;
  for (const auto& n : names) {
    const size_t d = n.substr(n.rfind('.') + 1) == last ? 0 : edit_distance(n, key);
    if (d < best_d) best_d = d, best = n;
  }
  return did_you_mean(best);
}

struct Locations {
  std::map<std::string, std::string> of;  // key -> where it was set
  std::string get(const std::string& key, const std::string& origin) const {
    auto it = of.find(key);
    return it == of.end() ? origin : it->second;
  }
};

void apply_map(Config& cfg, const YAML::Node& node, const std::string& prefix, const std::string& origin,
               Locations& loc) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    // a key that is itself a list or a mapping (YAML's "? [a, b]: 1") names no config key
    if (!it->first.IsScalar())
      user_error("{}: expected a key name, got {}", where_of(origin, it->first), scalar_text(it->first));
    const std::string name = it->first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const Where w{where_of(origin, it->first)};
    // a copy (a Node is a handle): yaml-cpp's it-> returns a temporary proxy, so a reference to
    // it->second would dangle once this statement ends
    const YAML::Node val = it->second;
    if (const Field* f = find_field(key)) {
      if (val.IsMap() || val.IsSequence())
        fail(Where{where_of(origin, val)}, key, fmt::format("expected {}, got {}", f->type, scalar_text(val)));
      f->set(cfg, val, Where{where_of(origin, val)});
      loc.of[key] = where_of(origin, val);
    } else if (is_section(key)) {
      if (val.IsNull()) continue;  // an empty section
      if (!val.IsMap()) fail(w, key, fmt::format("expected a mapping of keys, got {}", scalar_text(val)));
      apply_map(cfg, val, key, origin, loc);
    } else {
      user_error("{}: unknown key '{}'{}", w.text, key, suggest(key));
    }
  }
}

void apply_override(Config& cfg, const std::string& ov, Locations& loc) {
  const auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    user_error("--set {}: expected key=value (e.g. --set train.lr=3e-4)", ov);
  const std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
  const Field* f = find_field(key);
  if (!f) user_error("--set {}: unknown key '{}'{}", ov, key, suggest(key));
  YAML::Node n;
  try {
    n = YAML::Load(value);
  } catch (const YAML::Exception&) {
    n = YAML::Node(value);
  }
  if (n.IsNull() && !value.empty()) n = YAML::Node(value);
  const Where w{"--set " + ov};
  f->set(cfg, n, w);
  loc.of[key] = w.text;
}

const char* const kSlots[] = {"model.encoder.self_attention", "model.decoder.self_attention",
                              "model.decoder.cross_attention"};

// Slot keys not written by the user take model.attention's value.
void inherit_slots(Config& cfg, const Locations& loc) {
  const std::string base = "model.attention.";
  for (const auto& f : schema()) {
    if (f.key.rfind(base, 0) != 0) continue;
    const std::string name = f.key.substr(base.size());
    for (const char* slot : kSlots) {
      const std::string key = std::string(slot) + "." + name;
      if (!loc.of.count(key)) find_field(key)->set(cfg, YAML::Node(f.get(cfg)), Where{"(inherited)"});
    }
  }
}

// A causal type in a slot that reads a whole sequence (an encoder's self-attention, or the
// cross-attention over the source): each position would see only the ones before it, and the model
// trains badly without any other sign. The message names the fix in the slot's terms.
std::string causal_reader_error(ModelConfig::Kind kind, const std::string& slot, const std::string& type_key,
                                const std::string& type) {
  const bool cross = slot == "model.decoder.cross_attention";
  const std::string inherited = type_key == slot + ".type" ? "" : fmt::format(" (inherited by {})", slot);
  const std::string reader = cross ? "cross-attention reads the whole source" : "an encoder reads its whole input";
  if (kind == ModelConfig::Kind::encoder)
    return fmt::format("'{}' masks future positions, but {}: use bidirectional (or scaled_dot_product, which has "
                       "no mask in an encoder)", type, reader);
  return fmt::format("'{}'{} masks future positions, but {}: use scaled_dot_product (causal in the decoder's "
                     "self-attention only), or set {}.type: {}",
                     type, inherited, reader, slot, cross ? "scaled_dot_product" : "bidirectional");
}

// Checks that involve several keys.
void validate(const Config& c, const std::string& origin, const Locations& loc) {
  auto bad = [&](const std::string& key, const std::string& what) { fail(Where{loc.get(key, origin)}, key, what); };
  const auto& m = c.model;
  if (m.d_model % m.n_heads != 0)
    bad("model.n_heads", fmt::format("expected a positive integer that divides d_model ({}), got {}",
                                     m.d_model, m.n_heads));
  if (!m.mlp && m.d_ff != 0 && loc.of.count("model.d_ff"))
    bad("model.d_ff", fmt::format("model.mlp is false, so the blocks have no MLP and no hidden width; remove "
                                  "model.d_ff (or set it to 0), got {}", m.d_ff));
  // attention slots: unused slots must not be set; used ones must suit their variant
  const std::vector<std::string> used = model_slots(m.kind);
  for (const char* slot : kSlots) {
    const bool is_used = std::find(used.begin(), used.end(), slot) != used.end();
    for (const auto& [key, where] : loc.of)
      if (!is_used && key.rfind(std::string(slot) + ".", 0) == 0)
        bad(key, fmt::format("this slot does not exist in a '{}' model", option_name(m.kind)));
  }
  for (const auto& slot : used) {
    const AttentionSpec spec = slot_spec(m, slot, 0);
    const std::string err = check_attention_spec(spec);
    if (!err.empty()) {
      const std::string opt = err.substr(0, err.find(':'));
      // name the key where the offending value was written: the slot's, else the default's
      std::string key = slot + "." + opt;
      if (!loc.of.count(key)) key = "model.attention." + opt;
      if (opt == "n_heads") key = "model.n_heads";
      if (opt == "positions") key = "model.positions";
      bad(key, err.substr(err.find(':') + 2));
    }
    const std::string type_key = loc.of.count(slot + ".type") ? slot + ".type" : "model.attention.type";
    if (slot == "model.decoder.self_attention" && m.kind == ModelConfig::Kind::decoder && !spec.causal)
      bad(type_key, "a decoder is a causal language model; 'bidirectional' would let it see the tokens it predicts");
    if (slot != "model.decoder.self_attention" && spec.causal)
      bad(type_key, causal_reader_error(m.kind, slot, type_key, spec.type));
  }
  if (c.data.task == "text" && c.data.path.empty())
    bad("data.path", "expected the path of a text file (data.task is 'text'), got nothing");
  if (c.data.tokenizer == "bpe" && c.data.tokenizer_file.empty())
    bad("data.tokenizer_file",
        "expected the path of a tokenizer JSON file (data.tokenizer is 'bpe'), got nothing; make one with "
        "`attnlab tokenizer train FILE --vocab-size N -o tok.json`");
  if (!c.data.shared_vocab && c.data.task != "parallel")
    bad("data.shared_vocab", "false is for data.task parallel (a source and a target side); remove the key");
  if (c.model.init_std != 0.02 && c.model.init != ModelConfig::Init::gpt2)
    bad("model.init_std", "is read by model.init gpt2 only (torch_default's bounds follow from fan_in); remove the key");
  if (c.data.filler != "zero" && c.data.task != "mqar")
    bad("data.filler", "random is for data.task mqar (the other tasks' filler is fixed); remove the key");
  if (c.data.min_len > c.data.max_len)
    bad("data.min_len", fmt::format("expected at most data.max_len ({}), got {}", c.data.max_len, c.data.min_len));
  if (c.train.batch_size % c.train.grad_accum != 0)
    bad("train.grad_accum", fmt::format("expected a divisor of train.batch_size ({}), got {}", c.train.batch_size,
                                        c.train.grad_accum));
  if (c.train.min_lr > c.train.lr)
    bad("train.min_lr", fmt::format("expected at most train.lr ({}), got {}", c.train.lr, c.train.min_lr));
}

// An experiment file (configs/experiments/*.yaml: `experiment:`, `base:`, `grid:` ...) given where a
// training config belongs: say so rather than only that 'experiment' is not a config key.
Config load_node(const YAML::Node& root, const std::string& origin, const std::vector<std::string>& overrides) {
  Config cfg;
  cfg.source = origin;
  Locations loc;
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) user_error("{}: expected a mapping of keys at the top level", where_of(origin, root));
    reject_experiment_file(root, origin);
    apply_map(cfg, root, "", origin, loc);
  }
  for (const auto& ov : overrides) apply_override(cfg, ov, loc);
  inherit_slots(cfg, loc);
  validate(cfg, origin, loc);
  cfg.where = loc.of;
  return cfg;
}

}  // namespace

void config_error(const Config& cfg, const std::vector<std::string>& keys, const std::string& what) {
  const std::string* key = keys.empty() ? nullptr : &keys.front();
  for (const bool by_set : {true, false}) {
    const auto it = std::find_if(keys.begin(), keys.end(), [&](const std::string& k) {
      const auto w = cfg.where.find(k);
      return w != cfg.where.end() && (w->second.rfind("--set ", 0) == 0) == by_set;
    });
    if (it != keys.end()) {
      key = &*it;
      break;
    }
  }
  if (!key) user_error("{}: {}", cfg.source, what);
  const auto w = cfg.where.find(*key);
  fail(Where{w == cfg.where.end() ? cfg.source : w->second}, *key, what);
}

std::vector<ConfigKey> config_keys() {
  const Config defaults;
  std::vector<ConfigKey> out;
  for (const auto& f : schema()) out.push_back({f.key, f.type, f.get(defaults), f.doc});
  return out;
}

Config load_config_text(const std::string& yaml, const std::string& origin,
                        const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    user_error("{}:{}:{}: invalid YAML: {}", origin, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  return load_node(root, origin, overrides);
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read config file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_text(ss.str(), path, overrides);
}

std::string dump_config(const Config& cfg) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::vector<std::string> open;  // the sections currently open
  const std::vector<std::string> used = model_slots(cfg.model.kind);
  auto unused_slot = [&](const std::string& key) {
    for (const char* slot : kSlots)
      if (key.rfind(std::string(slot) + ".", 0) == 0) return std::find(used.begin(), used.end(), slot) == used.end();
    return false;
  };
  for (const auto& f : schema()) {
    if (unused_slot(f.key)) continue;  // only the slots this model kind has
    if (f.omit_default && f.get(cfg) == f.get(Config{})) continue;
    std::vector<std::string> parts;
    std::stringstream ks(f.key);
    for (std::string p; std::getline(ks, p, '.');) parts.push_back(p);
    const std::vector<std::string> sections(parts.begin(), parts.end() - 1);
    size_t common = 0;
    while (common < open.size() && common < sections.size() && open[common] == sections[common]) common++;
    while (open.size() > common) {
      out << YAML::EndMap;
      open.pop_back();
    }
    for (size_t i = common; i < sections.size(); i++) {
      out << YAML::Key << sections[i] << YAML::Value << YAML::BeginMap;
      open.push_back(sections[i]);
    }
    out << YAML::Key << parts.back() << YAML::Value;
    const std::string v = f.get(cfg);
    if (f.quoted) out << YAML::DoubleQuoted << v;
    else out << v;
  }
  while (!open.empty()) {
    out << YAML::EndMap;
    open.pop_back();
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace attnlab
