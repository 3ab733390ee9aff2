// Experiments as data: a YAML file under configs/experiments/ names a base config, a grid of
// config keys to sweep and the metrics to tabulate; `attnlab experiment run FILE` trains every
// cell of the grid into its own run directory and writes results.csv, results.md and plots.
// docs/experiments.md ("Running experiments") describes the file format and the command.
//
//   experiment: e3_attention_vs_bottleneck
//   run: train                         # the cell kind: train (default), invariants, attention_cost
//   base: e3_reverse.yaml              # relative to the experiment file (run: train only)
//   set: [train.threads=1]             # overrides for every cell (list of k=v, or a mapping)
//   grid:                              # cartesian product, first key outermost; or a list of such
//     model.bottleneck: [false, true]  #   mappings (their products one after the other)
//     data.max_len: [8, 16, 32]
//   tie: {data.min_len: data.max_len}  # a key that takes another grid key's value in each cell
//   metrics: [greedy_token_acc, loss@400, mirror_weight]
//   measure: [mirror_weight]           # attention measurements (also implied by metrics)
//   measure_examples: 64               # val examples the measurements read (default 64)
//   table: {rows: data.max_len, cols: model.bottleneck, value: greedy_token_acc}
//   plot: {x: data.max_len, y: greedy_token_acc, series: model.bottleneck}   # or a list; log: true
//   plot: {x: step, y: label_acc}      # learning curves from the label_acc@STEP metrics, one line
//                                      #   per cell (per series value when series is given)
//   summary:                           # optional: log-log slopes over a numeric grid key, and checks
//     x: n
//     series: type
//     slopes: [attn_ms, peak_extra_mb]
//     checks:
//       - {slope: attn_ms, series: causal, min: 1.8, max: 2.2}
//       - {crossover: ms, series: linear, below: causal, max: 1024}
//
// A metric is a name of the task's evaluation (loss, ppl, token_acc, label_acc, class_acc,
// exact_match, greedy_token_acc) taken from the cell's final val row, `NAME@STEP` for the val row
// at STEP (an evaluation step of the cell), or a measurement output (below).
//
// Cells that do not train (experiment_kinds.h): with `run: invariants` or `run: attention_cost`
// there is no base config; set, grid and tie take the kind's own parameters (an unknown one is an
// error naming the file and the key), the metrics are the kind's figures, and each cell computes
// them in-process and writes done.json with them, so resume, the tables, `experiment show` and the
// plots work as for training cells.
//   invariants      E1: check = variance (Var(q·k)/d_k and the scaled logits' variance over random
//                   q, k), flash (scaled_dot_product impl flash vs impl naive: outputs and the
//                   gradients w.r.t. Q, K, V), rope (scores after RoPE under a common position
//                   shift); every cell has a `pass` figure against its tolerance.
//   attention_cost  E5: one attention module forward (+ backward) at one length through
//                   bench_attention (bench.h): ms, attn_ms (ms − the projections' ms), peak extra MB.
//
// Summary (any kind): per value of `series`, the least-squares slope of log(metric) against
// log(x) over the finished cells (cells sharing a point averaged); checks compare a slope with
// min/max, or the crossover, the smallest x from which `series` stays below `below` on the
// metric, with max. Written to results.md ("Summary") and summary.csv.
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
//                   whose answer_share is highest. Differential attention's map is A1 - λ A2, so its
//                   masses may be negative, and its rows sum to 1 - λ, not 1.
//   answer_share    the same with each (query, head) row first divided by Σ_j |w_j| over the
//   noise_share     sequence: scale-free, so differential maps compare with softmax's (for which
//                   share = mass, its rows being non-negative and summing to 1).
//   cache_values    decoder with an incremental cache (any data): cached greedy decoding of
//   decode_ms_per_token   decode.tokens tokens after filling the cache with decode.context tokens (val
//                   text, or random ids for a synthetic task); ms per token, median of decode.repeats
//                   (bench.h decode_at_context). cache_values: the floats the decoder self-attention
//                   caches hold afterwards / the cached positions, per layer (reported: the largest;
//                   2·n_kv_heads·d_head for a KV cache). A model with positions rope, alibi or none is
//                   rebuilt with block_size = context + tokens (its weights do not depend on it);
//                   learned or sinusoidal positions need that block_size already.
//
//   decode: {context: 2048, tokens: 32, repeats: 5}   # the decode measurement's settings (defaults)
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
  Config config;                       // the resolved config (run: train)
  std::map<std::string, std::string> params;  // other kinds: every parameter the cell reads, defaults filled in
  std::string identity;                // what a done.json must match to count as this cell's
  int threads = 0;                     // OpenMP threads the cell runs with
};

struct ExperimentTable {
  std::string rows, cols, value;
};
struct ExperimentPlot {
  std::string x, y, series;  // series may be empty; x "step": y's NAME@STEP columns against STEP
  bool log = false;          // log-log axes
};

// `summary:` (see the top of this file).
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
  int threads = 0;                     // train.threads of every cell (see load_experiment)
  std::optional<ExperimentTable> table;
  std::vector<ExperimentPlot> plots;
  std::optional<ExperimentSummary> summary;
  std::vector<ExperimentCell> cells;
  bool needs(const std::string& measurement) const;  // "mirror_weight", "recall_mass" or "decode"
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
  double answer_share = 0.0, noise_share = 0.0;  // the same over rows divided by Σ_j |w_j|
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

// Reads every cells/*/done.json and writes results.csv, results.md, experiment.json (what
// scripts/plot_experiment.py reads) and, with a `summary:`, summary.csv. Returns the number of
// finished cells.
int write_results(const Experiment& exp, const std::string& out_dir);

// ---- summary: slopes and crossovers (pure functions, unit-tested on synthetic data) ----

// Least-squares slope of log y against log x over the points with x, y > 0 (NaN with fewer than
// two such points or a single x).
double loglog_slope(const std::vector<double>& x, const std::vector<double>& y);
// x ascending, a and b of the same length: the smallest x[i] such that a[j] < b[j] for every
// j ≥ i (nullopt when a is not below b at the last point). NaN entries count as "not below".
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

// What `experiment run --strict` fails on: cells not finished, cells whose `pass` figure is 0, and
// summary checks that failed (one line each; empty when all is well).
std::vector<std::string> failed_checks(const Experiment& exp, const std::string& out_dir);

// The command that makes the plots, and whether /usr/bin/python3 with matplotlib and the script
// are there; run_plots executes it (UserError if it fails).
struct PlotCommand {
  std::string command, why_not;  // why_not: empty when it can run
};
PlotCommand plot_command(const Experiment& exp, const std::string& out_dir);

// Spawns `exe args...` with stdout and stderr appended to log_path; waits; returns its exit status.
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path);

}  // namespace attnlab
