// Experiments as data: an experiment file (configs/experiments/) names a base config or a cell
// kind, a grid of keys to sweep and the metrics to tabulate; every cell of the grid runs into its
// own directory and the results go to results.csv, results.md and plots. docs/experiments.md
// ("Running experiments") describes the file format, the cell kinds and the measurements.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace attnlab {

struct ExperimentCell {
  std::string name;  // its directory under cells/
  std::vector<std::pair<std::string, std::string>> values;  // grid key -> value, in column order
  std::vector<std::string> overrides;  // key=value applied to the base: set, --set, grid, tie, threads
  Config config;                       // the resolved config (run: train)
  std::map<std::string, std::string> params;  // other kinds: every parameter the cell reads, defaults filled in
  std::string identity;                // what a done.json must match to count as this cell's
  int threads = 0;                     // OpenMP threads the cell runs with
};

struct ExperimentTable {
  std::string rows, cols, value;  // grid key, grid key, column
};
struct ExperimentPlot {
  std::string x, y, series;  // series may be empty; x "step": y's NAME@STEP columns against STEP
  bool log = false;          // log-log axes
};

// `summary:`: log-log slopes of columns against a numeric grid key, and checks on them.
struct SummaryCheck {
  std::string kind;              // "slope" or "crossover"
  std::string metric, series;    // the slope of metric for series; crossover: series below `below`
  std::string below;
  std::optional<double> min, max;
};
struct ExperimentSummary {
  std::string x, series;             // series may be empty (one fit over every cell)
  std::vector<std::string> slopes;   // metrics fitted (those named by the checks included)
  std::vector<SummaryCheck> checks;
};

// `bleu_by_length:` (docs/experiments.md): the final checkpoint decodes the examples of one split
// (greedy, or beam search with sample.beam_width > 1, as `attnlab eval` does), grouped by source
// length in tokens into buckets (0, e1], (e1, e2], ...; corpus BLEU and chrF per bucket.
struct BleuByLength {
  std::vector<int> edges;         // ascending upper bounds; longer sources are not scored
  std::string split = "val";      // val or test
  std::vector<std::string> sets;  // data.KEY=VALUE for the evaluation data (as `attnlab eval --set`)
  // the bucket's column suffix: "1-20", "21-40", ...
  std::vector<std::string> labels() const;
};

struct Experiment {
  std::string name;       // `experiment:`
  std::string file;       // the experiment file
  std::string run = "train";  // the cell kind: train, invariants, attention_cost
  std::string base;       // the base config's path (resolved; run: train only)
  std::vector<std::string> grid_keys;  // every grid key, in order of first appearance
  std::vector<std::string> metrics;    // the table's columns (name or name@step)
  std::vector<std::string> measure;    // measurement outputs asked for (metrics' ones included)
  int measure_examples = 64;
  int decode_context = 2048, decode_tokens = 32, decode_repeats = 5;  // `decode:` (cache_values, decode_ms_per_token)
  int threads = 0;                     // the cells' thread cap: cores / jobs, at least 1
  std::optional<BleuByLength> bleu_by_length;
  std::optional<ExperimentTable> table;
  std::vector<ExperimentPlot> plots;
  std::optional<ExperimentSummary> summary;
  std::vector<ExperimentCell> cells;
  std::vector<std::string> cli_sets;   // the --set overrides of this invocation (results.md records them)
  bool needs(const std::string& measurement) const;  // "mirror_weight", "recall_mass", "decode", "bleu_by_length"
};

struct ExperimentOptions {
  std::vector<std::string> sets;  // --set k=v for every cell (after the file's `set:`)
  int jobs = 1;                   // cells run at once
  int cores = 0;                  // 0 = std::thread::hardware_concurrency()
};

// Reads, expands and checks the file: every cell's config loads and its dataset builds, so a typo
// is a UserError naming the file and the key (or the cell) before anything runs. Each cell's
// threads are capped so that jobs × threads ≤ cores (0 = cores / jobs).
Experiment load_experiment(const std::string& path, const ExperimentOptions& opt = {});

// runs/experiments/<name>
std::string default_output_dir(const Experiment& exp);

// ---- measurements over attention maps (docs/experiments.md defines them) ----

// w [B,H,Tq,Tk] cross-attention weights: the mean of w[b,h,t,L_b-1-t] over heads, then over (b, t).
double mirror_weight_of(const float* w, int B, int H, int Tq, int Tk, const std::vector<int>& src_len);

struct RecallMass {
  double answer = 0.0, noise = 0.0;  // means over queries of the head-averaged weight / filler mass
  double answer_share = 0.0, noise_share = 0.0;  // the same over rows divided by Σ_j |w_j|
  int queries = 0;                   // queries with an answer position
};
// w [B,H,T,T] self-attention weights; inputs[b], labels[b] of length ≤ T (label -1: no query);
// is_filler(b, j): position j of example b is noise.
RecallMass recall_mass_of(const float* w, int B, int H, int T, const std::vector<std::vector<int>>& inputs,
                          const std::vector<std::vector<int>>& labels,
                          const std::function<bool(int b, int j)>& is_filler);

// The measurements the experiment asks for, from a checkpoint (null where one does not apply).
struct Measurements {
  std::map<std::string, std::optional<double>> values;
  std::map<std::string, std::vector<double>> layers;  // the per-layer values behind them
  std::map<std::string, long> counts;                 // bleu_by_length: examples per bucket ("1-20", "beyond")
  std::vector<std::string> notes;
};
Measurements measure_checkpoint(const Experiment& exp, const std::string& checkpoint);

// ---- running ----

struct CellOutcome {
  bool skipped = false;      // done.json was there already
  bool interrupted = false;  // stopped by a signal: the cell resumes on the next run
  double seconds = 0.0;
};

// Runs one cell in out_dir/cells/<name> and writes its done.json last: skipped when done for the
// same config, resumed when stopped part-way, started afresh when its config changed.
// on_step(done, total) follows the training steps.
CellOutcome run_cell(const Experiment& exp, size_t index, const std::string& out_dir, bool handle_signals,
                     const std::function<void(int, int)>& on_step = {});

// Whether cells/<name>/done.json exists and belongs to the cell's current config.
bool cell_done(const Experiment& exp, size_t index, const std::string& out_dir);

struct RunExperimentOptions {
  int jobs = 1;
  // Runs cell `index` elsewhere (a child process) and returns its exit status (0 done, 130
  // interrupted, else failed); it should stop the cell once stop() is true. Null: run_cell in
  // this process (jobs must then be 1).
  std::function<int(size_t index, const std::function<bool()>& stop)> launch;
  std::function<void(const std::string&)> print;       // a finished progress line
  std::function<void(const std::string&)> live;        // a line overwritten in place (may be null)
  bool quiet = false;                                   // no "cell i/N ... | ETA" lines (print still gets the rest)
};
// Runs every cell not done yet with progress lines, then writes the results. Returns 0, or 130
// when interrupted.
int run_experiment(const Experiment& exp, const std::string& out_dir, const RunExperimentOptions& opt);

// From every done.json: results.csv, results.md, experiment.json (for scripts/plot_experiment.py)
// and summary.csv. Returns the number of finished cells.
int write_results(const Experiment& exp, const std::string& out_dir);

// ---- summary: slopes and crossovers ----

// Least-squares slope of log y against log x over the points with x, y > 0 (NaN if underdetermined).
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);
// x ascending: the smallest x[i] from which a[j] < b[j] for every j ≥ i (NaN: not below).
std::optional<double> crossover_x(const std::vector<double>& x, const std::vector<double>& a,
                                  const std::vector<double>& b);

struct SummaryRow {
  std::string name;                  // "slope(attn_ms, causal)", "crossover(ms, linear < causal)"
  std::optional<double> value;
  std::optional<double> min, max;    // the check's bounds, if this row is a check
  int pass = -1;                     // 1 / 0 for a check, -1 for a slope no check names
};
// The summary of the finished cells (empty without `summary:`).
std::vector<SummaryRow> summarize(const Experiment& exp, const std::string& out_dir);

// What `experiment run --strict` fails on, one line each: unfinished cells, `pass` figures of 0,
// failed summary checks.
std::vector<std::string> failed_checks(const Experiment& exp, const std::string& out_dir);

// The command that makes the plots, and why it cannot run here (empty: it can).
struct PlotCommand {
  std::string command, why_not;  // why_not: empty when it can run
};
PlotCommand plot_command(const Experiment& exp, const std::string& out_dir);
// Runs it through the shell; false if it failed.
bool run_plot_command(const PlotCommand& pc);

// The launcher of `experiment run --jobs N`: cell `index` runs as `attnlab experiment cell FILE
// --out OUT --index i --jobs N [--set ...]`, this program started again, its console in
// OUT/cells/<cell>/console.log.
std::function<int(size_t index, const std::function<bool()>& stop)> cell_process_launcher(
    const Experiment& exp, const std::string& file, const std::string& out_dir, int jobs,
    const std::vector<std::string>& sets);

}  // namespace attnlab
