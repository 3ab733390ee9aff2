// The cells of an experiment: the grid's combinations with `set`, --set and `tie` applied, each
// checked before anything runs (a training cell's config loads and its dataset builds; a cell of
// another kind resolves its parameters).
#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "attention/attention.h"
#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "experiment/decode.h"
#include "experiment/internal.h"
#include "experiment/reader.h"

namespace attnlab {

namespace {

// The shortest dotted suffix of each key that no other key shares.
std::map<std::string, std::string> short_names(const std::vector<std::string>& keys) {
  std::map<std::string, std::string> out;
  for (const auto& k : keys) {
    std::vector<std::string> parts;
    std::stringstream ss(k);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    for (size_t n = 1; n <= parts.size(); n++) {
      std::string suf;
      for (size_t i = parts.size() - n; i < parts.size(); i++) suf += (suf.empty() ? "" : ".") + parts[i];
      bool unique = true;
      for (const auto& o : keys)
        if (o != k && (o == suf || (o.size() > suf.size() && o.compare(o.size() - suf.size() - 1, suf.size() + 1,
                                                                         "." + suf) == 0)))
          unique = false;
      if (unique || n == parts.size()) {
        out[k] = suf;
        break;
      }
    }
  }
  return out;
}

// The decode measurement needs a decoder whose self-attention has a cache, and room for
// context + tokens positions (rope/alibi/none: the model is rebuilt with that block_size).
void check_decode_cell(const Experiment& exp, const Config& cfg) {
  const ModelConfig& m = cfg.model;
  if (m.kind != ModelConfig::Kind::decoder)
    user_error("measurements cache_values / decode_ms_per_token need model.kind decoder (cached decoding of a "
               "causal LM), got {}",
               option_name(m.kind));
  const auto& reg = attention_registry();
  const auto it = reg.find(m.decoder_self.type);
  if (it != reg.end() && !it->second.info.cache)
    user_error("measurements cache_values / decode_ms_per_token need an attention type with an incremental cache; "
               "'{}' has none",
               m.decoder_self.type);
  const int need = exp.decode_context + exp.decode_tokens;
  if (!block_size_is_free(m) && m.block_size < need)
    user_error("measurement decode: decode.context + decode.tokens = {} positions, but model.block_size is {} and "
               "model.positions '{}' fixes it (use rope, alibi or none, or a larger block_size)",
               need, m.block_size, option_name(m.positions));
}

// A training cell's metrics against its task, and its measurements against its model.
void check_train_cell(const FileReader& r, const Config& cfg) {
  const Experiment& exp = r.exp;
  const auto data = make_dataset(cfg);  // checks the task against the model (lengths, block_size, vocabulary)
  std::vector<std::string> task_metrics = data->metrics();
  const auto& tc = cfg.train;
  for (const auto& m : exp.metrics) {
    const auto [mname, step] = split_metric(r.path, m);
    if (!measurement_of(mname).empty()) continue;
    if (std::find(task_metrics.begin(), task_metrics.end(), mname) == task_metrics.end())
      user_error("metrics: '{}' is not a metric of data.task '{}' with model.kind '{}' (its metrics: {}; "
                 "measurements: {})",
                 m, cfg.data.task, option_name(cfg.model.kind), fmt::join(task_metrics, ", "), measurement_names());
    if (step > 0 && step != tc.steps && (tc.eval_interval <= 0 || step % tc.eval_interval != 0 || step > tc.steps))
      user_error("metrics: '{}': step {} is not an evaluation step (train.eval_interval = {}, train.steps = {})", m,
                 step, tc.eval_interval, tc.steps);
  }
  const std::string kind = option_name(cfg.model.kind), tname = cfg.data.task;
  if (exp.needs("mirror_weight") && (kind != "encoder_decoder" || tname != "reverse"))
    user_error("measurement mirror_weight needs model.kind encoder_decoder and data.task reverse, got {} on {}", kind,
               tname);
  if (exp.needs("recall_mass") && (kind == "encoder_decoder" || (tname != "mqar" && tname != "needle")))
    user_error("measurements answer_mass / noise_mass need model.kind decoder or encoder and data.task mqar "
               "or needle, got {} on {}",
               kind, tname);
  if (exp.needs("decode")) check_decode_cell(exp, cfg);
  if (exp.needs("bleu_by_length") && (!data->task() || data->task()->format() != TaskFormat::seq2seq))
    user_error("measurement bleu_by_length needs a seq2seq task (parallel, copy, reverse, ...), got data.task {}", tname);
}

// A training cell: its config from the base and the overrides, threads capped, checked.
void resolve_train_cell(const FileReader& r, ExperimentCell& c, int cap) {
  c.config = load_config(r.exp.base, c.overrides);
  if (!r.is_grid_key("train.threads") && (c.config.train.threads <= 0 || c.config.train.threads > cap)) {
    c.overrides.push_back(fmt::format("train.threads={}", cap));
    c.config.train.threads = cap;
  }
  check_train_cell(r, c.config);
  c.identity = cell_identity(c.config);
  c.threads = c.config.train.threads;
}

// A cell of a kind that computes figures: its parameters from the overrides and the defaults.
void resolve_kind_cell(const FileReader& r, ExperimentCell& c, const GridCombo& combo, int cap) {
  std::vector<std::pair<std::string, std::string>> given;
  std::vector<std::string> cell_grid_keys;
  for (const auto& o : c.overrides) given.push_back({o.substr(0, o.find('=')), o.substr(o.find('=') + 1)});
  for (const auto& [k, v] : combo) cell_grid_keys.push_back(k);
  for (const auto& [k, src] : r.ties) cell_grid_keys.push_back(k);
  c.params = resolve_cell_params(*r.kind, given, cell_grid_keys, cap);
  c.identity = kind_cell_identity(*r.kind, c.params);
  c.threads = c.params.count("threads") ? std::atoi(c.params.at("threads").c_str()) : cap;
}

}  // namespace

void make_cells(FileReader& r) {
  Experiment& exp = r.exp;
  const ExperimentOptions& opt = r.opt;
  const int cores = opt.cores > 0 ? opt.cores : std::max(1, int(std::thread::hardware_concurrency()));
  if (opt.jobs < 1) user_error("--jobs: expected a positive number of cells to run at once, got {}", opt.jobs);
  const int cap = std::max(1, cores / opt.jobs);
  exp.threads = cap;
  const auto shorts = short_names(exp.grid_keys);
  std::set<std::string> names;
  for (const auto& combo : r.combos) {
    ExperimentCell c;
    c.values = combo;
    c.overrides = r.sets;
    std::string name;
    for (const auto& [k, v] : combo) {
      c.overrides.push_back(k + "=" + v);
      name += (name.empty() ? "" : "_") + shorts.at(k) + "=" + sanitize(v);
    }
    for (const auto& tie : r.ties) {  // (clang 14 cannot capture a structured binding in the lambda)
      const std::string& src = tie.second;
      auto it = std::find_if(combo.begin(), combo.end(), [&](const auto& p) { return p.first == src; });
      if (it != combo.end()) c.overrides.push_back(tie.first + "=" + it->second);
    }
    c.name = name.empty() ? "base" : name;
    if (!names.insert(c.name).second)
      user_error("{}: grid: the cell ({}) appears twice; every combination must be unique", r.path,
                 experiment_cell_label(c));
    try {
      if (r.kind) resolve_kind_cell(r, c, combo, cap);
      else resolve_train_cell(r, c, cap);
    } catch (const UserError& e) {
      user_error("{}: cell '{}' ({}): {}", r.path, c.name, experiment_cell_label(c), e.what());
    }
    exp.cells.push_back(std::move(c));
  }
  // a set key no cell reads (invariants: every check ignores it) is a mistake
  if (r.kind)
    for (const auto& s : r.sets) {
      const std::string k = s.substr(0, s.find('='));
      bool read = false;
      for (const auto& c : exp.cells) read |= c.params.count(k) > 0;
      if (!read && !exp.cells.empty())
        user_error("{}: set '{}': no cell reads '{}' (a parameter of check {} only)", r.path, s, k,
                   fmt::join(find_kind_param(*r.kind, k)->checks, ", "));
    }
}

}  // namespace attnlab
