// Experiments as data: a YAML file under configs/experiments/ names a base config, a grid of
// config keys to sweep and the metrics to tabulate; `attnlab experiment run FILE` trains every
// cell of the grid into its own run directory and writes results.csv, results.md and plots.
// docs/experiments.md ("Running experiments") describes the file format and the command.
//
//   experiment: e3_attention_vs_bottleneck
//   base: e3_reverse.yaml              # relative to the experiment file
//   set: [train.threads=1]             # overrides for every cell (list of k=v, or a mapping)
//   grid:                              # cartesian product, first key outermost; or a list of such
//     model.bottleneck: [false, true]  #   mappings (their products one after the other)
//     data.max_len: [8, 16, 32]
//   tie: {data.min_len: data.max_len}  # a key that takes another grid key's value in each cell
//   metrics: [greedy_token_acc, loss@400, mirror_weight]
//   measure: [mirror_weight]           # attention measurements (also implied by metrics)
//   measure_examples: 64               # val examples the measurements read (default 64)
//   table: {rows: data.max_len, cols: model.bottleneck, value: greedy_token_acc}
//   plot: {x: data.max_len, y: greedy_token_acc, series: model.bottleneck}   # or a list
//   plot: {x: step, y: label_acc}      # learning curves from the label_acc@STEP metrics, one line
//                                      #   per cell (per series value when series is given)
//
// A metric is a name of the task's evaluation (loss, ppl, token_acc, label_acc, class_acc,
// exact_match, greedy_token_acc) taken from the cell's final val row, `NAME@STEP` for the val row
// at STEP (an evaluation step of the cell), or a measurement output (below).
//
// Measurements (computed from the final checkpoint over the first measure_examples val examples):
//   mirror_weight   encoder_decoder on reverse, teacher-forced (decoder input = sep + the true
//                   output): for output position t of a source of length L, the cross-attention
//                   weight on source position L-1-t, averaged over heads, then over every (example,
//                   t < L); per decoder layer; reported: the best layer's value (mirror_layer: which).
//   answer_mass     decoder or encoder on mqar / needle: at each labelled (query) position q, the
//   noise_mass      self-attention weight on the answer, averaged over heads, then over queries; the
//                   answer is the position of the VALUE token of the queried pair (the latest j < q
//                   with input[j-1] = input[q] (the key) and input[j] = label[q]). noise_mass: the
//                   summed weight on filler positions (mqar: token "_"; needle: the filler tokens
//                   f0..). Per layer; reported at the retrieval layer (retrieval_layer), the layer
//                   whose answer_mass is highest. Differential attention's map is A1 - λ A2, so its
//                   masses may be negative.
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
  std::vector<std::pair<std::string, std::string>> values;  // grid key -> value, in column order (set keys only)
  std::vector<std::string> overrides;  // key=value applied to the base: set, --set, grid, tie, threads
  Config config;                       // the resolved config
};

struct ExperimentTable {
  std::string rows, cols, value;
};
struct ExperimentPlot {
  std::string x, y, series;  // series may be empty; x "step": y's NAME@STEP columns against STEP
};

struct Experiment {
  std::string name;       // `experiment:`
  std::string file;       // the experiment file
  std::string base;       // the base config's path (resolved)
  std::vector<std::string> grid_keys;  // every grid key, in order of first appearance
  std::vector<std::string> metrics;    // the table's columns (name or name@step)
  std::vector<std::string> measure;    // measurement outputs asked for (metrics' ones included)
  int measure_examples = 64;
  int threads = 0;                     // train.threads of every cell (see load_experiment)
  std::optional<ExperimentTable> table;
  std::vector<ExperimentPlot> plots;
  std::vector<ExperimentCell> cells;
  bool needs(const std::string& measurement) const;  // "mirror_weight" or "recall_mass"
};

struct ExperimentOptions {
  std::vector<std::string> sets;  // --set k=v for every cell (after the file's `set:`)
  int jobs = 1;                   // cells run at once
  int cores = 0;                  // 0 = std::thread::hardware_concurrency()
};

// Parses, expands and validates the experiment: every cell's config is loaded and its dataset
// built, so a typo is a UserError (naming the file and the key, or the cell) before anything runs.
// Each cell's train.threads is capped so that jobs × threads ≤ cores (0 in the config = cores / jobs).
Experiment load_experiment(const std::string& path, const ExperimentOptions& opt = {});

// runs/experiments/<name>
std::string default_output_dir(const Experiment& exp);

// ---- measurements over attention maps (pure functions, unit-tested on hand-made maps) ----

// w [B,H,Tq,Tk] cross-attention weights; src_len[b] = L_b. Mean over heads, then over every
// (b, t < min(L_b, Tq)), of w[b,h,t,L_b-1-t].
double mirror_weight_of(const float* w, int B, int H, int Tq, int Tk, const std::vector<int>& src_len);

struct RecallMass {
  double answer = 0.0, noise = 0.0;  // means over queries of the head-averaged weight / filler mass
  int queries = 0;                   // queries with an answer position
};
// w [B,H,T,T] self-attention weights; inputs[b], labels[b] of length ≤ T (labels -1 = no query).
RecallMass recall_mass_of(const float* w, int B, int H, int T, const std::vector<std::vector<int>>& inputs,
                          const std::vector<std::vector<int>>& labels, const std::function<bool(int)>& is_filler);

// The measurements a cell asks for, from a checkpoint: {"mirror_weight": x, "mirror_layer": l,
// "answer_mass": ..., "noise_mass": ..., "retrieval_layer": ...} (null where not applicable,
// e.g. mirror_weight of a bottleneck model) and per-layer detail under "layers".
struct Measurements {
  std::map<std::string, std::optional<double>> values;
  std::map<std::string, std::vector<double>> layers;  // mirror_weight / answer_mass / noise_mass per layer
  std::vector<std::string> notes;
};
Measurements measure_checkpoint(const Experiment& exp, const std::string& checkpoint);

// ---- running ----

struct CellOutcome {
  bool skipped = false;      // done.json was there already
  bool interrupted = false;  // stopped by a signal: the cell resumes on the next run
  double seconds = 0.0;
};

// Trains (or resumes, or just measures) one cell in out_dir/cells/<name> and writes its done.json
// atomically. A cell with a done.json for the same config is skipped; a cell whose run stopped
// part-way continues with the trainer's resume; one whose config changed starts afresh.
// on_step(done, total) is called after every training step (live progress).
CellOutcome run_cell(const Experiment& exp, size_t index, const std::string& out_dir, bool handle_signals,
                     const std::function<void(int, int)>& on_step = {});

// Whether cells/<name>/done.json exists and belongs to the cell's current config.
bool cell_done(const Experiment& exp, size_t index, const std::string& out_dir);

struct RunExperimentOptions {
  int jobs = 1;
  // Runs cell `index` to completion and returns its exit status (0 done, 130 interrupted, else
  // failed); null: run_cell in this process (jobs must then be 1).
  std::function<int(size_t index)> launch;
  std::function<void(const std::string&)> print;       // a finished progress line
  std::function<void(const std::string&)> live;        // a line overwritten in place (may be null)
};
// Runs every cell not done yet (resume), printing `cell i/N (k=v, ...) | ETA ...`, then writes
// the results. Returns 0, or 130 when interrupted.
int run_experiment(const Experiment& exp, const std::string& out_dir, const RunExperimentOptions& opt);

// Reads every cells/*/done.json and writes results.csv, results.md and experiment.json (what
// scripts/plot_experiment.py reads). Returns the number of finished cells.
int write_results(const Experiment& exp, const std::string& out_dir);

// The command that makes the plots, and whether /usr/bin/python3 with matplotlib and the script
// are there; run_plots executes it (UserError if it fails).
struct PlotCommand {
  std::string command, why_not;  // why_not: empty when it can run
};
PlotCommand plot_command(const Experiment& exp, const std::string& out_dir);

// Spawns `exe args...` with stdout and stderr appended to log_path; waits; returns its exit status.
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path);

}  // namespace attnlab
