// Cell kinds that compute figures instead of training (kinds.h): their parameter tables,
// resolving and checking a cell's parameters, and attention_cost (E5) over bench_attention. The
// invariants checks (E1) are in invariants.cpp.
#include "experiment/kinds.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "bench/bench.h"
#include "experiment/internal.h"

namespace attnlab {

namespace {

KindParam param(std::string key, std::string def, std::string type, std::string help,
                std::vector<std::string> checks = {}) {
  KindParam p;
  p.key = std::move(key);
  p.def = std::move(def);
  p.type = std::move(type);
  p.help = std::move(help);
  p.checks = std::move(checks);
  p.min = 1.0, p.max = 0.0;  // unbounded unless set below
  return p;
}
KindParam ranged(KindParam p, double lo, double hi) {
  p.min = lo, p.max = hi;
  return p;
}
KindParam per_check(KindParam p, std::map<std::string, std::string> defaults) {
  p.check_defaults = std::move(defaults);
  return p;
}
KindParam choice(std::string key, std::string def, std::vector<std::string> choices, std::string help,
                 std::vector<std::string> checks = {}) {
  KindParam p = param(std::move(key), std::move(def), "choice", std::move(help), std::move(checks));
  p.choices = std::move(choices);
  return p;
}

std::vector<CellKind> make_kinds() {
  std::vector<CellKind> kinds;
  {
    CellKind k;
    k.name = "invariants";
    k.summary = "E1: score variance, flash = naive, RoPE shift invariance";
    const std::vector<std::string> V = {"variance"}, F = {"flash"}, R = {"rope"}, VR = {"variance", "rope"};
    k.params = {
        choice("check", "", {"variance", "flash", "rope"}, "what the cell verifies"),
        ranged(param("seed", "1", "int", "random numbers of the check"), 0, 1e15),
        ranged(param("threads", "0", "int", "OpenMP threads (0: cores / --jobs)"), 0, 1024),
        ranged(param("d_k", "64", "int", "head dimension (rope: even)"), 1, 4096),
        per_check(ranged(param("samples", "", "int", "independent (q, k) pairs (variance 200000, rope 2000)", VR), 2, 1e8),
                  {{"variance", "200000"}, {"rope", "2000"}}),
        param("scale", "inv_sqrt_dk", "scale", "the softmax scale: inv_sqrt_dk, none or a number", V),
        per_check(ranged(param("tol", "", "number", "bound: variance |ratio − 1| (0.03), rope rope_diff (1e-5)", VR), 0, 1e9),
                  {{"variance", "0.03"}, {"rope", "1e-5"}}),
        choice("mask", "causal", {"causal", "none", "padding", "causal_padding"},
               "flash: the mask (padding: random padded keys per row)", F),
        ranged(param("n", "100", "int", "sequence length (Tq = Tk)", F), 1, 1 << 16),
        ranged(param("heads", "4", "int", "query heads", F), 1, 256),
        ranged(param("kv_heads", "0", "int", "KV heads (0: heads; fewer: GQA)", F), 0, 256),
        ranged(param("batch", "2", "int", "batch rows", F), 1, 64),
        ranged(param("tol_out", "1e-6", "number", "bound on out_diff", F), 0, 1e9),
        ranged(param("tol_grad", "1e-5", "number", "bound on grad_diff", F), 0, 1e9),
        ranged(param("max_pos", "4096", "int", "positions m, n drawn below this", R), 1, 1 << 30),
        ranged(param("shift", "1000", "int", "the common shift of m and n", R), -(1 << 30), 1 << 30),
        ranged(param("base", "10000", "number", "RoPE base", R), 1.0000001, 1e12),
    };
    k.params[2].identity = false;  // threads: the figures do not depend on it
    k.figures = {"var_ratio", "logit_var", "out_diff", "dq_diff", "dk_diff", "dv_diff", "grad_diff",
                 "out_abs", "grad_abs", "rope_diff", "rope_change", "pass"};
    kinds.push_back(std::move(k));
  }
  {
    CellKind k;
    k.name = "attention_cost";
    k.summary = "E5: one attention module's forward (+ backward) time and peak extra memory";
    k.params = {
        param("type", "causal", "text", "attention type (registry name)"),
        choice("impl", "naive", {"naive", "flash", "auto"}, "scaled_dot_product family: implementation"),
        ranged(param("n", "1024", "int", "sequence length"), 1, 1 << 20),
        ranged(param("heads", "8", "int", "heads"), 1, 256),
        ranged(param("head_dim", "64", "int", "head dimension"), 1, 4096),
        ranged(param("kv_heads", "0", "int", "KV heads (0: heads)"), 0, 256),
        ranged(param("batch", "1", "int", "batch rows"), 1, 1024),
        param("causal", "true", "bool", "causal mask (types causal / bidirectional fix their own)"),
        param("backward", "true", "bool", "time forward + backward"),
        ranged(param("repeats", "3", "int", "timed calls (median)"), 1, 1000),
        ranged(param("warmup", "1", "int", "untimed calls before (the first measures memory)"), 1, 1000),
        ranged(param("seed", "1", "int", "random inputs and weights"), 0, 1e15),
        ranged(param("threads", "0", "int", "OpenMP threads (0: cores / --jobs)"), 0, 1024),
        ranged(param("max_mem_gb", "8", "number", "skip when the n×n buffers would exceed this"), 0, 1e6),
    };
    k.figures = {"ms", "ms_min", "proj_ms", "attn_ms", "peak_extra_mb", "est_mb", "gflops"};
    kinds.push_back(std::move(k));
  }
  return kinds;
}

std::string param_names(const CellKind& k) {
  std::vector<std::string> names;
  for (const auto& p : k.params) names.push_back(p.key);
  return fmt::format("{}", fmt::join(names, ", "));
}

// The bench_attention options of a resolved attention_cost cell.
AttentionBenchOptions attention_cost_options(const std::map<std::string, std::string>& p) {
  auto num = [&](const std::string& k) { return std::strtoll(p.at(k).c_str(), nullptr, 10); };
  AttentionBenchOptions o;
  o.types = {p.at("type")};
  o.lengths = {int(num("n"))};
  o.backward = p.at("backward") == "true";
  o.batch = int(num("batch"));
  o.heads = int(num("heads"));
  o.head_dim = int(num("head_dim"));
  o.kv_heads = int(num("kv_heads"));
  o.causal = p.at("causal") == "true";
  o.impl = p.at("impl");
  o.repeats = int(num("repeats"));
  o.warmup = int(num("warmup"));
  o.max_mem_gb = std::strtod(p.at("max_mem_gb").c_str(), nullptr);
  o.seed = uint64_t(num("seed"));
  return o;
}

bool reads(const KindParam& p, const std::string& check) {
  return p.checks.empty() || std::find(p.checks.begin(), p.checks.end(), check) != p.checks.end();
}

// "" when v is a valid value of p, else why not.
std::string check_value(const KindParam& p, const std::string& v) {
  auto range = [&]() -> std::string {
    if (p.min > p.max) return "";
    return fmt::format(" in [{}, {}]", format_number(p.min), format_number(p.max));
  };
  if (p.type == "int" || p.type == "number") {
    char* end = nullptr;
    const double x = p.type == "int" ? double(std::strtoll(v.c_str(), &end, 10)) : std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(x) || (p.min <= p.max && (x < p.min || x > p.max)))
      return fmt::format("expected {}{}, got '{}'", p.type == "int" ? "an integer" : "a number", range(), v);
  } else if (p.type == "bool") {
    if (v != "true" && v != "false") return fmt::format("expected true or false, got '{}'", v);
  } else if (p.type == "choice") {
    if (std::find(p.choices.begin(), p.choices.end(), v) == p.choices.end())
      return fmt::format("expected one of {}, got '{}'", fmt::join(p.choices, ", "), v);
  } else if (p.type == "scale") {
    if (v == "inv_sqrt_dk" || v == "none") return "";
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(x > 0.0) || !std::isfinite(x))
      return fmt::format("expected inv_sqrt_dk, none or a positive number, got '{}'", v);
  }
  return "";
}

}  // namespace

const std::vector<CellKind>& cell_kinds() {
  static const std::vector<CellKind> kinds = make_kinds();
  return kinds;
}

const CellKind* find_cell_kind(const std::string& run) {
  for (const auto& k : cell_kinds())
    if (k.name == run) return &k;
  return nullptr;
}

const KindParam* find_kind_param(const CellKind& kind, const std::string& key) {
  for (const auto& p : kind.params)
    if (p.key == key) return &p;
  return nullptr;
}

std::map<std::string, std::string> resolve_cell_params(const CellKind& kind,
                                                       const std::vector<std::pair<std::string, std::string>>& given,
                                                       const std::vector<std::string>& grid_keys, int cap) {
  std::map<std::string, std::string> g;
  for (const auto& [k, v] : given) {
    if (!find_kind_param(kind, k))
      user_error("unknown parameter '{}' of run: {} (its parameters: {})", k, kind.name, param_names(kind));
    g[k] = v;
  }
  std::string check;
  if (kind.name == "invariants") {
    if (!g.count("check"))
      user_error("parameter 'check' is missing: run: invariants needs check: variance, flash or rope (in set or grid)");
    check = g["check"];
    const std::string why = check_value(*find_kind_param(kind, "check"), check);
    if (!why.empty()) user_error("check: {}", why);
  }
  std::map<std::string, std::string> out;
  for (const auto& p : kind.params) {
    const bool explicit_ = g.count(p.key) > 0;
    if (!check.empty() && !reads(p, check)) {
      if (explicit_ && std::find(grid_keys.begin(), grid_keys.end(), p.key) != grid_keys.end())
        user_error("'{}' is not a parameter of check {} (it belongs to check {}); put it in a grid block of its own",
                   p.key, check, fmt::join(p.checks, ", "));
      continue;  // a set key another check reads
    }
    std::string v = explicit_ ? g[p.key] : p.check_defaults.count(check) ? p.check_defaults.at(check) : p.def;
    if (v.empty()) user_error("parameter '{}' is missing", p.key);
    const std::string why = check_value(p, v);
    if (!why.empty()) user_error("{}: {}", p.key, why);
    if (p.key == "threads") {
      const long t = std::strtol(v.c_str(), nullptr, 10);
      if (t <= 0 || t > cap) v = std::to_string(cap);
    }
    out[p.key] = v;
  }
  // cross-parameter checks
  auto num = [&](const std::string& k) { return std::strtoll(out.at(k).c_str(), nullptr, 10); };
  if (kind.name == "invariants") {
    if (check == "rope" && num("d_k") % 2 != 0) user_error("d_k: RoPE rotates pairs, so d_k must be even, got {}", num("d_k"));
    if (check == "flash") {
      const long long H = num("heads"), Hkv = num("kv_heads") > 0 ? num("kv_heads") : H;
      if (H % Hkv != 0) user_error("kv_heads: heads ({}) must be a multiple of kv_heads ({})", H, Hkv);
    }
  } else if (kind.name == "attention_cost") {
    try {
      check_attention_bench(attention_cost_options(out));
    } catch (const UserError& e) {
      std::string m = e.what();
      if (m.rfind("--types ", 0) == 0) m = "type " + m.substr(8);
      user_error("{}", m);
    }
  }
  return out;
}

std::string kind_cell_identity(const CellKind& kind, const std::map<std::string, std::string>& params) {
  std::string s = "run: " + kind.name + "\n";
  for (const auto& [k, v] : params) {
    const KindParam* p = find_kind_param(kind, k);
    if (p && p->identity) s += k + ": " + v + "\n";
  }
  return s;
}

// invariants.cpp
CellFigures compute_invariants(const std::map<std::string, std::string>& params);

namespace {

CellFigures compute_attention_cost(const std::map<std::string, std::string>& p) {
  const auto rows = bench_attention(attention_cost_options(p), {});
  CellFigures f;
  for (const char* k : {"ms", "ms_min", "proj_ms", "attn_ms", "peak_extra_mb", "est_mb", "gflops"})
    f.values[k] = std::nullopt;
  if (rows.empty()) return f;
  const AttentionBenchRow& r = rows.front();
  f.values["est_mb"] = r.est_mb;
  if (r.skipped) {
    f.notes.push_back("skipped: " + r.note);
    return f;
  }
  f.values["ms"] = r.median_ms;
  f.values["ms_min"] = r.min_ms;
  f.values["proj_ms"] = r.proj_ms;
  f.values["attn_ms"] = r.median_ms - r.proj_ms;
  if (r.peak_extra_mb >= 0) f.values["peak_extra_mb"] = r.peak_extra_mb;
  else f.notes.push_back("peak_extra_mb: /proc/self/clear_refs could not be written (no memory probe)");
  f.values["gflops"] = r.gflops;
  f.notes.push_back(fmt::format("threads {}, timed calls (ms): {:.3f}", omp_get_max_threads(), fmt::join(r.ms, ", ")));
  return f;
}

}  // namespace

CellFigures compute_cell_figures(const CellKind& kind, const std::map<std::string, std::string>& params) {
  const auto t = params.find("threads");
  if (t != params.end()) {
    const int n = std::atoi(t->second.c_str());
    if (n > 0) omp_set_num_threads(n);
  }
  if (kind.name == "invariants") return compute_invariants(params);
  if (kind.name == "attention_cost") return compute_attention_cost(params);
  throw std::logic_error("compute_cell_figures: unknown kind " + kind.name);
}

}  // namespace attnlab
