// The results of an experiment: each cell's done.json read back, and the tables made from them
// (results.csv, results.md, summary.csv, and experiment.json for scripts/plot_experiment.py).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "experiment/internal.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;

std::string sanitize(const std::string& v) {
  std::string s;
  for (char c : v) s += (std::isalnum(uint8_t(c)) || c == '.' || c == '-' || c == '+' || c == '_') ? c : '-';
  return s.empty() ? "-" : s;
}

std::string experiment_cell_label(const ExperimentCell& c) {
  std::string s;
  for (const auto& [k, v] : c.values) s += (s.empty() ? "" : ", ") + k + "=" + v;
  return s.empty() ? "base config" : s;
}

std::string value_of(const ExperimentCell& c, const std::string& key) {
  for (const auto& [k, v] : c.values)
    if (k == key) return v;
  return "";
}

std::string cell_dir(const std::string& out_dir, const ExperimentCell& c) {
  return (fs::path(out_dir) / "cells" / c.name).string();
}

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

std::vector<std::optional<json>> read_all_done(const Experiment& exp, const std::string& out_dir) {
  std::vector<std::optional<json>> done(exp.cells.size());
  for (size_t i = 0; i < exp.cells.size(); i++) done[i] = read_done(exp, i, out_dir);
  return done;
}

std::optional<double> metric_value(const json& done, const std::string& m) {
  if (m == "seconds") return done.value("seconds", 0.0);
  if (done.contains("figures")) {  // a cell of a kind that does not train
    const json& f = done["figures"];
    if (f.contains(m) && f[m].is_number()) return f[m].get<double>();
    return std::nullopt;
  }
  const auto at = m.find('@');
  const std::string name = m.substr(0, at);
  if (!measurement_of(name).empty()) {
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

std::string plot_file_name(const Experiment& exp, size_t i) {
  if (exp.plots.size() == 1) return exp.name + ".png";
  return fmt::format("{}_{}_{}.png", exp.name, i + 1, sanitize(exp.plots[i].y));
}

namespace {

using Done = std::vector<std::optional<json>>;

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

std::string csv_number(double v) { return fmt::format("{}", v); }

// The header or a cell's row of the results table: grid keys (values), then the columns, each
// quoted by `field`; a column without a value is `missing`.
std::vector<std::string> table_head(const Experiment& exp, const std::vector<std::string>& cols,
                                    std::string (*field)(const std::string&)) {
  std::vector<std::string> f;
  for (const auto& k : exp.grid_keys) f.push_back(field(k));
  for (const auto& m : cols) f.push_back(field(m));
  return f;
}
std::vector<std::string> table_row(const Experiment& exp, const std::vector<std::string>& cols, size_t i,
                                   const json& done, std::string (*field)(const std::string&),
                                   std::string (*number)(double), const char* missing) {
  std::vector<std::string> f;
  for (const auto& k : exp.grid_keys) f.push_back(field(value_of(exp.cells[i], k)));
  for (const auto& m : cols) {
    const auto v = metric_value(done, m);
    f.push_back(v ? number(*v) : missing);
  }
  return f;
}

std::string results_csv(const Experiment& exp, const std::vector<std::string>& cols, const Done& done) {
  std::string csv = fmt::format("{}\n", fmt::join(table_head(exp, cols, csv_field), ","));
  for (size_t i = 0; i < exp.cells.size(); i++)
    if (done[i]) csv += fmt::format("{}\n", fmt::join(table_row(exp, cols, i, *done[i], csv_field, csv_number, ""), ","));
  return csv;
}

// results.md's table of every finished cell.
std::string md_cells(const Experiment& exp, const std::vector<std::string>& cols, const Done& done) {
  const std::vector<std::string> head = table_head(exp, cols, md_field);
  std::vector<std::string> rule;
  for (size_t i = 0; i < head.size(); i++) rule.push_back(i < exp.grid_keys.size() ? "---" : "---:");
  std::string md = fmt::format("| {} |\n|{}|\n", fmt::join(head, " | "), fmt::join(rule, "|"));
  for (size_t i = 0; i < exp.cells.size(); i++)
    if (done[i])
      md += fmt::format("| {} |\n", fmt::join(table_row(exp, cols, i, *done[i], md_field, format_number, "–"), " | "));
  return md;
}

// The mean and the sample standard deviation (n - 1 in the denominator) of some cells' values.
struct Stat {
  double mean = 0.0, sd = 0.0;
  int n = 0;
};
Stat stat_of(const std::vector<double>& v) {
  Stat s;
  s.n = int(v.size());
  if (!s.n) return s;
  for (double x : v) s.mean += x;
  s.mean /= s.n;
  if (s.n > 1) {
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(s.sd / (s.n - 1));
  }
  return s;
}
std::string format_stat(const Stat& s) {
  if (!s.n) return "–";
  if (s.n == 1) return format_number(s.mean);
  return format_number(s.mean) + " ± " + format_number(s.sd);
}

// The finished cells' values of `metric`, among the cells `in` selects.
template <class Select>
std::vector<double> values_where(const Experiment& exp, const Done& done, const std::string& metric, Select in) {
  std::vector<double> v;
  for (size_t i = 0; i < exp.cells.size(); i++)
    if (done[i] && in(exp.cells[i]))
      if (const auto x = metric_value(*done[i], metric); x && std::isfinite(*x)) v.push_back(*x);
  return v;
}

// The seed key of a train experiment: `train.seed` when the grid gives it more than one value.
constexpr const char* kSeedKey = "train.seed";
bool has_seeds(const Experiment& exp) {
  if (std::find(exp.grid_keys.begin(), exp.grid_keys.end(), kSeedKey) == exp.grid_keys.end()) return false;
  std::vector<std::string> seen;
  for (const auto& c : exp.cells)
    if (const std::string v = value_of(c, kSeedKey); std::find(seen.begin(), seen.end(), v) == seen.end())
      seen.push_back(v);
  return seen.size() > 1;
}

// The cells grouped by every grid key but the seed: each group's key values, in the order the
// groups first appear.
std::vector<std::vector<std::string>> seed_groups(const Experiment& exp, std::vector<std::string>& keys) {
  keys.clear();
  for (const auto& k : exp.grid_keys)
    if (k != kSeedKey) keys.push_back(k);
  std::vector<std::vector<std::string>> groups;
  for (const auto& c : exp.cells) {
    std::vector<std::string> g;
    for (const auto& k : keys) g.push_back(value_of(c, k));
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  return groups;
}

// results.md's "over seeds" table (mean ± sd of every column over the seeds of each setting) and
// results_seeds.csv (the same, as <column>_mean, <column>_sd, with the count n).
std::string md_over_seeds(const Experiment& exp, const std::vector<std::string>& cols, const Done& done,
                          const std::string& out_dir) {
  std::vector<std::string> keys;
  const auto groups = seed_groups(exp, keys);
  std::string md = fmt::format("\n## Over seeds\n\nEach entry is the mean ± the sample standard deviation over the "
                               "finished cells of that setting, one per `{}`; n counts them.\n\n",
                               kSeedKey);
  std::vector<std::string> head, rule, chead;
  for (const auto& k : keys) head.push_back(md_field(k)), rule.push_back("---"), chead.push_back(csv_field(k));
  head.push_back("n"), rule.push_back("---:"), chead.push_back("n");
  for (const auto& m : cols) {
    head.push_back(md_field(m)), rule.push_back("---:");
    chead.push_back(csv_field(m + "_mean")), chead.push_back(csv_field(m + "_sd"));
  }
  md += fmt::format("| {} |\n|{}|\n", fmt::join(head, " | "), fmt::join(rule, "|"));
  std::string csv = fmt::format("{}\n", fmt::join(chead, ","));
  for (const auto& g : groups) {
    auto in = [&](const ExperimentCell& c) {
      for (size_t j = 0; j < keys.size(); j++)
        if (value_of(c, keys[j]) != g[j]) return false;
      return true;
    };
    int n = 0;
    for (size_t i = 0; i < exp.cells.size(); i++) n += done[i] && in(exp.cells[i]);
    if (!n) continue;
    std::vector<std::string> f, cf;
    for (const auto& v : g) f.push_back(md_field(v.empty() ? "(base)" : v)), cf.push_back(csv_field(v));
    f.push_back(std::to_string(n)), cf.push_back(std::to_string(n));
    for (const auto& m : cols) {
      const Stat st = stat_of(values_where(exp, done, m, in));
      f.push_back(format_stat(st));
      cf.push_back(st.n ? csv_number(st.mean) : ""), cf.push_back(st.n > 1 ? csv_number(st.sd) : "");
    }
    md += fmt::format("| {} |\n", fmt::join(f, " | "));
    csv += fmt::format("{}\n", fmt::join(cf, ","));
  }
  write_file_atomic((fs::path(out_dir) / "results_seeds.csv").string(), csv);
  return md;
}

// `table:`: the value column by rows and cols; cells sharing an entry (seeds, other grid keys)
// give their mean ± sample standard deviation.
std::string md_pivot(const Experiment& exp, const Done& done) {
  const ExperimentTable& t = *exp.table;
  std::vector<std::string> rows, colv;
  for (const auto& c : exp.cells) {
    const std::string r = value_of(c, t.rows), k = value_of(c, t.cols);
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rows.push_back(r);
    if (std::find(colv.begin(), colv.end(), k) == colv.end()) colv.push_back(k);
  }
  std::string md = fmt::format("\n## {} by {} and {}\n\n", t.value, t.rows, t.cols);
  std::vector<std::string> head{md_field(t.rows) + " \\ " + md_field(t.cols)}, rule{"---"};
  for (const auto& k : colv) head.push_back(md_field(k.empty() ? "(base)" : k)), rule.push_back("---:");
  md += fmt::format("| {} |\n|{}|\n", fmt::join(head, " | "), fmt::join(rule, "|"));
  int max_n = 0;
  for (const auto& r : rows) {
    std::vector<std::string> f{md_field(r.empty() ? "(base)" : r)};
    for (const auto& k : colv) {
      const Stat st = stat_of(values_where(exp, done, t.value, [&](const ExperimentCell& c) {
        return value_of(c, t.rows) == r && value_of(c, t.cols) == k;
      }));
      max_n = std::max(max_n, st.n);
      f.push_back(format_stat(st));
    }
    md += fmt::format("| {} |\n", fmt::join(f, " | "));
  }
  if (max_n > 1)
    md += fmt::format("\nEach entry is the mean ± the sample standard deviation over the finished cells that share "
                      "its row and column (up to {}).\n",
                      max_n);
  return md;
}

std::string bound(const std::optional<double>& v) { return v ? format_number(*v) : ""; }

// `summary:`: results.md's section, and summary.csv written.
std::string md_summary(const Experiment& exp, const Done& done, const std::string& out_dir) {
  const auto rows = summarize_done(exp, done);
  const ExperimentSummary& su = *exp.summary;
  std::string md = fmt::format("\n## Summary\n\nLog-log least-squares slopes over {}{} (finished cells); a crossover is "
                               "the smallest {} from which the first series stays below the second.\n\n",
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
  return md;
}

std::string results_md(const Experiment& exp, const std::vector<std::string>& cols, const Done& done, int n_done,
                       const std::string& out_dir) {
  std::string md = fmt::format("# {}\n\n", exp.name);
  if (exp.run == "train")
    md += fmt::format("Experiment file `{}`, base config `{}`; {} of {} cells finished.\n\n", exp.file, exp.base,
                      n_done, exp.cells.size());
  else
    md += fmt::format("Experiment file `{}`, run: {}; {} of {} cells finished.\n\n", exp.file, exp.run, n_done,
                      exp.cells.size());
  if (!exp.cli_sets.empty()) {
    std::vector<std::string> given;
    for (const auto& e : exp.cli_sets) given.push_back("`--set " + md_field(e) + "`");
    md += fmt::format("> **Made with command-line overrides**: {}. These numbers are not those of the experiment "
                      "as `{}` defines it; run it without `--set` for those.\n\n",
                      fmt::join(given, " "), exp.file);
  }
  md += md_cells(exp, cols, done);
  if (has_seeds(exp)) md += md_over_seeds(exp, cols, done, out_dir);
  if (exp.table) md += md_pivot(exp, done);
  if (exp.summary) md += md_summary(exp, done, out_dir);
  if (!exp.plots.empty()) {
    md += "\n";
    for (size_t i = 0; i < exp.plots.size(); i++) md += fmt::format("![{}]({})\n", exp.plots[i].y, plot_file_name(exp, i));
  }
  return md;
}

// experiment.json: what the plot script needs
std::string experiment_json(const Experiment& exp, int n_done) {
  json plots = json::array();
  for (size_t i = 0; i < exp.plots.size(); i++)
    plots.push_back({{"x", exp.plots[i].x},
                     {"y", exp.plots[i].y},
                     {"series", exp.plots[i].series},
                     {"log", exp.plots[i].log},
                     {"file", plot_file_name(exp, i)}});
  json ej = {{"experiment", exp.name}, {"run", exp.run}, {"file", exp.file}, {"base", exp.base}, {"grid_keys", exp.grid_keys},
             {"metrics", exp.metrics}, {"sets", exp.cli_sets}, {"cells", exp.cells.size()}, {"finished", n_done}, {"plots", plots}};
  return ej.dump(2) + "\n";
}

}  // namespace

int write_results(const Experiment& exp, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) user_error("cannot create the experiment directory '{}': {}", out_dir, ec.message());
  const Done done = read_all_done(exp, out_dir);
  int n_done = 0;
  for (const auto& d : done) n_done += d.has_value();
  std::vector<std::string> cols = exp.metrics;
  cols.push_back("seconds");
  write_file_atomic((fs::path(out_dir) / "results.csv").string(), results_csv(exp, cols, done));
  write_file_atomic((fs::path(out_dir) / "results.md").string(), results_md(exp, cols, done, n_done, out_dir));
  write_file_atomic((fs::path(out_dir) / "experiment.json").string(), experiment_json(exp, n_done));
  return n_done;
}

}  // namespace attnlab
