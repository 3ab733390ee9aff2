// Experiment cells that compute figures instead of training (`run:` in an experiment file,
// experiment.h). A kind has named parameters (with defaults, set / grid / tie in the file) and
// named figures (the metrics the file may tabulate); a cell computes its figures in-process.
//
//   invariants       E1 (docs/experiments.md). Parameter `check` picks what a cell verifies:
//     variance  q, k with N(0,1) entries, d_k of them, `samples` independent pairs:
//               var_ratio = Var(q·k)/d_k (Vaswani et al. 3.2.1: 1), logit_var = Var(s·q·k) with
//               s = attention_scale(scale, d_k) as the attention modules compute it (1 for the
//               default inv_sqrt_dk). pass: both within `tol` of 1.
//     flash     one ScaledDotProductAttention module (registry type scaled_dot_product) built
//               twice from the same seed, impl naive and impl flash, weights redrawn N(0, 1/C),
//               self-attention over x ~ N(0,1) [batch, n, C] with the given mask, forward then
//               backward from dout ~ N(0,1). out_diff = max|out_flash − out_naive| / max(1,
//               max|out_naive|); dq/dk/dv_diff the same for the gradients w.r.t. Q, K, V (the
//               projections' outputs); grad_diff their max; out_abs, grad_abs the same maxima
//               undivided. pass: out_diff ≤ tol_out, grad_diff ≤ tol_grad, and the two modules
//               really took the two paths.
//     rope      `samples` pairs q, k (N(0,1), d_k) at positions m, n < max_pos, rotated with
//               rope_rotate (positions.h); scores s = (R_m q)·(R_n k)/√d_k. rope_diff =
//               max|s(m+shift, n+shift) − s(m, n)|; rope_change = mean|s(m+shift, n) − s(m, n)|
//               (that the scores do depend on m − n, else the check would be vacuous). pass:
//               rope_diff ≤ tol and rope_change ≥ 1e-3.
//   attention_cost   E5: bench_attention (bench.h) on one (type, n): the module's forward
//                    (+ backward) median ms, ms_min, proj_ms (the projections' GEMMs alone),
//                    attn_ms = ms − proj_ms, peak_extra_mb, est_mb (n×n buffers), gflops.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnlab {

struct KindParam {
  std::string key;
  std::string def;                    // default value ("" = required)
  std::string type;                   // int | number | bool | choice | scale | text
  std::vector<std::string> choices;   // type choice
  double min = 0.0, max = 0.0;        // int / number: inclusive range (min > max: unbounded)
  std::vector<std::string> checks;    // invariants: the checks that read it (empty: every cell)
  std::map<std::string, std::string> check_defaults;  // invariants: a default of its own for a check
  bool identity = true;               // part of the cell's identity (threads of invariants: no)
  std::string help;
};

struct CellKind {
  std::string name, summary;
  std::vector<KindParam> params;
  std::vector<std::string> figures;
};

// The kinds that do not train; null for "train" or an unknown name.
const std::vector<CellKind>& cell_kinds();
const CellKind* find_cell_kind(const std::string& run);
const KindParam* find_kind_param(const CellKind& kind, const std::string& key);

// Resolves one cell's parameters: `given` are the keys set / --set, grid and tie gave it (the
// last value wins), `grid_keys` the grid and tie keys among them. A grid or tie key the cell's
// check does not read is an error; a `set` key it does not read is left out. Defaults fill the
// rest, `threads` 0 (or above cap) becomes cap. Values are checked. UserError (without the file
// name; the caller adds it) on a problem.
std::map<std::string, std::string> resolve_cell_params(const CellKind& kind,
                                                       const std::vector<std::pair<std::string, std::string>>& given,
                                                       const std::vector<std::string>& grid_keys, int cap);
// The identity string of a resolved cell (its kind and the identity parameters).
std::string kind_cell_identity(const CellKind& kind, const std::map<std::string, std::string>& params);

struct CellFigures {
  std::map<std::string, std::optional<double>> values;  // every figure of the kind (null: n/a)
  std::vector<std::string> notes;
};
// Computes a resolved cell's figures (sets the OpenMP threads to params["threads"]).
CellFigures compute_cell_figures(const CellKind& kind, const std::map<std::string, std::string>& params);

}  // namespace attnlab
