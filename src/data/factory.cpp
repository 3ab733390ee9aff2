// make_dataset / task_options (see factory.h).
#include "data/factory.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <optional>

#include "cuda/cuda_attention.h"

namespace attnlab {

TaskOptions task_options(const Config& cfg) {
  TaskOptions o;
  o.name = cfg.data.task;
  o.n_symbols = cfg.data.n_symbols;
  o.min_len = cfg.data.min_len;
  o.max_len = cfg.data.max_len;
  o.val_fraction = cfg.data.val_fraction;
  o.n_val = cfg.data.n_val;
  o.n_pairs = cfg.data.n_pairs;
  o.random_filler = cfg.data.filler == "random";
  o.n_digits = cfg.data.n_digits;
  o.path = cfg.data.path;
  o.src_path = cfg.data.src_path;
  o.tgt_path = cfg.data.tgt_path;
  o.tokenizer = cfg.data.tokenizer;
  o.tokenizer_file = cfg.data.tokenizer_file;
  o.shared_vocab = cfg.data.shared_vocab;
  o.seed = uint64_t(cfg.train.seed);
  return o;
}

Tokenizer make_text_tokenizer(const Config& cfg, std::string_view text) {
  if (cfg.data.tokenizer != "bpe") return Tokenizer::build(text);
  try {
    return Tokenizer::load_bpe_file(cfg.data.tokenizer_file);
  } catch (const ConfigKeyError&) {
    throw;
  } catch (const UserError& e) {
    throw ConfigKeyError({"data.tokenizer_file"}, e.what());
  }
}

std::string describe_data_config(const Config& cfg) {
  const DataConfig& d = cfg.data;
  std::vector<std::string> opts;
  std::string head = d.task;
  if (d.task == "text") {
    head += " " + d.path;
    opts.push_back(fmt::format("val_fraction {}", d.val_fraction));
    if (d.tokenizer == "bpe") opts.push_back(fmt::format("tokenizer bpe {}", d.tokenizer_file));
    if (cfg.model.kind == ModelConfig::Kind::encoder) opts.push_back(fmt::format("mask_prob {}", d.mask_prob));
  } else {
    const auto names = TaskDataset::names();
    if (d.task != "parallel" && std::find(names.begin(), names.end(), d.task) == names.end()) return head;
    if (d.task == "parallel") {
      head += " " + (d.path.empty() ? d.src_path + " + " + d.tgt_path : d.path);
      if (d.tokenizer == "bpe") opts.push_back(fmt::format("tokenizer bpe {}", d.tokenizer_file));
      if (!d.shared_vocab) opts.push_back("separate source and target vocabularies");
    }
    if (d.filler != "zero") opts.push_back(fmt::format("filler {}", d.filler));
    if (d.batch_tokens > 0) opts.push_back(fmt::format("batch_tokens {}", d.batch_tokens));
    const std::map<std::string, int> value = {{"n_symbols", d.n_symbols}, {"min_len", d.min_len},
                                              {"max_len", d.max_len},     {"n_pairs", d.n_pairs},
                                              {"n_digits", d.n_digits}};
    for (const auto& key : TaskDataset::option_keys(d.task)) opts.push_back(fmt::format("{} {}", key, value.at(key)));
    opts.push_back(fmt::format("val_fraction {}", d.val_fraction));
    opts.push_back(fmt::format("n_val {}", d.n_val));
  }
  return fmt::format("{} ({})", head, fmt::join(opts, ", "));
}

std::unique_ptr<Dataset> make_dataset(const Config& cfg, const Tokenizer* tokenizer) {
  try {
    if (cfg.data.batch_tokens > 0 && cfg.data.task != "parallel")
      key_error({"data.batch_tokens"}, "data.batch_tokens is for data.task parallel (sentence pairs from files); "
                "task {} has rows of one size: set it to 0 and use train.batch_size", cfg.data.task);
    if (cfg.data.task == "text") {
      std::optional<Tokenizer> tok;
      if (cfg.data.tokenizer == "bpe") tok = tokenizer ? *tokenizer : make_text_tokenizer(cfg, {});
      return std::make_unique<TextDataset>(cfg.data.path, cfg.data.val_fraction, cfg.model.block_size,
                                           option_name(cfg.model.kind), cfg.data.mask_prob, tok ? &*tok : nullptr);
    }
    TaskOptions o = task_options(cfg);
    if (tokenizer && cfg.data.task == "parallel") o.given_tokenizer = std::make_shared<const Tokenizer>(*tokenizer);
    return std::make_unique<TaskDataset>(o, option_name(cfg.model.kind), cfg.model.block_size);
  } catch (const ConfigKeyError& e) {
    config_error(cfg, e.keys, e.what());  // the dataset knows the keys, the config where they were written
  }
}

std::unique_ptr<Dataset> make_training_data(const Config& cfg, const Tokenizer* tokenizer) {
  std::unique_ptr<Dataset> data = make_dataset(cfg, tokenizer);
  // the attention modules check this too, but only once the model is being built
  if (cfg.model.device == ModelConfig::Device::cuda && !cuda_available())
    config_error(cfg, {"model.device"},
                 fmt::format("cuda needs a build configured with -DATTNLAB_CUDA=ON and a visible GPU (GPU: {}); "
                             "use cpu here",
                             cuda_device_name()));
  return data;
}

}  // namespace attnlab
