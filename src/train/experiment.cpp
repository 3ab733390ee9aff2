// Experiment files: parsing, grid expansion, validation, and the results tables
// (results.csv, results.md, experiment.json). The format is described in experiment.h and in
// docs/experiments.md ("Running experiments"); running the cells is experiment_run.cpp, the
// attention measurements experiment_measure.cpp.
#include "train/experiment.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "attention/attention.h"
#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "train/bench.h"
#include "train/checkpoint.h"
#include "train/experiment_internal.h"
#include "train/experiment_kinds.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;

namespace {

std::string where(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return file;
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

std::string describe_node(const YAML::Node& n) {
  if (n.IsScalar()) return "'" + n.Scalar() + "'";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "nothing";
}

// Every key the config schema knows.
const std::set<std::string>& config_key_set() {
  static const std::set<std::string> keys = [] {
    std::set<std::string> s;
    for (const auto& k : config_keys()) s.insert(k.key);
    return s;
  }();
  return keys;
}

// Measurement outputs and the measurement that produces each.
const std::map<std::string, std::string>& measurement_outputs() {
  static const std::map<std::string, std::string> m = {{"mirror_weight", "mirror_weight"},
                                                       {"mirror_layer", "mirror_weight"},
                                                       {"answer_mass", "recall_mass"},
                                                       {"noise_mass", "recall_mass"},
                                                       {"answer_share", "recall_mass"},
                                                       {"noise_share", "recall_mass"},
                                                       {"retrieval_layer", "recall_mass"},
                                                       {"cache_values", "decode"},
                                                       {"decode_ms_per_token", "decode"}};
  return m;
}

std::string measurement_names() {
  std::string s;
  for (const auto& [k, v] : measurement_outputs()) s += (s.empty() ? "" : ", ") + k;
  return s;
}

std::string scalar(const std::string& file, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) user_error("{}: key '{}': expected a single value, got {}", where(file, n), key, describe_node(n));
  return n.Scalar();
}

std::vector<std::string> scalar_list(const std::string& file, const YAML::Node& n, const std::string& key) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& e : n) out.push_back(scalar(file, e, key));
  } else {
    user_error("{}: key '{}': expected a list of values, got {}", where(file, n), key, describe_node(n));
  }
  if (out.empty()) user_error("{}: key '{}': expected at least one value, got an empty list", where(file, n), key);
  return out;
}

void check_config_key(const std::string& file, const YAML::Node& at, const std::string& section,
                      const std::string& key) {
  if (config_key_set().count(key)) return;
  // the nearest known key by edit distance, as a hint
  auto dist = [](const std::string& a, const std::string& b) {
    std::vector<size_t> d(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++) d[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
      size_t prev = d[0];
      d[0] = i;
      for (size_t j = 1; j <= b.size(); j++) {
        const size_t cur = d[j];
        d[j] = std::min({d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
        prev = cur;
      }
    }
    return d[b.size()];
  };
  std::string best;
  size_t bd = 4;
  for (const auto& k : config_key_set())
    if (dist(key, k) < bd) bd = dist(key, k), best = k;
  user_error("{}: {}: unknown config key '{}'{}", where(file, at), section, key,
             best.empty() ? std::string("") : fmt::format(" (did you mean '{}'?)", best));
}

// "loss@400" -> ("loss", 400); "loss" -> ("loss", -1)
std::pair<std::string, int> split_metric(const std::string& file, const std::string& m) {
  const auto at = m.find('@');
  if (at == std::string::npos) return {m, -1};
  const std::string step = m.substr(at + 1);
  char* end = nullptr;
  const long s = std::strtol(step.c_str(), &end, 10);
  if (step.empty() || *end != '\0' || s < 1)
    user_error("{}: metrics: '{}': expected NAME@STEP with a positive step, got step '{}'", file, m, step);
  return {m.substr(0, at), int(s)};
}

std::string sanitize(const std::string& v) {
  std::string s;
  for (char c : v) s += (std::isalnum(uint8_t(c)) || c == '.' || c == '-' || c == '+' || c == '_') ? c : '-';
  return s.empty() ? "-" : s;
}

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

// `decode: {context: N, tokens: N, repeats: N}` (each optional, positive integers).
void read_decode_settings(const std::string& file, const YAML::Node& d, Experiment& exp) {
  if (!d.IsMap()) user_error("{}: key 'decode': expected a mapping {{context, tokens, repeats}}, got {}", where(file, d),
                             describe_node(d));
  for (const auto& kv : d) {
    const std::string k = kv.first.Scalar();
    int* dst = k == "context" ? &exp.decode_context : k == "tokens" ? &exp.decode_tokens
               : k == "repeats" ? &exp.decode_repeats : nullptr;
    if (!dst) user_error("{}: decode: unknown key '{}' (expected context, tokens, repeats)", where(file, kv.first), k);
    const std::string v = scalar(file, kv.second, "decode." + k);
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > 1048576)
      user_error("{}: key 'decode.{}': expected a positive integer, got '{}'", where(file, kv.second), k, v);
    *dst = int(n);
  }
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

std::string cell_label(const ExperimentCell& c) {
  std::string s;
  for (const auto& [k, v] : c.values) s += (s.empty() ? "" : ", ") + k + "=" + v;
  return s.empty() ? "base config" : s;
}

}  // namespace

bool Experiment::needs(const std::string& measurement) const {
  for (const auto& m : measure)
    if (measurement_outputs().at(m) == measurement) return true;
  return false;
}

std::string experiment_cell_label(const ExperimentCell& c) { return cell_label(c); }

Experiment load_experiment(const std::string& path, const ExperimentOptions& opt) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read experiment file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(ss.str());
  } catch (const YAML::ParserException& e) {
    user_error("{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (!root.IsMap()) user_error("{}: expected a mapping with the keys experiment, base, grid, metrics", path);
  static const std::vector<std::string> allowed = {"experiment", "run",     "base",    "set",
                                                   "grid",       "tie",     "metrics", "measure",
                                                   "measure_examples", "table", "plot", "summary", "decode"};
  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      if (config_key_set().count(k) || k == "model" || k == "data" || k == "train" || k == "sample")
        user_error("{}: '{}' is a config key: an experiment file names a base config (`base:`) and changes it "
                   "with `set:` or `grid:`",
                   where(path, kv.first), k);
      user_error("{}: unknown key '{}' (an experiment file has: {})", where(path, kv.first), k,
                 fmt::join(allowed, ", "));
    }
  }
  Experiment exp;
  exp.file = path;
  if (!root["experiment"]) user_error("{}: key 'experiment' (the experiment's name) is missing", path);
  exp.name = scalar(path, root["experiment"], "experiment");
  if (exp.name.empty() || sanitize(exp.name) != exp.name || exp.name[0] == '.')
    user_error("{}: key 'experiment': expected a name of letters, digits, '.', '-', '_', got '{}'",
               where(path, root["experiment"]), exp.name);
  // ---- run: the cell kind ----
  const CellKind* kind = nullptr;
  if (const YAML::Node r = root["run"]) {
    exp.run = scalar(path, r, "run");
    if (exp.run != "train") {
      kind = find_cell_kind(exp.run);
      if (!kind) {
        std::vector<std::string> names{"train"};
        for (const auto& k : cell_kinds()) names.push_back(k.name);
        user_error("{}: key 'run': unknown cell kind '{}' (known: {})", where(path, r), exp.run, fmt::join(names, ", "));
      }
    }
  }
  auto param_list = [&]() {
    std::vector<std::string> names;
    for (const auto& p : kind->params) names.push_back(p.key);
    return fmt::format("{}", fmt::join(names, ", "));
  };
  // a key of set / grid / tie: a config key (train) or a parameter of the kind
  auto check_key = [&](const YAML::Node& at, const std::string& section, const std::string& key) {
    if (!kind) return check_config_key(path, at, section, key);
    if (!find_kind_param(*kind, key))
      user_error("{}: {}: unknown parameter '{}' of run: {} (its parameters: {})", where(path, at), section, key,
                 exp.run, param_list());
  };
  if (kind) {
    for (const char* k : {"base", "measure", "measure_examples"})
      if (root[k])
        user_error("{}: key '{}' belongs to training experiments; run: {} computes its figures without a model",
                   where(path, root[k]), k, exp.run);
  } else {
    if (!root["base"]) user_error("{}: key 'base' (the base config, relative to this file) is missing", path);
    const std::string b = scalar(path, root["base"], "base");
    const fs::path p = fs::path(b).is_absolute() ? fs::path(b) : fs::path(path).parent_path() / b;
    exp.base = p.lexically_normal().string();
    std::error_code ec;
    if (!fs::is_regular_file(exp.base, ec))
      user_error("{}: key 'base': the base config '{}' does not exist (a path relative to the experiment file)",
                 where(path, root["base"]), exp.base);
  }
  // ---- set: a list of key=value or a mapping ----
  std::vector<std::string> sets;
  if (const YAML::Node s = root["set"]) {
    if (s.IsMap()) {
      for (const auto& kv : s) {
        check_key(kv.first, "set", kv.first.Scalar());
        sets.push_back(kv.first.Scalar() + "=" + scalar(path, kv.second, "set." + kv.first.Scalar()));
      }
    } else {
      for (const auto& e : scalar_list(path, s, "set")) {
        const auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0)
          user_error("{}: key 'set': expected key=value, got '{}'", where(path, s), e);
        check_key(s, "set", e.substr(0, eq));
        sets.push_back(e);
      }
    }
  }
  for (const auto& e : opt.sets) {
    const auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0) user_error("--set {}: expected key=value (e.g. --set train.steps=100)", e);
    if (kind && !find_kind_param(*kind, e.substr(0, eq)))
      user_error("--set {}: unknown parameter '{}' of run: {} (its parameters: {})", e, e.substr(0, eq), exp.run,
                 param_list());
    if (!kind && !config_key_set().count(e.substr(0, eq))) user_error("--set {}: unknown config key '{}'", e, e.substr(0, eq));
    sets.push_back(e);
  }
  // ---- grid: one mapping, or a list of mappings (their products concatenated) ----
  std::vector<std::vector<std::pair<std::string, std::string>>> combos;
  std::vector<YAML::Node> blocks;
  if (const YAML::Node g = root["grid"]) {
    if (g.IsMap()) blocks.push_back(g);
    else if (g.IsSequence()) {
      for (const auto& b : g) {
        if (!b.IsMap()) user_error("{}: key 'grid': expected mappings of key: [values], got {}", where(path, b),
                                   describe_node(b));
        blocks.push_back(b);
      }
    } else if (!g.IsNull()) {
      user_error("{}: key 'grid': expected a mapping of config key: [values], got {}", where(path, g),
                 describe_node(g));
    }
  }
  if (blocks.empty()) combos.push_back({});
  for (const auto& b : blocks) {
    std::vector<std::pair<std::string, std::vector<std::string>>> axes;
    for (const auto& kv : b) {
      const std::string k = kv.first.Scalar();
      check_key(kv.first, "grid", k);
      axes.push_back({k, scalar_list(path, kv.second, "grid." + k)});
      if (std::find(exp.grid_keys.begin(), exp.grid_keys.end(), k) == exp.grid_keys.end()) exp.grid_keys.push_back(k);
    }
    // cartesian product, the first key outermost
    std::vector<std::pair<std::string, std::string>> cur;
    std::function<void(size_t)> rec = [&](size_t a) {
      if (a == axes.size()) {
        combos.push_back(cur);
        return;
      }
      for (const auto& v : axes[a].second) {
        cur.push_back({axes[a].first, v});
        rec(a + 1);
        cur.pop_back();
      }
    };
    rec(0);
  }
  for (const auto& s : sets) {
    const std::string k = s.substr(0, s.find('='));
    if (std::find(exp.grid_keys.begin(), exp.grid_keys.end(), k) != exp.grid_keys.end())
      user_error("{}: '{}' is both set for every cell ('{}') and a grid key; drop one", path, k, s);
  }
  // ---- tie ----
  std::vector<std::pair<std::string, std::string>> ties;
  if (const YAML::Node t = root["tie"]) {
    if (!t.IsMap()) user_error("{}: key 'tie': expected a mapping key: grid key, got {}", where(path, t), describe_node(t));
    for (const auto& kv : t) {
      const std::string k = kv.first.Scalar(), src = scalar(path, kv.second, "tie." + k);
      check_key(kv.first, "tie", k);
      if (std::find(exp.grid_keys.begin(), exp.grid_keys.end(), src) == exp.grid_keys.end())
        user_error("{}: tie: '{}' takes the value of '{}', which is not a grid key (grid keys: {})",
                   where(path, kv.second), k, src, fmt::join(exp.grid_keys, ", "));
      if (std::find(exp.grid_keys.begin(), exp.grid_keys.end(), k) != exp.grid_keys.end())
        user_error("{}: tie: '{}' is a grid key itself; a tied key must not be in the grid", where(path, kv.first), k);
      ties.push_back({k, src});
    }
  }
  // ---- metrics, measure ----
  if (!root["metrics"]) user_error("{}: key 'metrics' (the columns of the results table) is missing", path);
  exp.metrics = scalar_list(path, root["metrics"], "metrics");
  if (kind)
    for (const auto& m : exp.metrics)
      if (std::find(kind->figures.begin(), kind->figures.end(), m) == kind->figures.end())
        user_error("{}: metrics: '{}' is not a figure of run: {} (its figures: {})", where(path, root["metrics"]), m,
                   exp.run, fmt::join(kind->figures, ", "));
  // a training cell's metrics: task metrics, NAME@STEP, measurements
  for (const auto& m : kind ? std::vector<std::string>{} : exp.metrics) {
    const auto [name, step] = split_metric(path, m);
    if (measurement_outputs().count(name)) {
      if (step >= 0)
        user_error("{}: metrics: '{}': measurements are taken from the final checkpoint only; drop '@{}'",
                   where(path, root["metrics"]), m, step);
      if (std::find(exp.measure.begin(), exp.measure.end(), name) == exp.measure.end()) exp.measure.push_back(name);
    }
  }
  if (const YAML::Node m = root["measure"]) {
    for (const auto& name : scalar_list(path, m, "measure")) {
      if (!measurement_outputs().count(name))
        user_error("{}: measure: unknown measurement '{}' (known: {})", where(path, m), name, measurement_names());
      if (std::find(exp.measure.begin(), exp.measure.end(), name) == exp.measure.end()) exp.measure.push_back(name);
    }
  }
  if (const YAML::Node m = root["measure_examples"]) {
    const std::string v = scalar(path, m, "measure_examples");
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > 100000)
      user_error("{}: key 'measure_examples': expected a positive integer, got '{}'", where(path, m), v);
    exp.measure_examples = int(n);
  }
  if (const YAML::Node d = root["decode"]) read_decode_settings(path, d, exp);
  auto is_grid_key = [&](const std::string& k) {
    return std::find(exp.grid_keys.begin(), exp.grid_keys.end(), k) != exp.grid_keys.end();
  };
  auto is_column = [&](const std::string& k) {
    return k == "seconds" || std::find(exp.metrics.begin(), exp.metrics.end(), k) != exp.metrics.end();
  };
  auto get_key = [&](const YAML::Node& map, const std::string& section, const std::string& key, bool required,
                     bool grid) -> std::string {
    const YAML::Node v = map[key];
    if (!v) {
      if (required) user_error("{}: {}: key '{}' is missing", where(path, map), section, key);
      return "";
    }
    const std::string s = scalar(path, v, section + "." + key);
    if (grid && !is_grid_key(s))
      user_error("{}: {}.{}: '{}' is not a grid key (grid keys: {})", where(path, v), section, key, s,
                 exp.grid_keys.empty() ? std::string("none") : fmt::format("{}", fmt::join(exp.grid_keys, ", ")));
    if (!grid && !is_column(s))
      user_error("{}: {}.{}: '{}' is not a column of the table (metrics: {}, or seconds)", where(path, v), section,
                 key, s, fmt::join(exp.metrics, ", "));
    return s;
  };
  auto check_keys = [&](const YAML::Node& map, const std::string& section, const std::vector<std::string>& keys) {
    if (!map.IsMap()) user_error("{}: key '{}': expected a mapping, got {}", where(path, map), section, describe_node(map));
    for (const auto& kv : map)
      if (std::find(keys.begin(), keys.end(), kv.first.Scalar()) == keys.end())
        user_error("{}: {}: unknown key '{}' (expected {})", where(path, kv.first), section, kv.first.Scalar(),
                   fmt::join(keys, ", "));
  };
  if (const YAML::Node t = root["table"]) {
    check_keys(t, "table", {"rows", "cols", "value"});
    exp.table = ExperimentTable{get_key(t, "table", "rows", true, true), get_key(t, "table", "cols", true, true),
                                get_key(t, "table", "value", true, false)};
  }
  if (const YAML::Node p = root["plot"]) {
    std::vector<YAML::Node> ps;
    if (p.IsSequence())
      for (const auto& e : p) ps.push_back(e);
    else
      ps.push_back(p);
    for (const auto& e : ps) {
      check_keys(e, "plot", {"x", "y", "series", "log"});
      const YAML::Node xn = e["x"];
      if (xn && xn.IsScalar() && xn.Scalar() == "step") {
        // learning curves: y is a metric name whose NAME@STEP columns give the points
        if (!e["y"]) user_error("{}: plot: key 'y' is missing", where(path, e));
        if (e["log"]) user_error("{}: plot.log: not available with x: step", where(path, e["log"]));
        const std::string y = scalar(path, e["y"], "plot.y");
        const auto n = std::count_if(exp.metrics.begin(), exp.metrics.end(),
                                     [&](const std::string& m) { return m.rfind(y + "@", 0) == 0; });
        if (n < 2)
          user_error("{}: plot.y: x 'step' plots the columns {}@STEP, and the metrics have {} of them (at least 2 "
                     "needed; metrics: {})",
                     where(path, e["y"]), y, n, fmt::join(exp.metrics, ", "));
        exp.plots.push_back({"step", y, get_key(e, "plot", "series", false, true)});
        continue;
      }
      ExperimentPlot pl{get_key(e, "plot", "x", true, true), get_key(e, "plot", "y", true, false),
                        get_key(e, "plot", "series", false, true)};
      if (const YAML::Node l = e["log"]) {
        const std::string v = scalar(path, l, "plot.log");
        if (v != "true" && v != "false")
          user_error("{}: plot.log: expected true (log-log axes) or false, got '{}'", where(path, l), v);
        pl.log = v == "true";
      }
      exp.plots.push_back(pl);
    }
  }
  // ---- summary: slopes over a numeric grid key, and checks ----
  if (const YAML::Node sm = root["summary"]) {
    check_keys(sm, "summary", {"x", "series", "slopes", "checks"});
    ExperimentSummary su;
    su.x = get_key(sm, "summary", "x", true, true);
    su.series = get_key(sm, "summary", "series", false, true);
    auto add_slope = [&](const std::string& m) {
      if (std::find(su.slopes.begin(), su.slopes.end(), m) == su.slopes.end()) su.slopes.push_back(m);
    };
    if (const YAML::Node sl = sm["slopes"])
      for (const auto& m : scalar_list(path, sl, "summary.slopes")) {
        if (!is_column(m))
          user_error("{}: summary.slopes: '{}' is not a column of the table (metrics: {}, or seconds)", where(path, sl),
                     m, fmt::join(exp.metrics, ", "));
        add_slope(m);
      }
    if (const YAML::Node cs = sm["checks"]) {
      if (!cs.IsSequence())
        user_error("{}: summary.checks: expected a list of checks, got {}", where(path, cs), describe_node(cs));
      for (const auto& c : cs) {
        if (!c.IsMap()) user_error("{}: summary.checks: expected a mapping, got {}", where(path, c), describe_node(c));
        SummaryCheck ck;
        const bool slope = bool(c["slope"]), cross = bool(c["crossover"]);
        if (slope == cross)
          user_error("{}: summary.checks: a check has exactly one of 'slope: METRIC' or 'crossover: METRIC'",
                     where(path, c));
        ck.kind = slope ? "slope" : "crossover";
        check_keys(c, "summary.checks", slope ? std::vector<std::string>{"slope", "series", "min", "max"}
                                              : std::vector<std::string>{"crossover", "series", "below", "min", "max"});
        ck.metric = get_key(c, "summary.checks", ck.kind, true, false);
        if (c["series"]) ck.series = scalar(path, c["series"], "summary.checks.series");
        if (!ck.series.empty() && su.series.empty())
          user_error("{}: summary.checks: 'series: {}' needs summary.series (the grid key whose values it names)",
                     where(path, c["series"]), ck.series);
        if (slope && ck.series.empty() && !su.series.empty())
          user_error("{}: summary.checks: the slopes are per {}: say which with series: VALUE", where(path, c),
                     su.series);
        if (cross) {
          if (!c["below"] || su.series.empty() || ck.series.empty())
            user_error("{}: summary.checks: a crossover needs summary.series, and series and below (two of its values)",
                       where(path, c));
          ck.below = scalar(path, c["below"], "summary.checks.below");
        }
        for (const char* b : {"min", "max"})
          if (const YAML::Node v = c[b]) {
            const std::string t = scalar(path, v, std::string("summary.checks.") + b);
            char* end = nullptr;
            const double x = std::strtod(t.c_str(), &end);
            if (t.empty() || *end != '\0' || !std::isfinite(x))
              user_error("{}: summary.checks.{}: expected a number, got '{}'", where(path, v), b, t);
            (std::string(b) == "min" ? ck.min : ck.max) = x;
          }
        if (!ck.min && !ck.max) user_error("{}: summary.checks: a check needs min, max or both", where(path, c));
        if (slope) add_slope(ck.metric);
        // the series values must exist in the grid
        for (const std::string& v : {ck.series, ck.below}) {
          if (v.empty()) continue;
          bool found = false;
          for (const auto& combo : combos)
            for (const auto& [k, val] : combo) found |= k == su.series && val == v;
          if (!found)
            user_error("{}: summary.checks: '{}' is not a value of {} in the grid", where(path, c), v, su.series);
        }
        su.checks.push_back(ck);
      }
    }
    exp.summary = su;
  }
  // ---- cells: resolve and validate every config before anything runs ----
  const int cores = opt.cores > 0 ? opt.cores : std::max(1, int(std::thread::hardware_concurrency()));
  if (opt.jobs < 1) user_error("--jobs: expected a positive number of cells to run at once, got {}", opt.jobs);
  const int cap = std::max(1, cores / opt.jobs);
  exp.threads = cap;
  const auto shorts = short_names(exp.grid_keys);
  std::set<std::string> names;
  for (const auto& combo : combos) {
    ExperimentCell c;
    c.values = combo;
    c.overrides = sets;
    std::string name;
    for (const auto& [k, v] : combo) {
      c.overrides.push_back(k + "=" + v);
      name += (name.empty() ? "" : "_") + shorts.at(k) + "=" + sanitize(v);
    }
    for (const auto& tie : ties) {  // (clang 14 cannot capture a structured binding in the lambda)
      const std::string& src = tie.second;
      auto it = std::find_if(combo.begin(), combo.end(), [&](const auto& p) { return p.first == src; });
      if (it != combo.end()) c.overrides.push_back(tie.first + "=" + it->second);
    }
    c.name = name.empty() ? "base" : name;
    if (!names.insert(c.name).second)
      user_error("{}: grid: the cell ({}) appears twice; every combination must be unique", path, cell_label(c));
    if (kind) {
      std::vector<std::pair<std::string, std::string>> given;
      std::vector<std::string> cell_grid_keys;
      for (const auto& o : c.overrides) given.push_back({o.substr(0, o.find('=')), o.substr(o.find('=') + 1)});
      for (const auto& [k, v] : combo) cell_grid_keys.push_back(k);
      for (const auto& [k, src] : ties) cell_grid_keys.push_back(k);
      try {
        c.params = resolve_cell_params(*kind, given, cell_grid_keys, cap);
      } catch (const UserError& e) {
        user_error("{}: cell '{}' ({}): {}", path, c.name, cell_label(c), e.what());
      }
      c.identity = kind_cell_identity(*kind, c.params);
      c.threads = c.params.count("threads") ? std::atoi(c.params.at("threads").c_str()) : cap;
      exp.cells.push_back(std::move(c));
      continue;
    }
    try {
      c.config = load_config(exp.base, c.overrides);
      if (!is_grid_key("train.threads") && (c.config.train.threads <= 0 || c.config.train.threads > cap)) {
        c.overrides.push_back(fmt::format("train.threads={}", cap));
        c.config.train.threads = cap;
      }
      // the dataset checks the task against the model (lengths, block_size, vocabulary)
      const auto data = make_dataset(c.config);
      const auto* task = dynamic_cast<const TaskDataset*>(data.get());
      std::vector<std::string> task_metrics =
          task ? task->metrics() : std::vector<std::string>{"loss", "ppl", "token_acc"};
      const auto& tc = c.config.train;
      for (const auto& m : exp.metrics) {
        const auto [mname, step] = split_metric(path, m);
        if (measurement_outputs().count(mname)) continue;
        if (std::find(task_metrics.begin(), task_metrics.end(), mname) == task_metrics.end())
          user_error("metrics: '{}' is not a metric of data.task '{}' with model.kind '{}' (its metrics: {}; "
                     "measurements: {})",
                     m, c.config.data.task, option_name(c.config.model.kind), fmt::join(task_metrics, ", "), measurement_names());
        if (step > 0 && step != tc.steps && (tc.eval_interval <= 0 || step % tc.eval_interval != 0 || step > tc.steps))
          user_error("metrics: '{}': step {} is not an evaluation step (train.eval_interval = {}, train.steps = {})",
                     m, step, tc.eval_interval, tc.steps);
      }
      const std::string kind = option_name(c.config.model.kind), tname = c.config.data.task;
      if (exp.needs("mirror_weight") && (kind != "encoder_decoder" || tname != "reverse"))
        user_error("measurement mirror_weight needs model.kind encoder_decoder and data.task reverse, got {} on {}",
                   kind, tname);
      if (exp.needs("recall_mass") && (kind == "encoder_decoder" || (tname != "mqar" && tname != "needle")))
        user_error("measurements answer_mass / noise_mass need model.kind decoder or encoder and data.task mqar "
                   "or needle, got {} on {}",
                   kind, tname);
      if (exp.needs("decode")) check_decode_cell(exp, c.config);
    } catch (const UserError& e) {
      user_error("{}: cell '{}' ({}): {}", path, c.name, cell_label(c), e.what());
    }
    c.identity = cell_identity(c.config);
    c.threads = c.config.train.threads;
    exp.cells.push_back(std::move(c));
  }
  // a set key no cell reads (invariants: every check ignores it) is a mistake
  if (kind)
    for (const auto& s : sets) {
      const std::string k = s.substr(0, s.find('='));
      bool read = false;
      for (const auto& c : exp.cells) read |= c.params.count(k) > 0;
      if (!read && !exp.cells.empty())
        user_error("{}: set '{}': no cell reads '{}' (a parameter of check {} only)", path, s, k,
                   fmt::join(find_kind_param(*kind, k)->checks, ", "));
    }
  return exp;
}

std::string default_output_dir(const Experiment& exp) {
  return (fs::path("runs") / "experiments" / exp.name).string();
}

// ---- results ----

std::string cell_dir(const std::string& out_dir, const ExperimentCell& c) {
  return (fs::path(out_dir) / "cells" / c.name).string();
}

// The cell's config as YAML with train.threads zeroed: what identifies a cell's results.
std::string cell_identity(const Config& cfg) {
  Config c = cfg;
  c.train.threads = 0;
  return dump_config(c);
}

std::optional<json> read_done(const Experiment& exp, size_t index, const std::string& out_dir) {
  const ExperimentCell& c = exp.cells.at(index);
  const fs::path p = fs::path(cell_dir(out_dir, c)) / "done.json";
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  std::ifstream in(p);
  json j;
  try {
    in >> j;
  } catch (const json::exception&) {
    return std::nullopt;  // unreadable: the cell runs again
  }
  // attnlab wrote it, but it is a file on disk: one edited into other types is treated as
  // unreadable, so the readers below (metric_value, has_measurements) can rely on its shape
  auto typed = [&](const char* key, bool (json::*is)() const noexcept) { return !j.contains(key) || (j[key].*is)(); };
  if (!j.is_object() || !j.contains("config") || !j["config"].is_string() || j["config"] != c.identity ||
      !typed("seconds", &json::is_number) || !typed("steps", &json::is_number_integer) ||
      !typed("figures", &json::is_object) || !typed("val", &json::is_array) || !typed("measurements", &json::is_object))
    return std::nullopt;
  if (j.contains("measurements") && !(j["measurements"].contains("values") && j["measurements"]["values"].is_object()))
    return std::nullopt;
  if (j.contains("val"))
    for (const auto& row : j["val"])
      if (!row.is_object() || (row.contains("step") && !row["step"].is_number_integer())) return std::nullopt;
  return j;
}

bool cell_done(const Experiment& exp, size_t index, const std::string& out_dir) {
  return read_done(exp, index, out_dir).has_value();
}

// The value of metric column `m` for a done cell (nullopt: none).
std::optional<double> metric_value(const json& done, const std::string& m) {
  if (m == "seconds") return done.value("seconds", 0.0);
  if (done.contains("figures")) {  // a cell of a kind that does not train
    const json& f = done["figures"];
    if (f.contains(m) && f[m].is_number()) return f[m].get<double>();
    return std::nullopt;
  }
  const auto at = m.find('@');
  const std::string name = m.substr(0, at);
  if (measurement_outputs().count(name)) {
    if (!done.contains("measurements")) return std::nullopt;  // (const operator[] must not miss)
    const json& v = done["measurements"]["values"];
    if (v.contains(name) && v[name].is_number()) return v[name].get<double>();
    return std::nullopt;
  }
  const int step = at == std::string::npos ? done.value("steps", -1) : std::atoi(m.c_str() + at + 1);
  std::optional<double> out;
  if (!done.contains("val")) return out;
  for (const auto& row : done["val"])
    if (row.value("step", -1) == step && row.contains(name) && row[name].is_number()) out = row[name].get<double>();
  return out;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return fmt::format("{}", v);
  if (v == std::round(v) && std::fabs(v) < 1e6) return fmt::format("{}", (long long)v);
  if (std::fabs(v) >= 1e-3 && std::fabs(v) < 1e5) return fmt::format("{:.4f}", v);
  return fmt::format("{:.3e}", v);
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string md_field(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

std::string value_of(const ExperimentCell& c, const std::string& key) {
  for (const auto& [k, v] : c.values)
    if (k == key) return v;
  return "";
}

}  // namespace

double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  double sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0;
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    if (!(x[i] > 0.0) || !(y[i] > 0.0) || !std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
    m++;
  }
  const double den = m * sxx - sx * sx;
  if (m < 2 || !(std::fabs(den) > 1e-12 * std::max(1.0, m * sxx))) return std::nan("");
  return (m * sxy - sx * sy) / den;
}

std::optional<double> crossover_x(const std::vector<double>& x, const std::vector<double>& a,
                                  const std::vector<double>& b) {
  std::optional<double> from;
  for (size_t i = x.size(); i-- > 0;) {
    if (!(a.at(i) < b.at(i))) break;  // NaN compares false: not below
    from = x[i];
  }
  return from;
}

namespace {

// Per value of summary.series: the finished cells' (x, metric) points, x ascending, cells sharing
// an x averaged.
struct Curve {
  std::vector<double> x, y;
};
Curve curve_of(const Experiment& exp, const std::vector<std::optional<json>>& done, const std::string& metric,
               const std::string& series_value) {
  const ExperimentSummary& su = *exp.summary;
  std::map<double, std::pair<double, int>> acc;
  for (size_t i = 0; i < exp.cells.size(); i++) {
    if (!done[i]) continue;
    if (!su.series.empty() && value_of(exp.cells[i], su.series) != series_value) continue;
    const std::string xs = value_of(exp.cells[i], su.x);
    char* end = nullptr;
    const double x = std::strtod(xs.c_str(), &end);
    if (xs.empty() || *end != '\0') continue;
    const auto v = metric_value(*done[i], metric);
    if (!v || !std::isfinite(*v)) continue;
    acc[x].first += *v;
    acc[x].second++;
  }
  Curve c;
  for (const auto& [x, sn] : acc) c.x.push_back(x), c.y.push_back(sn.first / sn.second);
  return c;
}

std::vector<SummaryRow> summarize_done(const Experiment& exp, const std::vector<std::optional<json>>& done) {
  std::vector<SummaryRow> rows;
  if (!exp.summary) return rows;
  const ExperimentSummary& su = *exp.summary;
  std::vector<std::string> series{""};
  if (!su.series.empty()) {
    series.clear();
    for (const auto& c : exp.cells) {
      const std::string v = value_of(c, su.series);
      if (std::find(series.begin(), series.end(), v) == series.end()) series.push_back(v);
    }
  }
  auto slope_name = [](const std::string& m, const std::string& s) {
    return s.empty() ? fmt::format("slope({})", m) : fmt::format("slope({}, {})", m, s);
  };
  auto within = [](const SummaryCheck& ck, const std::optional<double>& v) {
    if (!v || !std::isfinite(*v)) return 0;
    return (!ck.min || *v >= *ck.min) && (!ck.max || *v <= *ck.max) ? 1 : 0;
  };
  for (const auto& m : su.slopes)
    for (const auto& s : series) {
      const Curve c = curve_of(exp, done, m, s);
      SummaryRow r;
      r.name = slope_name(m, s);
      const double k = loglog_slope(c.x, c.y);
      if (std::isfinite(k)) r.value = k;
      for (const auto& ck : su.checks)
        if (ck.kind == "slope" && ck.metric == m && ck.series == s) {
          r.min = ck.min, r.max = ck.max;
          r.pass = within(ck, r.value);
        }
      rows.push_back(r);
    }
  for (const auto& ck : su.checks) {
    if (ck.kind != "crossover") continue;
    const Curve a = curve_of(exp, done, ck.metric, ck.series), b = curve_of(exp, done, ck.metric, ck.below);
    // on the x both have
    std::vector<double> xs, ya, yb;
    for (size_t i = 0; i < a.x.size(); i++) {
      const auto it = std::find(b.x.begin(), b.x.end(), a.x[i]);
      if (it == b.x.end()) continue;
      xs.push_back(a.x[i]);
      ya.push_back(a.y[i]);
      yb.push_back(b.y[size_t(it - b.x.begin())]);
    }
    SummaryRow r;
    r.name = fmt::format("crossover({}, {} < {})", ck.metric, ck.series, ck.below);
    r.value = crossover_x(xs, ya, yb);
    r.min = ck.min, r.max = ck.max;
    r.pass = within(ck, r.value);
    rows.push_back(r);
  }
  return rows;
}

std::vector<std::optional<json>> read_all_done(const Experiment& exp, const std::string& out_dir) {
  std::vector<std::optional<json>> done(exp.cells.size());
  for (size_t i = 0; i < exp.cells.size(); i++) done[i] = read_done(exp, i, out_dir);
  return done;
}

std::string bound(const std::optional<double>& v) { return v ? format_number(*v) : ""; }

}  // namespace

std::vector<SummaryRow> summarize(const Experiment& exp, const std::string& out_dir) {
  return summarize_done(exp, read_all_done(exp, out_dir));
}

std::vector<std::string> failed_checks(const Experiment& exp, const std::string& out_dir) {
  std::vector<std::string> out;
  const auto done = read_all_done(exp, out_dir);
  for (size_t i = 0; i < exp.cells.size(); i++) {
    if (!done[i]) {
      out.push_back(fmt::format("cell {} ({}) has not finished", exp.cells[i].name, cell_label(exp.cells[i])));
      continue;
    }
    if (const auto p = metric_value(*done[i], "pass"); p && *p != 1.0)
      out.push_back(fmt::format("cell {} ({}): pass = {}", exp.cells[i].name, cell_label(exp.cells[i]), *p));
  }
  for (const auto& r : summarize_done(exp, done))
    if (r.pass == 0)
      out.push_back(fmt::format("{} = {} outside [{}, {}]", r.name, r.value ? format_number(*r.value) : "none",
                                r.min ? format_number(*r.min) : "-inf", r.max ? format_number(*r.max) : "inf"));
  return out;
}

std::string plot_file_name(const Experiment& exp, size_t i) {
  if (exp.plots.size() == 1) return exp.name + ".png";
  return fmt::format("{}_{}_{}.png", exp.name, i + 1, sanitize(exp.plots[i].y));
}

int write_results(const Experiment& exp, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) user_error("cannot create the experiment directory '{}': {}", out_dir, ec.message());
  const std::vector<std::optional<json>> done = read_all_done(exp, out_dir);
  int n_done = 0;
  for (const auto& d : done) n_done += d.has_value();
  std::vector<std::string> cols = exp.metrics;
  cols.push_back("seconds");
  // results.csv
  std::string csv;
  {
    std::vector<std::string> head;
    for (const auto& k : exp.grid_keys) head.push_back(csv_field(k));
    for (const auto& m : cols) head.push_back(csv_field(m));
    csv += fmt::format("{}\n", fmt::join(head, ","));
  }
  for (size_t i = 0; i < exp.cells.size(); i++) {
    if (!done[i]) continue;
    std::vector<std::string> f;
    for (const auto& k : exp.grid_keys) f.push_back(csv_field(value_of(exp.cells[i], k)));
    for (const auto& m : cols) {
      const auto v = metric_value(*done[i], m);
      f.push_back(v ? fmt::format("{}", *v) : "");
    }
    csv += fmt::format("{}\n", fmt::join(f, ","));
  }
  write_file_atomic((fs::path(out_dir) / "results.csv").string(), csv);
  // results.md
  std::string md = fmt::format("# {}\n\n", exp.name);
  if (exp.run == "train")
    md += fmt::format("Experiment file `{}`, base config `{}`; {} of {} cells finished.\n\n", exp.file, exp.base,
                      n_done, exp.cells.size());
  else
    md += fmt::format("Experiment file `{}`, run: {}; {} of {} cells finished.\n\n", exp.file, exp.run, n_done,
                      exp.cells.size());
  {
    std::vector<std::string> head, rule;
    for (const auto& k : exp.grid_keys) head.push_back(md_field(k));
    for (const auto& m : cols) head.push_back(md_field(m));
    for (size_t i = 0; i < head.size(); i++) rule.push_back(i < exp.grid_keys.size() ? "---" : "---:");
    md += fmt::format("| {} |\n|{}|\n", fmt::join(head, " | "), fmt::join(rule, "|"));
    for (size_t i = 0; i < exp.cells.size(); i++) {
      if (!done[i]) continue;
      std::vector<std::string> f;
      for (const auto& k : exp.grid_keys) f.push_back(md_field(value_of(exp.cells[i], k)));
      for (const auto& m : cols) {
        const auto v = metric_value(*done[i], m);
        f.push_back(v ? format_number(*v) : "–");
      }
      md += fmt::format("| {} |\n", fmt::join(f, " | "));
    }
  }
  if (exp.table) {
    const ExperimentTable& t = *exp.table;
    std::vector<std::string> rows, colv;
    for (const auto& c : exp.cells) {
      const std::string r = value_of(c, t.rows), k = value_of(c, t.cols);
      if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
      if (std::find(colv.begin(), colv.end(), k) == colv.end()) colv.push_back(k);
    }
    md += fmt::format("\n## {} by {} and {}\n\n", t.value, t.rows, t.cols);
    std::vector<std::string> head{md_field(t.rows) + " \\ " + md_field(t.cols)}, rule{"---"};
    for (const auto& k : colv) head.push_back(md_field(k.empty() ? "(base)" : k)), rule.push_back("---:");
    md += fmt::format("| {} |\n|{}|\n", fmt::join(head, " | "), fmt::join(rule, "|"));
    int max_n = 0;
    for (const auto& r : rows) {
      std::vector<std::string> f{md_field(r.empty() ? "(base)" : r)};
      for (const auto& k : colv) {
        double sum = 0.0;
        int n = 0;
        for (size_t i = 0; i < exp.cells.size(); i++) {
          if (!done[i] || value_of(exp.cells[i], t.rows) != r || value_of(exp.cells[i], t.cols) != k) continue;
          if (const auto v = metric_value(*done[i], t.value)) sum += *v, n++;
        }
        max_n = std::max(max_n, n);
        f.push_back(n ? format_number(sum / n) : "–");
      }
      md += fmt::format("| {} |\n", fmt::join(f, " | "));
    }
    if (max_n > 1)
      md += fmt::format("\nEach entry is the mean over the finished cells that share its row and column (up to {}).\n",
                        max_n);
  }
  if (exp.summary) {
    const auto rows = summarize_done(exp, done);
    const ExperimentSummary& su = *exp.summary;
    md += fmt::format("\n## Summary\n\nLog-log least-squares slopes over {}{} (finished cells); a crossover is the "
                      "smallest {} from which the first series stays below the second.\n\n",
                      su.x, su.series.empty() ? "" : ", per " + su.series, su.x);
    md += "| | value | min | max | pass |\n|---|---:|---:|---:|---|\n";
    std::string scsv = "name,value,min,max,pass\n";
    for (const auto& r : rows) {
      const std::string pass = r.pass < 0 ? "" : (r.pass ? "pass" : "FAIL");
      md += fmt::format("| {} | {} | {} | {} | {} |\n", md_field(r.name), r.value ? format_number(*r.value) : "–",
                        bound(r.min), bound(r.max), pass);
      scsv += fmt::format("{},{},{},{},{}\n", csv_field(r.name), r.value ? fmt::format("{}", *r.value) : "",
                          r.min ? fmt::format("{}", *r.min) : "", r.max ? fmt::format("{}", *r.max) : "",
                          r.pass < 0 ? "" : std::to_string(r.pass));
    }
    write_file_atomic((fs::path(out_dir) / "summary.csv").string(), scsv);
  }
  if (!exp.plots.empty()) {
    md += "\n";
    for (size_t i = 0; i < exp.plots.size(); i++) md += fmt::format("![{}]({})\n", exp.plots[i].y, plot_file_name(exp, i));
  }
  write_file_atomic((fs::path(out_dir) / "results.md").string(), md);
  // experiment.json: what the plot script needs
  json plots = json::array();
  for (size_t i = 0; i < exp.plots.size(); i++)
    plots.push_back({{"x", exp.plots[i].x},
                     {"y", exp.plots[i].y},
                     {"series", exp.plots[i].series},
                     {"log", exp.plots[i].log},
                     {"file", plot_file_name(exp, i)}});
  json ej = {{"experiment", exp.name}, {"run", exp.run}, {"file", exp.file}, {"base", exp.base}, {"grid_keys", exp.grid_keys},
             {"metrics", exp.metrics}, {"cells", exp.cells.size()}, {"finished", n_done}, {"plots", plots}};
  write_file_atomic((fs::path(out_dir) / "experiment.json").string(), ej.dump(2) + "\n");
  return n_done;
}

}  // namespace attnlab
