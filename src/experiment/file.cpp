// Reading an experiment file through a table of its top-level keys (file_keys below: the key,
// what it holds, whether it is required, and the reader that puts it into the Experiment), in the
// manner of the config schema. The grid becomes cells in cells.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "config/yaml_errors.h"
#include "core/error.h"
#include "core/suggest.h"
#include "experiment/internal.h"
#include "experiment/reader.h"
#include "train/eval_data.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

// A node as the experiment's messages show it: a scalar quoted.
std::string describe_node(const YAML::Node& n) { return n.IsScalar() ? "'" + n.Scalar() + "'" : scalar_text(n); }

// Every key the config schema knows, sorted.
const std::vector<std::string>& config_key_list() {
  static const std::vector<std::string> keys = [] {
    std::set<std::string> s;
    for (const auto& k : config_keys()) s.insert(k.key);
    return std::vector<std::string>(s.begin(), s.end());
  }();
  return keys;
}

bool is_config_key(const std::string& k) {
  return std::binary_search(config_key_list().begin(), config_key_list().end(), k);
}

void add_once(std::vector<std::string>& v, const std::string& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

// A positive integer up to `max` (measure_examples, decode.*).
int positive_int(const FileReader& r, const YAML::Node& n, const std::string& key, long max) {
  const std::string v = r.scalar(n, key);
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < 1 || x > max)
    user_error("{}: key '{}': expected a positive integer, got '{}'", r.where(n), key, v);
  return int(x);
}

// ---- the readers of the top-level keys (n is undefined when the file lacks the key) ----

void read_name(FileReader& r, const YAML::Node& n) {
  r.exp.name = r.scalar(n, "experiment");
  const std::string& name = r.exp.name;
  if (name.empty() || sanitize(name) != name || name[0] == '.')
    user_error("{}: key 'experiment': expected a name of letters, digits, '.', '-', '_', got '{}'", r.where(n), name);
}

void read_run(FileReader& r, const YAML::Node& n) {
  if (!n) return;
  r.exp.run = r.scalar(n, "run");
  if (r.exp.run == "train") return;
  r.kind = find_cell_kind(r.exp.run);
  if (!r.kind) {
    std::vector<std::string> names{"train"};
    for (const auto& k : cell_kinds()) names.push_back(k.name);
    user_error("{}: key 'run': unknown cell kind '{}' (known: {})", r.where(n), r.exp.run, fmt::join(names, ", "));
  }
  for (const char* k : {"base", "measure", "measure_examples", "bleu_by_length"})
    if (r.root[k])
      user_error("{}: key '{}' belongs to training experiments; run: {} computes its figures without a model",
                 r.where(r.root[k]), k, r.exp.run);
}

void read_base(FileReader& r, const YAML::Node& n) {
  const std::string b = r.scalar(n, "base");
  const fs::path p = fs::path(b).is_absolute() ? fs::path(b) : fs::path(r.path).parent_path() / b;
  r.exp.base = p.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_regular_file(r.exp.base, ec))
    user_error("{}: key 'base': the base config '{}' does not exist (a path relative to the experiment file)",
               r.where(n), r.exp.base);
}

// `set:` (a list of key=value or a mapping), then the command line's --set.
void read_set(FileReader& r, const YAML::Node& n) {
  if (n && n.IsMap()) {
    for (const auto& kv : n) {
      r.check_key(kv.first, "set", kv.first.Scalar());
      r.sets.push_back(kv.first.Scalar() + "=" + r.scalar(kv.second, "set." + kv.first.Scalar()));
    }
  } else if (n) {
    for (const auto& e : r.scalar_list(n, "set")) {
      const auto eq = e.find('=');
      if (eq == std::string::npos || eq == 0) user_error("{}: key 'set': expected key=value, got '{}'", r.where(n), e);
      r.check_key(n, "set", e.substr(0, eq));
      r.sets.push_back(e);
    }
  }
  for (const auto& e : r.opt.sets) {
    const auto eq = e.find('=');
    const std::string key = eq == std::string::npos ? "" : e.substr(0, eq);
    if (key.empty()) user_error("--set {}: expected key=value (e.g. --set train.steps=100)", e);
    if (r.kind && !find_kind_param(*r.kind, key))
      user_error("--set {}: unknown parameter '{}' of run: {} (its parameters: {})", e, key, r.exp.run, r.kind_params());
    if (!r.kind && !is_config_key(key)) user_error("--set {}: unknown config key '{}'", e, key);
    r.sets.push_back(e);
  }
}

// The cartesian product of one grid block, the first key outermost, appended to r.combos.
void expand_block(FileReader& r, const YAML::Node& block) {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  for (const auto& kv : block) {
    const std::string k = kv.first.Scalar();
    r.check_key(kv.first, "grid", k);
    axes.push_back({k, r.scalar_list(kv.second, "grid." + k)});
    add_once(r.exp.grid_keys, k);
  }
  GridCombo cur;
  std::function<void(size_t)> rec = [&](size_t a) {
    if (a == axes.size()) {
      r.combos.push_back(cur);
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

// `grid:` one mapping, or a list of mappings (their products one after the other).
void read_grid(FileReader& r, const YAML::Node& g) {
  std::vector<YAML::Node> blocks;
  if (g && g.IsMap()) {
    blocks.push_back(g);
  } else if (g && g.IsSequence()) {
    for (const auto& b : g) {
      if (!b.IsMap()) user_error("{}: key 'grid': expected mappings of key: [values], got {}", r.where(b), describe_node(b));
      blocks.push_back(b);
    }
  } else if (g && !g.IsNull()) {
    user_error("{}: key 'grid': expected a mapping of config key: [values], got {}", r.where(g), describe_node(g));
  }
  if (blocks.empty()) r.combos.push_back({});
  for (const auto& b : blocks) expand_block(r, b);
  for (const auto& s : r.sets) {
    const std::string k = s.substr(0, s.find('='));
    if (r.is_grid_key(k)) user_error("{}: '{}' is both set for every cell ('{}') and a grid key; drop one", r.path, k, s);
  }
}

void read_tie(FileReader& r, const YAML::Node& t) {
  if (!t) return;
  if (!t.IsMap()) user_error("{}: key 'tie': expected a mapping key: grid key, got {}", r.where(t), describe_node(t));
  for (const auto& kv : t) {
    const std::string k = kv.first.Scalar(), src = r.scalar(kv.second, "tie." + k);
    r.check_key(kv.first, "tie", k);
    if (!r.is_grid_key(src))
      user_error("{}: tie: '{}' takes the value of '{}', which is not a grid key (grid keys: {})", r.where(kv.second),
                 k, src, fmt::join(r.exp.grid_keys, ", "));
    if (r.is_grid_key(k))
      user_error("{}: tie: '{}' is a grid key itself; a tied key must not be in the grid", r.where(kv.first), k);
    r.ties.push_back({k, src});
  }
}

// The table's columns: figures of the kind, or task metrics, NAME@STEP and measurements (whose
// measurement is then taken).
void read_metrics(FileReader& r, const YAML::Node& n) {
  Experiment& exp = r.exp;
  exp.metrics.clear();
  for (const auto& m : r.scalar_list(n, "metrics")) {  // bleu_by_length, chrf_by_length: a column per bucket
    if (m != "bleu_by_length" && m != "chrf_by_length") {
      exp.metrics.push_back(m);
      continue;
    }
    if (!exp.bleu_by_length)
      user_error("{}: metrics: '{}' needs the key bleu_by_length: {{edges: [...]}} (the buckets of source length)",
                 r.where(n), m);
    for (const auto& c : bleu_by_length_columns(*exp.bleu_by_length, m.substr(0, 4))) exp.metrics.push_back(c);
  }
  if (r.kind) {
    for (const auto& m : exp.metrics)
      if (std::find(r.kind->figures.begin(), r.kind->figures.end(), m) == r.kind->figures.end())
        user_error("{}: metrics: '{}' is not a figure of run: {} (its figures: {})", r.where(n), m, exp.run,
                   fmt::join(r.kind->figures, ", "));
    return;
  }
  for (const auto& m : exp.metrics) {
    const auto [name, step] = split_metric(r.path, m);
    if (measurement_of(name).empty()) continue;
    if (step >= 0)
      user_error("{}: metrics: '{}': measurements are taken from the final checkpoint only; drop '@{}'", r.where(n), m,
                 step);
    add_once(exp.measure, name);
  }
}

void read_measure(FileReader& r, const YAML::Node& n) {
  if (!n) return;
  for (const auto& name : r.scalar_list(n, "measure")) {
    if (!measurement_outputs().count(name))
      user_error("{}: measure: unknown measurement '{}' (known: {})", r.where(n), name, measurement_names());
    add_once(r.exp.measure, name);
  }
}

void read_measure_examples(FileReader& r, const YAML::Node& n) {
  if (n) r.exp.measure_examples = positive_int(r, n, "measure_examples", 100000);
}

void read_table(FileReader& r, const YAML::Node& t) {
  if (!t) return;
  r.only_keys(t, "table", {"rows", "cols", "value"});
  r.exp.table = ExperimentTable{r.named(t, "table", "rows", true, true), r.named(t, "table", "cols", true, true),
                                r.named(t, "table", "value", true, false)};
}

// One `plot:` entry: a column against a grid key, or (x: step) learning curves from NAME@STEP.
ExperimentPlot read_one_plot(const FileReader& r, const YAML::Node& e) {
  r.only_keys(e, "plot", {"x", "y", "series", "log"});
  const YAML::Node xn = e["x"];
  if (xn && xn.IsScalar() && xn.Scalar() == "step") {
    if (!e["y"]) user_error("{}: plot: key 'y' is missing", r.where(e));
    if (e["log"]) user_error("{}: plot.log: not available with x: step", r.where(e["log"]));
    const std::string y = r.scalar(e["y"], "plot.y");
    const auto& metrics = r.exp.metrics;
    const auto n = std::count_if(metrics.begin(), metrics.end(), [&](const std::string& m) { return m.rfind(y + "@", 0) == 0; });
    if (n < 2)
      user_error("{}: plot.y: x 'step' plots the columns {}@STEP, and the metrics have {} of them (at least 2 "
                 "needed; metrics: {})",
                 r.where(e["y"]), y, n, fmt::join(metrics, ", "));
    return {"step", y, r.named(e, "plot", "series", false, true)};
  }
  ExperimentPlot pl{r.named(e, "plot", "x", true, true), r.named(e, "plot", "y", true, false),
                    r.named(e, "plot", "series", false, true)};
  if (const YAML::Node l = e["log"]) {
    const std::string v = r.scalar(l, "plot.log");
    if (v != "true" && v != "false") user_error("{}: plot.log: expected true (log-log axes) or false, got '{}'", r.where(l), v);
    pl.log = v == "true";
  }
  return pl;
}

void read_plot(FileReader& r, const YAML::Node& p) {
  if (!p) return;
  if (!p.IsSequence()) return r.exp.plots.push_back(read_one_plot(r, p));
  for (const auto& e : p) r.exp.plots.push_back(read_one_plot(r, e));
}

// min / max of a summary check
void read_bounds(const FileReader& r, const YAML::Node& c, SummaryCheck& ck) {
  for (const char* b : {"min", "max"})
    if (const YAML::Node v = c[b]) {
      const std::string t = r.scalar(v, std::string("summary.checks.") + b);
      char* end = nullptr;
      const double x = std::strtod(t.c_str(), &end);
      if (t.empty() || *end != '\0' || !std::isfinite(x))
        user_error("{}: summary.checks.{}: expected a number, got '{}'", r.where(v), b, t);
      (std::string(b) == "min" ? ck.min : ck.max) = x;
    }
  if (!ck.min && !ck.max) user_error("{}: summary.checks: a check needs min, max or both", r.where(c));
}

// One entry of summary.checks: {slope: METRIC, ...} or {crossover: METRIC, series, below, ...}.
SummaryCheck read_check(const FileReader& r, const ExperimentSummary& su, const YAML::Node& c) {
  if (!c.IsMap()) user_error("{}: summary.checks: expected a mapping, got {}", r.where(c), describe_node(c));
  SummaryCheck ck;
  const bool slope = bool(c["slope"]), cross = bool(c["crossover"]);
  if (slope == cross)
    user_error("{}: summary.checks: a check has exactly one of 'slope: METRIC' or 'crossover: METRIC'", r.where(c));
  ck.kind = slope ? "slope" : "crossover";
  r.only_keys(c, "summary.checks", slope ? std::vector<std::string>{"slope", "series", "min", "max"}
                                         : std::vector<std::string>{"crossover", "series", "below", "min", "max"});
  ck.metric = r.named(c, "summary.checks", ck.kind, true, false);
  if (c["series"]) ck.series = r.scalar(c["series"], "summary.checks.series");
  if (!ck.series.empty() && su.series.empty())
    user_error("{}: summary.checks: 'series: {}' needs summary.series (the grid key whose values it names)",
               r.where(c["series"]), ck.series);
  if (slope && ck.series.empty() && !su.series.empty())
    user_error("{}: summary.checks: the slopes are per {}: say which with series: VALUE", r.where(c), su.series);
  if (cross) {
    if (!c["below"] || su.series.empty() || ck.series.empty())
      user_error("{}: summary.checks: a crossover needs summary.series, and series and below (two of its values)",
                 r.where(c));
    ck.below = r.scalar(c["below"], "summary.checks.below");
  }
  read_bounds(r, c, ck);
  for (const std::string& v : {ck.series, ck.below}) {  // values the grid has
    if (v.empty()) continue;
    bool found = false;
    for (const auto& combo : r.combos)
      for (const auto& [k, val] : combo) found |= k == su.series && val == v;
    if (!found) user_error("{}: summary.checks: '{}' is not a value of {} in the grid", r.where(c), v, su.series);
  }
  return ck;
}

void read_summary(FileReader& r, const YAML::Node& sm) {
  if (!sm) return;
  r.only_keys(sm, "summary", {"x", "series", "slopes", "checks"});
  ExperimentSummary su;
  su.x = r.named(sm, "summary", "x", true, true);
  su.series = r.named(sm, "summary", "series", false, true);
  if (const YAML::Node sl = sm["slopes"])
    for (const auto& m : r.scalar_list(sl, "summary.slopes")) {
      if (!r.is_column(m))
        user_error("{}: summary.slopes: '{}' is not a column of the table (metrics: {}, or seconds)", r.where(sl), m,
                   fmt::join(r.exp.metrics, ", "));
      add_once(su.slopes, m);
    }
  if (const YAML::Node cs = sm["checks"]) {
    if (!cs.IsSequence())
      user_error("{}: summary.checks: expected a list of checks, got {}", r.where(cs), describe_node(cs));
    for (const auto& c : cs) {
      su.checks.push_back(read_check(r, su, c));
      if (su.checks.back().kind == "slope") add_once(su.slopes, su.checks.back().metric);
    }
  }
  r.exp.summary = su;
}

// `decode: {context: N, tokens: N, repeats: N}`
void read_decode(FileReader& r, const YAML::Node& d) {
  if (!d) return;
  if (!d.IsMap())
    user_error("{}: key 'decode': expected a mapping {{context, tokens, repeats}}, got {}", r.where(d), describe_node(d));
  for (const auto& kv : d) {
    const std::string k = kv.first.Scalar();
    Experiment& e = r.exp;
    int* dst = k == "context" ? &e.decode_context : k == "tokens" ? &e.decode_tokens : k == "repeats" ? &e.decode_repeats
                                                                                                       : nullptr;
    if (!dst) user_error("{}: decode: unknown key '{}' (expected context, tokens, repeats)", r.where(kv.first), k);
    *dst = positive_int(r, kv.second, "decode." + k, 1048576);
  }
}

// `bleu_by_length: {edges: [N, ...], split: val|test, set: [data.KEY=VALUE, ...]}`: the measurement
// is taken and its columns (bleu_len_*, chrf_len_*) are recorded whether or not metrics name them.
void read_bleu_by_length(FileReader& r, const YAML::Node& b) {
  if (!b) return;
  if (!b.IsMap())
    user_error("{}: key 'bleu_by_length': expected a mapping {{edges, split, set}}, got {}", r.where(b),
               describe_node(b));
  r.only_keys(b, "bleu_by_length", {"edges", "split", "set"});
  BleuByLength s;
  if (!b["edges"]) user_error("{}: bleu_by_length: key 'edges' is missing (ascending source lengths in tokens)", r.where(b));
  for (const auto& e : r.scalar_list(b["edges"], "bleu_by_length.edges")) {
    char* end = nullptr;
    const long x = std::strtol(e.c_str(), &end, 10);
    if (e.empty() || *end != '\0' || x < 1 || x > 1048576 || (!s.edges.empty() && x <= s.edges.back()))
      user_error("{}: bleu_by_length.edges: expected ascending positive integers (source tokens), got '{}'",
                 r.where(b["edges"]), e);
    s.edges.push_back(int(x));
  }
  if (const YAML::Node sp = b["split"]) {
    s.split = r.scalar(sp, "bleu_by_length.split");
    if (s.split != "val" && s.split != "test")
      user_error("{}: bleu_by_length.split: expected val or test, got '{}'", r.where(sp), s.split);
  }
  if (const YAML::Node st = b["set"])
    for (const auto& e : r.scalar_list(st, "bleu_by_length.set")) {
      const auto eq = e.find('=');
      const std::string key = eq == std::string::npos ? "" : e.substr(0, eq);
      const auto& keys = data_override_keys();
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        user_error("{}: bleu_by_length.set: '{}': expected data.KEY=VALUE with a key evaluation may change ({})",
                   r.where(st), e, fmt::join(keys, ", "));
      s.sets.push_back(e);
    }
  r.exp.bleu_by_length = s;
  for (const char* m : {"bleu", "chrf"})
    for (const auto& c : bleu_by_length_columns(s, m)) add_once(r.exp.measure, c);
}

// One top-level key of an experiment file. The keys are read in this order (a key's checks may
// rely on those before it: tie and table on the grid, table, plot and summary on the metrics).
struct FileKey {
  const char* key;
  const char* holds;       // what its value is
  const char* missing;     // a required key: what it is, for the "is missing" message; null: optional
  bool train_only;         // not read when run: names a kind that computes figures
  void (*read)(FileReader&, const YAML::Node&);
};

const std::vector<FileKey>& file_keys() {
  static const std::vector<FileKey> keys = {
      {"experiment", "name", "the experiment's name", false, read_name},
      {"run", "train | invariants | attention_cost", nullptr, false, read_run},
      {"base", "path of the base config", "the base config, relative to this file", true, read_base},
      {"set", "[key=value, ...] or {key: value}", nullptr, false, read_set},
      {"grid", "{key: [values]} or a list of them", nullptr, false, read_grid},
      {"tie", "{key: grid key}", nullptr, false, read_tie},
      {"bleu_by_length", "{edges, split, set}", nullptr, true, read_bleu_by_length},
      {"metrics", "[column, ...]", "the columns of the results table", false, read_metrics},
      {"measure", "[measurement, ...]", nullptr, true, read_measure},
      {"measure_examples", "int in [1, 100000]", nullptr, true, read_measure_examples},
      {"table", "{rows, cols, value}", nullptr, false, read_table},
      {"plot", "{x, y, series, log} or a list of them", nullptr, false, read_plot},
      {"summary", "{x, series, slopes, checks}", nullptr, false, read_summary},
      {"decode", "{context, tokens, repeats}", nullptr, false, read_decode},
  };
  return keys;
}

YAML::Node parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read experiment file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return YAML::Load(ss.str());
  } catch (const YAML::ParserException& e) {
    user_error("{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
}

void check_top_keys(const std::string& path, const YAML::Node& root) {
  if (!root.IsMap()) user_error("{}: expected a mapping with the keys experiment, base, grid, metrics", path);
  std::vector<std::string> names;
  for (const auto& k : file_keys()) names.push_back(k.key);
  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    if (std::find(names.begin(), names.end(), k) != names.end()) continue;
    if (is_config_key(k) || k == "model" || k == "data" || k == "train" || k == "sample")
      user_error("{}: '{}' is a config key: an experiment file names a base config (`base:`) and changes it "
                 "with `set:` or `grid:`",
                 where_of(path, kv.first), k);
    user_error("{}: unknown key '{}' (an experiment file has: {})", where_of(path, kv.first), k, fmt::join(names, ", "));
  }
}

}  // namespace

// ---- FileReader ----

std::string FileReader::where(const YAML::Node& n) const { return where_of(path, n); }

std::string FileReader::scalar(const YAML::Node& n, const std::string& key) const {
  if (!n.IsScalar()) user_error("{}: key '{}': expected a single value, got {}", where(n), key, describe_node(n));
  return n.Scalar();
}

std::vector<std::string> FileReader::scalar_list(const YAML::Node& n, const std::string& key) const {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& e : n) out.push_back(scalar(e, key));
  } else {
    user_error("{}: key '{}': expected a list of values, got {}", where(n), key, describe_node(n));
  }
  if (out.empty()) user_error("{}: key '{}': expected at least one value, got an empty list", where(n), key);
  return out;
}

void FileReader::check_key(const YAML::Node& at, const std::string& section, const std::string& key) const {
  if (kind) {
    if (!find_kind_param(*kind, key))
      user_error("{}: {}: unknown parameter '{}' of run: {} (its parameters: {})", where(at), section, key, exp.run,
                 kind_params());
    return;
  }
  if (is_config_key(key)) return;
  user_error("{}: {}: unknown config key '{}'{}", where(at), section, key,
             did_you_mean(nearest_name(key, config_key_list(), 4)));
}

std::string FileReader::kind_params() const {
  std::vector<std::string> names;
  for (const auto& p : kind->params) names.push_back(p.key);
  return fmt::format("{}", fmt::join(names, ", "));
}

bool FileReader::is_grid_key(const std::string& k) const {
  return std::find(exp.grid_keys.begin(), exp.grid_keys.end(), k) != exp.grid_keys.end();
}

bool FileReader::is_column(const std::string& k) const {
  return k == "seconds" || std::find(exp.metrics.begin(), exp.metrics.end(), k) != exp.metrics.end();
}

std::string FileReader::named(const YAML::Node& map, const std::string& section, const std::string& key,
                              bool required, bool grid) const {
  const YAML::Node v = map[key];
  if (!v) {
    if (required) user_error("{}: {}: key '{}' is missing", where(map), section, key);
    return "";
  }
  const std::string s = scalar(v, section + "." + key);
  if (grid && !is_grid_key(s))
    user_error("{}: {}.{}: '{}' is not a grid key (grid keys: {})", where(v), section, key, s,
               exp.grid_keys.empty() ? std::string("none") : fmt::format("{}", fmt::join(exp.grid_keys, ", ")));
  if (!grid && !is_column(s))
    user_error("{}: {}.{}: '{}' is not a column of the table (metrics: {}, or seconds)", where(v), section, key, s,
               fmt::join(exp.metrics, ", "));
  return s;
}

void FileReader::only_keys(const YAML::Node& map, const std::string& section,
                           const std::vector<std::string>& keys) const {
  if (!map.IsMap()) user_error("{}: key '{}': expected a mapping, got {}", where(map), section, describe_node(map));
  for (const auto& kv : map)
    if (std::find(keys.begin(), keys.end(), kv.first.Scalar()) == keys.end())
      user_error("{}: {}: unknown key '{}' (expected {})", where(kv.first), section, kv.first.Scalar(),
                 fmt::join(keys, ", "));
}

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

Experiment load_experiment(const std::string& path, const ExperimentOptions& opt) {
  FileReader r(path, parse_file(path), opt);
  check_top_keys(path, r.root);
  r.exp.file = path;
  r.exp.cli_sets = opt.sets;
  for (const FileKey& k : file_keys()) {
    if (r.kind && k.train_only) continue;
    const YAML::Node n = r.root[k.key];
    if (!n && k.missing) user_error("{}: key '{}' ({}) is missing", path, k.key, k.missing);
    k.read(r, n);
  }
  make_cells(r);
  return std::move(r.exp);
}

std::string default_output_dir(const Experiment& exp) { return (fs::path("runs") / "experiments" / exp.name).string(); }

}  // namespace attnlab
