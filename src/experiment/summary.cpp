// `summary:` of an experiment: log-log slopes of columns against a numeric grid key, per series,
// and the checks on slopes and crossovers; `--strict`'s list of failures.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "experiment/internal.h"

namespace attnlab {

using json = nlohmann::json;

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

int within(const SummaryCheck& ck, const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return 0;
  return (!ck.min || *v >= *ck.min) && (!ck.max || *v <= *ck.max) ? 1 : 0;
}

// The crossover row of a check: on the x both series have.
SummaryRow crossover_row(const Experiment& exp, const std::vector<std::optional<json>>& done, const SummaryCheck& ck) {
  const Curve a = curve_of(exp, done, ck.metric, ck.series), b = curve_of(exp, done, ck.metric, ck.below);
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
  return r;
}

}  // namespace

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
  for (const auto& m : su.slopes)
    for (const auto& s : series) {
      const Curve c = curve_of(exp, done, m, s);
      SummaryRow r;
      r.name = s.empty() ? fmt::format("slope({})", m) : fmt::format("slope({}, {})", m, s);
      const double k = loglog_slope(c.x, c.y);
      if (std::isfinite(k)) r.value = k;
      for (const auto& ck : su.checks)
        if (ck.kind == "slope" && ck.metric == m && ck.series == s) {
          r.min = ck.min, r.max = ck.max;
          r.pass = within(ck, r.value);
        }
      rows.push_back(r);
    }
  for (const auto& ck : su.checks)
    if (ck.kind == "crossover") rows.push_back(crossover_row(exp, done, ck));
  return rows;
}

std::vector<SummaryRow> summarize(const Experiment& exp, const std::string& out_dir) {
  return summarize_done(exp, read_all_done(exp, out_dir));
}

std::vector<std::string> failed_checks(const Experiment& exp, const std::string& out_dir) {
  std::vector<std::string> out;
  const auto done = read_all_done(exp, out_dir);
  for (size_t i = 0; i < exp.cells.size(); i++) {
    const std::string cell = fmt::format("cell {} ({})", exp.cells[i].name, experiment_cell_label(exp.cells[i]));
    if (!done[i]) {
      out.push_back(cell + " has not finished");
      continue;
    }
    if (const auto p = metric_value(*done[i], "pass"); p && *p != 1.0) out.push_back(fmt::format("{}: pass = {}", cell, *p));
  }
  for (const auto& r : summarize_done(exp, done))
    if (r.pass == 0)
      out.push_back(fmt::format("{} = {} outside [{}, {}]", r.name, r.value ? format_number(*r.value) : "none",
                                r.min ? format_number(*r.min) : "-inf", r.max ? format_number(*r.max) : "inf"));
  return out;
}

}  // namespace attnlab
