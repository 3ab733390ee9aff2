// Experiment cells that compute figures instead of training (experiment/kinds.h, `run:`
// invariants | attention_cost): parsing and validation errors, E1's checks on the real attention
// code (and that they fail when the thing they check is broken), the summary's slope fit and
// crossover on synthetic data and through real cells, --strict's failed_checks, and a tiny
// attention_cost run.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "experiment_runner/helpers.h"
#include "experiment/experiment.h"
#include "experiment/kinds.h"

using namespace attnlab;
using test::error_of;
using test::slurp;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) { return test::fresh_dir("kinds", name); }

std::string write_file(const std::string& dir, const std::string& text) {
  test::spit(dir + "/exp.yaml", text);
  return dir + "/exp.yaml";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The figures of the single cell of an invariants experiment with these `set` parameters.
CellFigures one_cell(const std::string& dir, const std::string& set) {
  const Experiment exp = load_experiment(
      write_file(dir, "experiment: one\nrun: invariants\nset: {" + set + "}\nmetrics: [pass]\n"));
  REQUIRE(exp.cells.size() == 1);
  return compute_cell_figures(*find_cell_kind("invariants"), exp.cells[0].params);
}

double fig(const CellFigures& f, const std::string& k) {
  const auto it = f.values.find(k);
  REQUIRE(it != f.values.end());
  REQUIRE(it->second.has_value());
  return *it->second;
}

}  // namespace

TEST_CASE("experiment kinds: parameters of the kind, defaults per check, and mistakes named with file and key") {
  const std::string dir = fresh_dir("errors");
  auto err = [&](const std::string& text) { return error_of(write_file(dir, text)); };
  const std::string inv = "experiment: e\nrun: invariants\n";

  // a valid file: params resolved with defaults, the check's own defaults, threads capped
  ExperimentOptions opt;
  opt.cores = 2;
  const Experiment exp = load_experiment(
      write_file(dir, inv + "grid:\n  - {check: [variance], d_k: [16, 64]}\n  - {check: [rope], shift: [7]}\nmetrics: [var_ratio, rope_diff, pass]\n"),
      opt);
  REQUIRE(exp.cells.size() == 3);
  CHECK(exp.run == "invariants");
  CHECK(exp.grid_keys == std::vector<std::string>{"check", "d_k", "shift"});
  CHECK(exp.cells[0].params.at("d_k") == "16");
  CHECK(exp.cells[0].params.at("samples") == "200000");
  CHECK(exp.cells[0].params.at("tol") == "0.03");
  CHECK(exp.cells[2].params.at("tol") == "1e-5");     // rope's own default
  CHECK(exp.cells[2].params.at("samples") == "2000");
  CHECK(exp.cells[2].params.count("mask") == 0);      // a flash parameter: not the rope cell's
  CHECK(exp.cells[0].threads == 2);
  CHECK(exp.cells[0].identity != exp.cells[1].identity);
  CHECK(has(exp.cells[0].identity, "run: invariants"));
  CHECK_FALSE(has(exp.cells[0].identity, "threads"));  // invariants: not part of the identity

  std::string e = err("experiment: e\nrun: nonsense\nmetrics: [pass]\n");
  CHECK(has(e, "exp.yaml:2:"));
  CHECK(has(e, "'nonsense'"));
  CHECK(has(e, "attention_cost"));
  e = err(inv + "grid: {check: [variance], dk: [16]}\nmetrics: [pass]\n");
  CHECK(has(e, "exp.yaml:3:"));
  CHECK(has(e, "unknown parameter 'dk'"));
  CHECK(has(e, "d_k"));  // lists the kind's parameters
  e = err(inv + "base: x.yaml\nmetrics: [pass]\n");
  CHECK(has(e, "'base'"));
  e = err(inv + "set: {check: variance}\nmetrics: [loss]\n");
  CHECK(has(e, "'loss' is not a figure of run: invariants"));
  CHECK(has(e, "var_ratio"));
  e = err(inv + "grid: {check: [variance], d_k: [16, x]}\nmetrics: [pass]\n");
  CHECK(has(e, "d_k=x"));  // the cell
  CHECK(has(e, "d_k: expected an integer"));
  e = err(inv + "grid: {check: [variance], mask: [causal]}\nmetrics: [pass]\n");
  CHECK(has(e, "'mask' is not a parameter of check variance"));
  e = err(inv + "grid: {d_k: [16]}\nmetrics: [pass]\n");
  CHECK(has(e, "'check' is missing"));
  e = err(inv + "grid: {check: [variance], scale: [nope]}\nmetrics: [pass]\n");
  CHECK(has(e, "scale: expected inv_sqrt_dk, none or a positive number"));
  e = err(inv + "grid: {check: [flash], heads: [4], kv_heads: [3]}\nmetrics: [pass]\n");
  CHECK(has(e, "kv_heads"));
  e = err(inv + "grid: {check: [rope], d_k: [15]}\nmetrics: [pass]\n");
  CHECK(has(e, "even"));
  e = err(inv + "set: {mask: causal}\ngrid: {check: [variance]}\nmetrics: [pass]\n");
  CHECK(has(e, "no cell reads 'mask'"));
  e = err(inv + "grid: {check: [variance]}\nmeasure: [mirror_weight]\nmetrics: [pass]\n");
  CHECK(has(e, "'measure'"));
  ExperimentOptions bad;
  bad.sets = {"data.max_len=4"};
  e = error_of(write_file(dir, inv + "grid: {check: [variance]}\nmetrics: [pass]\n"), bad);
  CHECK(has(e, "--set data.max_len=4"));
  CHECK(has(e, "unknown parameter"));

  const std::string cost = "experiment: c\nrun: attention_cost\n";
  e = err(cost + "grid: {type: [causal, nosuch]}\nmetrics: [ms]\n");
  CHECK(has(e, "type=nosuch"));
  CHECK(has(e, "nosuch"));
  e = err(cost + "grid: {type: [causal], n: [0]}\nmetrics: [ms]\n");
  CHECK(has(e, "n: expected an integer in [1,"));
  e = err(cost + "grid: {type: [causal], n: [64]}\nmetrics: [ms@10]\n");
  CHECK(has(e, "'ms@10' is not a figure"));
  // summary mistakes
  const std::string grid = "grid: {type: [causal, linear], n: [32, 64]}\nmetrics: [ms]\n";
  e = err(cost + grid + "summary: {x: n, series: type, checks: [{slope: ms, series: flash, max: 2}]}\n");
  CHECK(has(e, "'flash' is not a value of type"));
  e = err(cost + grid + "summary: {x: n, series: type, checks: [{crossover: ms, series: linear, max: 64}]}\n");
  CHECK(has(e, "below"));
  e = err(cost + grid + "summary: {x: n, series: type, checks: [{slope: ms, series: causal}]}\n");
  CHECK(has(e, "min, max or both"));
  e = err(cost + grid + "summary: {x: n, series: type, checks: [{slope: ms, max: 2}]}\n");
  CHECK(has(e, "say which with series"));
  e = err(cost + grid + "summary: {x: m, slopes: [ms]}\n");
  CHECK(has(e, "summary.x"));
  e = err(cost + grid + "plot: {x: n, y: ms, log: maybe}\n");
  CHECK(has(e, "plot.log"));
}

TEST_CASE("loglog_slope and crossover_x on synthetic data") {
  const std::vector<double> n = {256, 512, 1024, 2048, 4096, 8192};
  std::vector<double> quad, lin, noisy;
  Rng rng(5);
  for (double x : n) {
    quad.push_back(3e-6 * x * x);
    lin.push_back(0.01 * x + 0.0);
    noisy.push_back(2e-3 * std::pow(x, 1.5) * std::exp(0.05 * rng.normal()));
  }
  CHECK(loglog_slope(n, quad) == doctest::Approx(2.0).epsilon(1e-9));
  CHECK(loglog_slope(n, lin) == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(std::fabs(loglog_slope(n, noisy) - 1.5) < 0.05);
  // a constant term bends the curve: the slope falls below the exponent
  std::vector<double> with_const;
  for (double x : n) with_const.push_back(3e-6 * x * x + 5.0);
  CHECK(loglog_slope(n, with_const) < 1.9);
  // non-positive values are left out; fewer than two points or one x: NaN
  CHECK(loglog_slope({1, 2, 4, 8}, {-1, 4, 16, 64}) == doctest::Approx(2.0));
  CHECK(std::isnan(loglog_slope({4}, {16})));
  CHECK(std::isnan(loglog_slope({4, 4}, {16, 17})));

  // linear (a) against quadratic (b): a is below from x = 1024 on, although it dips below at 256 too
  const std::vector<double> a = {10, 30, 40, 80, 160, 320}, b = {9, 25, 50, 200, 800, 3200};
  REQUIRE(crossover_x(n, a, b).has_value());
  CHECK(*crossover_x(n, a, b) == 1024);
  CHECK(*crossover_x(n, {1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2}) == 256);
  CHECK_FALSE(crossover_x(n, b, a).has_value());  // not below at the last point
  CHECK_FALSE(crossover_x(n, {1, 1, 1, 1, 1, std::nan("")}, {2, 2, 2, 2, 2, 2}).has_value());
}

TEST_CASE("invariants: the E1 checks pass on the project's code and fail when what they check is broken") {
  const std::string dir = fresh_dir("checks");
  // variance: Var(q·k)/d_k ≈ 1 and the scaled logits' variance ≈ 1
  CellFigures f = one_cell(dir, "check: variance, d_k: 16, samples: 40000");
  CHECK(std::fabs(fig(f, "var_ratio") - 1.0) < 0.03);
  CHECK(std::fabs(fig(f, "logit_var") - 1.0) < 0.03);
  CHECK(fig(f, "pass") == 1.0);
  // deterministic: the same seed gives the same figure
  CHECK(fig(one_cell(dir, "check: variance, d_k: 16, samples: 40000"), "var_ratio") == fig(f, "var_ratio"));
  // mis-scaled logits (no 1/√d_k): Var(q·k) is still d_k, but the logits' variance is d_k, flagged
  f = one_cell(dir, "check: variance, d_k: 16, samples: 40000, scale: none");
  CHECK(std::fabs(fig(f, "var_ratio") - 1.0) < 0.03);
  CHECK(fig(f, "logit_var") == doctest::Approx(16.0).epsilon(0.03));
  CHECK(fig(f, "pass") == 0.0);
  f = one_cell(dir, "check: variance, d_k: 64, samples: 40000, scale: 0.25");  // 1/4 instead of 1/8
  CHECK(fig(f, "logit_var") == doctest::Approx(4.0).epsilon(0.03));
  CHECK(fig(f, "pass") == 0.0);
  // a tolerance too tight for the sample size fails too (the figure is compared, not assumed)
  f = one_cell(dir, "check: variance, d_k: 16, samples: 2000, tol: 1e-6");
  CHECK(fig(f, "pass") == 0.0);

  // flash vs naive through the real module: a length that is not a multiple of the tile, GQA, padding
  for (const char* mask : {"causal", "none", "padding", "causal_padding"}) {
    INFO(mask);
    f = one_cell(dir, std::string("check: flash, n: 70, heads: 4, kv_heads: 2, d_k: 16, mask: ") + mask);
    CHECK(fig(f, "out_diff") <= 1e-6);
    CHECK(fig(f, "grad_diff") <= 1e-5);
    CHECK(fig(f, "grad_diff") == std::max({fig(f, "dq_diff"), fig(f, "dk_diff"), fig(f, "dv_diff")}));
    CHECK(fig(f, "out_diff") > 0.0);  // two summation orders: not bitwise equal, so something was compared
    CHECK(fig(f, "pass") == 1.0);
  }
  f = one_cell(dir, "check: flash, n: 70, d_k: 16, tol_out: 1e-12");
  CHECK(fig(f, "pass") == 0.0);

  // rope: a common shift leaves the scores alone ...
  f = one_cell(dir, "check: rope, shift: 12345, samples: 300");
  CHECK(fig(f, "rope_diff") <= 1e-5);
  CHECK(fig(f, "rope_change") > 0.1);
  CHECK(fig(f, "pass") == 1.0);
  // ... but a shift of 0 makes the check vacuous (the scores must also move when only m does)
  f = one_cell(dir, "check: rope, shift: 0, samples: 300");
  CHECK(fig(f, "rope_diff") == 0.0);
  CHECK(fig(f, "rope_change") == 0.0);
  CHECK(fig(f, "pass") == 0.0);
}

TEST_CASE("run: invariants end to end: done.json figures, results, summary slopes, rerun, --strict's failures") {
  const std::string dir = fresh_dir("run");
  // logit variance against d_k, with and without the 1/√d_k scale: slope ≈ 0 and ≈ 1
  const std::string path = write_file(dir, R"(experiment: inv
run: invariants
set: {samples: 20000, threads: 1}
grid:
  check: [variance]
  scale: [inv_sqrt_dk, none]
  d_k: [16, 64, 256]
metrics: [var_ratio, logit_var, pass]
table: {rows: d_k, cols: scale, value: logit_var}
plot: {x: d_k, y: logit_var, series: scale, log: true}
summary:
  x: d_k
  series: scale
  checks:
    - {slope: logit_var, series: inv_sqrt_dk, min: -0.05, max: 0.05}
    - {slope: logit_var, series: none, min: 0.95, max: 1.05}
    - {crossover: logit_var, series: inv_sqrt_dk, below: none, max: 16}
)");
  const std::string out = dir + "/out";
  Experiment exp = load_experiment(path);
  REQUIRE(exp.cells.size() == 6);
  // before running: every cell is missing
  CHECK(failed_checks(exp, out).size() >= 6);
  RunExperimentOptions ro;
  std::vector<std::string> lines;
  ro.print = [&](const std::string& s) { lines.push_back(s); };
  REQUIRE(run_experiment(exp, out, ro) == 0);
  const auto done = nlohmann::json::parse(slurp(out + "/cells/check=variance_scale=none_d_k=64/done.json"));
  CHECK(done["run"] == "invariants");
  CHECK(done["figures"]["logit_var"].get<double>() == doctest::Approx(64.0).epsilon(0.05));
  CHECK(done["figures"]["pass"].get<double>() == 0.0);
  CHECK(done["figures"]["out_diff"].is_null());
  CHECK(done["params"]["samples"] == "20000");
  // results.csv: the grid keys, the figures, seconds
  std::stringstream csv(slurp(out + "/results.csv"));
  std::vector<std::string> rows;
  for (std::string l; std::getline(csv, l);) rows.push_back(l);
  REQUIRE(rows.size() == 7);
  CHECK(rows[0] == "check,scale,d_k,var_ratio,logit_var,pass,seconds");
  CHECK(rows[1].rfind("variance,inv_sqrt_dk,16,", 0) == 0);
  CHECK(has(rows[1], ",1,"));
  CHECK(has(rows[4], ",0,"));
  // summary: slopes and the crossover, all three checks pass
  const auto sum = summarize(exp, out);
  REQUIRE(sum.size() == 3);
  CHECK(sum[0].name == "slope(logit_var, inv_sqrt_dk)");
  CHECK(std::fabs(*sum[0].value) < 0.05);
  CHECK(sum[1].name == "slope(logit_var, none)");
  CHECK(*sum[1].value == doctest::Approx(1.0).epsilon(0.05));
  CHECK(sum[2].name == "crossover(logit_var, inv_sqrt_dk < none)");
  CHECK(*sum[2].value == 16);
  for (const auto& r : sum) CHECK(r.pass == 1);
  const std::string md = slurp(out + "/results.md");
  CHECK(has(md, "run: invariants; 6 of 6 cells finished"));
  CHECK(has(md, "## Summary"));
  CHECK(has(md, "| slope(logit_var, none) |"));
  CHECK(has(md, "## logit_var by d_k and scale"));
  CHECK(has(slurp(out + "/summary.csv"), "\"slope(logit_var, none)\","));
  CHECK(nlohmann::json::parse(slurp(out + "/experiment.json"))["plots"][0]["log"] == true);
  // --strict: the three scale=none cells have pass 0; the summary checks pass
  const auto failed = failed_checks(exp, out);
  REQUIRE(failed.size() == 3);
  for (const auto& f : failed) CHECK(has(f, "scale=none"));

  // a rerun skips every cell; a changed parameter makes the cells new
  lines.clear();
  REQUIRE(run_experiment(exp, out, ro) == 0);
  CHECK(has(lines.at(0), "6 done earlier, 0 to run"));
  CHECK(run_cell(exp, 0, out, false).skipped);
  ExperimentOptions opt;
  opt.sets = {"samples=30000"};
  const Experiment changed = load_experiment(path, opt);
  CHECK_FALSE(cell_done(changed, 0, out));
  opt.sets = {"threads=2"};  // threads are not part of an invariants cell's identity
  CHECK(cell_done(load_experiment(path, opt), 0, out));

  // a summary check that fails is reported
  const std::string path2 = write_file(dir, slurp(path).replace(slurp(path).find("min: 0.95"), 9, "min: 1.50"));
  const auto failed2 = failed_checks(load_experiment(path2), out);
  REQUIRE(failed2.size() == 4);
  CHECK(has(failed2.back(), "slope(logit_var, none)"));
}

TEST_CASE("run: attention_cost: one bench_attention call per cell, figures and the summary's slopes") {
  const std::string dir = fresh_dir("cost");
  const std::string path = write_file(dir, R"(experiment: cost
run: attention_cost
set: {heads: 2, head_dim: 16, repeats: 1, threads: 1}
grid:
  type: [causal, flash, linear]
  n: [32, 64]
metrics: [ms, attn_ms, proj_ms, peak_extra_mb, est_mb]
summary: {x: n, series: type, slopes: [ms]}
)");
  Experiment exp = load_experiment(path);
  REQUIRE(exp.cells.size() == 6);
  CHECK(has(exp.cells[0].identity, "threads: 1"));  // timings depend on threads: part of the identity
  const std::string out = dir + "/out";
  REQUIRE(run_experiment(exp, out, {}) == 0);
  const auto done = nlohmann::json::parse(slurp(out + "/cells/type=causal_n=64/done.json"));
  const auto& f = done["figures"];
  CHECK(f["ms"].get<double>() > 0.0);
  CHECK(f["attn_ms"].get<double>() == doctest::Approx(f["ms"].get<double>() - f["proj_ms"].get<double>()));
  // naive causal keeps P and dS: 2 heads · 64² floats each, 2 maps
  CHECK(f["est_mb"].get<double>() == doctest::Approx(4.0 * 64 * 64 * (2 + 2) / (1024.0 * 1024.0)));
  const auto flash = nlohmann::json::parse(slurp(out + "/cells/type=flash_n=64/done.json"));
  CHECK(flash["figures"]["est_mb"].get<double>() == 0.0);
  const auto sum = summarize(exp, out);
  REQUIRE(sum.size() == 3);
  for (const auto& r : sum) {
    CHECK(r.value.has_value());
    CHECK(r.pass == -1);  // slopes without a check
  }
  CHECK(failed_checks(exp, out).empty());
}
