// checkpoint_data (see eval_data.h).
#include "train/eval_data.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "model/model.h"

namespace attnlab {

namespace {

struct KeyInfo {
  const char* key;
  std::function<std::string(const DataConfig&)> get;
};

// The keys that may change, with their values as the config spells them.
const std::vector<KeyInfo>& allowed() {
  static const std::vector<KeyInfo> keys = {
      {"data.min_len", [](const DataConfig& d) { return std::to_string(d.min_len); }},
      {"data.max_len", [](const DataConfig& d) { return std::to_string(d.max_len); }},
      {"data.n_pairs", [](const DataConfig& d) { return std::to_string(d.n_pairs); }},
      {"data.n_digits", [](const DataConfig& d) { return std::to_string(d.n_digits); }},
      {"data.n_symbols", [](const DataConfig& d) { return std::to_string(d.n_symbols); }},
      {"data.n_val", [](const DataConfig& d) { return std::to_string(d.n_val); }},
      {"data.val_fraction", [](const DataConfig& d) { return fmt::format("{}", d.val_fraction); }},
      {"data.path", [](const DataConfig& d) { return d.path; }},
      {"data.src_path", [](const DataConfig& d) { return d.src_path; }},
      {"data.tgt_path", [](const DataConfig& d) { return d.tgt_path; }},
      {"data.mask_prob", [](const DataConfig& d) { return fmt::format("{}", d.mask_prob); }},
  };
  return keys;
}

const KeyInfo* find_allowed(const std::string& key) {
  for (const auto& k : allowed())
    if (key == k.key) return &k;
  return nullptr;
}

std::string key_of(const std::string& set) {
  const auto eq = set.find('=');
  return eq == std::string::npos ? set : set.substr(0, eq);
}

// Refuses a key that exists but may not change; unknown keys are left to load_config's error.
void check_key(const std::string& set) {
  const std::string key = key_of(set);
  if (find_allowed(key)) return;
  const auto all = config_keys();
  if (std::none_of(all.begin(), all.end(), [&](const ConfigKey& k) { return k.key == key; })) return;
  const std::string may = fmt::format("{}", fmt::join(data_override_keys(), ", "));
  if (key.rfind("model.", 0) == 0)
    user_error("--set {}: '{}' is part of the model, which the checkpoint fixes; only data keys that leave the "
               "model as it is may change here: {}", set, key, may);
  if (key.rfind("data.", 0) == 0)
    user_error("--set {}: '{}' would change the task or its vocabulary, which the model was trained on; only "
               "these data keys may change here: {}", set, key, may);
  user_error("--set {}: '{}' is not a data key; eval and sample take the training and sampling settings from "
             "the checkpoint and their own options (--beam, --temperature, ...); --set may change only {}",
             set, key, may);
}

// The data keys the checkpoint's task reads (besides its eval sets' n_val and val_fraction).
std::vector<std::string> keys_read(const Config& cfg) {
  std::vector<std::string> keys;
  if (cfg.data.task == "text") {
    keys = {"data.path", "data.val_fraction"};
    if (cfg.model.kind == ModelConfig::Kind::encoder) keys.push_back("data.mask_prob");
    return keys;
  }
  for (const auto& k : TaskDataset::option_keys(cfg.data.task)) keys.push_back("data." + k);
  if (cfg.data.task == "parallel")
    for (const char* k : {"data.path", "data.src_path", "data.tgt_path"}) keys.push_back(k);
  keys.push_back("data.val_fraction");
  keys.push_back("data.n_val");
  return keys;
}

std::string read_data_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("--set data.path={}: cannot read that file", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) user_error("--set data.path={}: read error", path);
  return std::move(ss).str();
}

// The new task's tokens must be the checkpoint's, or their first ones (fewer symbols): each id
// keeps its meaning and has an embedding.
void check_vocabulary(const Config& cfg, const Config& trained, const Tokenizer& have, const Tokenizer& want,
                      const std::string& path) {
  const auto& a = want.tokens();
  const auto& b = have.tokens();
  if (a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin())) return;
  if (cfg.data.n_symbols != trained.data.n_symbols)
    user_error("data.n_symbols {} does not fit this checkpoint's vocabulary: it was trained with data.n_symbols {} "
               "({} tokens), and the new task's {} tokens are not among them with the same ids; use at most {} "
               "symbols", cfg.data.n_symbols, trained.data.n_symbols, b.size(), a.size(), trained.data.n_symbols);
  user_error("checkpoint '{}': its vocabulary differs from the one its config's data gives now ({} vs {} tokens)",
             path, b.size(), a.size());
}

}  // namespace

const std::vector<std::string>& data_override_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const auto& a : allowed()) k.push_back(a.key);
    return k;
  }();
  return keys;
}

CheckpointData checkpoint_data(LoadedModel& lm, const std::string& path, const std::vector<std::string>& sets) {
  CheckpointData out;
  if (sets.empty()) {
    out.config = lm.config;
    out.data = make_dataset(lm.config, &lm.tokenizer);
    if (out.data->tokenizer().tokens() != lm.tokenizer.tokens())
      user_error("checkpoint '{}': its vocabulary differs from the one its config's data gives now ({} vs {} tokens)",
                 path, lm.tokenizer.size(), out.data->tokenizer().size());
    return out;
  }
  for (const auto& s : sets) check_key(s);
  Config cfg = load_config_text(dump_config(lm.config), fmt::format("checkpoint '{}'", path), sets);
  if (cfg.data.task == "parallel") {  // new files: a TSV file or two files replace the trained ones
    auto given = [&](const char* key) {
      return std::any_of(sets.begin(), sets.end(), [&](const std::string& s) { return key_of(s) == key; });
    };
    if ((given("data.src_path") || given("data.tgt_path")) && !given("data.path")) cfg.data.path.clear();
    if (given("data.path") && !given("data.src_path") && !given("data.tgt_path"))
      cfg.data.src_path.clear(), cfg.data.tgt_path.clear();
  }
  const Config& trained = lm.config;
  const std::vector<std::string> reads = keys_read(cfg);
  for (const auto& s : sets) {
    const std::string key = key_of(s);
    if (std::find(reads.begin(), reads.end(), key) == reads.end())
      user_error("--set {}: data.task {} does not read '{}'; the keys it reads: {}", s, cfg.data.task, key,
                 fmt::join(reads, ", "));
    const KeyInfo* k = find_allowed(key);
    auto it = std::find_if(out.overrides.begin(), out.overrides.end(), [&](const DataOverride& o) { return o.key == key; });
    if (it == out.overrides.end()) out.overrides.push_back({key, k->get(trained.data), k->get(cfg.data)});
  }
  if (cfg.data.val_fraction > trained.data.val_fraction)
    out.notes.push_back(fmt::format("data.val_fraction {} is above the {} trained with: part of the data now held "
                                    "out for evaluation was training data",
                                    cfg.data.val_fraction, trained.data.val_fraction));
  const std::string kind = option_name(cfg.model.kind);
  try {
    if (cfg.data.task == "text") {
      // the checkpoint's tokenizer reads the (new) file; rows stay model.block_size long
      try {
        out.data = std::make_unique<TextDataset>(read_data_file(cfg.data.path), cfg.data.val_fraction,
                                                 cfg.model.block_size, &lm.tokenizer, kind, cfg.data.mask_prob);
      } catch (const ConfigKeyError&) {
        throw;
      } catch (const UserError& e) {  // name the file (the dataset was made from its text in memory)
        std::string what = e.what();
        const std::string anonymous = "text (in-memory text): ";
        if (what.rfind(anonymous, 0) == 0) what = what.substr(anonymous.size());
        user_error("data.path '{}': {}", cfg.data.path, what);
      }
    } else {
      // no block_size check here: the model's own limit is checked below, with its own words
      // parallel: the checkpoint's tokenizer reads the (new) files; a byte it lacks is <unk> (chars)
      TaskOptions o = task_options(cfg);
      if (cfg.data.task == "parallel") o.given_tokenizer = std::make_shared<const Tokenizer>(lm.tokenizer);
      out.data = std::make_unique<TaskDataset>(o, kind, INT_MAX / 4);
    }
  } catch (const ConfigKeyError& e) {
    config_error(cfg, e.keys, e.what());
  }
  check_vocabulary(cfg, trained, lm.tokenizer, out.data->tokenizer(), path);
  if (cfg.data.task == "parallel")  // which pairs were read, and how many bytes became <unk>
    out.notes.push_back("data: " + out.data->describe());
  if (const TaskDataset* task = out.data->task()) {
    const int need = std::max(task->batch_T(), task->batch_S());
    const int limit = lm.model->position_limit();
    if (limit > 0 && need > limit) {
      std::vector<std::string> changed;
      for (const auto& o : out.overrides)
        if (o.key != "data.n_val" && o.key != "data.val_fraction") changed.push_back(o.key + " " + o.value);
      user_error("{} needs rows of {} tokens; this checkpoint's {} positions hold {} (model.block_size); RoPE and "
                 "ALiBi have no such limit", fmt::join(changed, ", "), need, option_name(cfg.model.positions), limit);
    }
    if (need > cfg.model.block_size) {
      lm.model->set_context(need);
      cfg.model.block_size = need;
    }
  }
  out.config = std::move(cfg);
  return out;
}

}  // namespace attnlab
