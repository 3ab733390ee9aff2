// Shared helpers of the attention tests: a module with its parameter store, masks, error
// measures, and the finite-difference gradient check every variant runs.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "ops/gradcheck.h"

namespace attnlab::test {


// the parameters of the dot-product family, in registration order
inline const char* const kParamNames[] = {"w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o"};

inline AttentionSpec make_spec(int C, int H, int Hkv, bool causal, const std::string& scale = "inv_sqrt_dk") {
  AttentionSpec s;
  s.type = "scaled_dot_product";
  s.name = "attn";
  s.d_model = C;
  s.n_heads = H;
  s.n_kv_heads = Hkv;
  s.causal = causal;
  s.scale = scale;
  s.dropout = 0.0f;
  s.bias = true;
  s.layer_index = 0;
  s.n_layers = 1;
  return s;
}

// A module with its parameter store. Weights are redrawn N(0, weight_std²) (biases too) so that
// the softmax is far from uniform and every gradient is O(0.1..1): the default GPT-2 init
// (std 0.02, zero biases) would make attention nearly uniform and hide mistakes in its backward.
struct Harness {
  ParamStore store;
  std::unique_ptr<Attention> attn;
  Harness(const AttentionSpec& spec, uint64_t seed, float weight_std = 0.5f) {
    Rng rng(seed);
    attn = make_attention(spec, store, rng);
    if (weight_std > 0.0f)
      for (auto& p : store.all()) attnlab::test::fill_normal(p.w.data(), p.w.size(), rng, weight_std);
  }
  Harness(const Harness&) = delete;
  Param& param(const std::string& short_name) {
    Param* p = store.find("attn." + short_name);
    REQUIRE_MESSAGE(p != nullptr, "parameter attn." << short_name << " not registered");
    return *p;
  }
};

inline std::vector<unsigned char> keep_mask(int B, int Tk, const std::vector<std::vector<int>>& pads) {
  std::vector<unsigned char> keep(size_t(B) * Tk, 1);
  for (int b = 0; b < B && b < int(pads.size()); b++)
    for (int j : pads[b]) keep[size_t(b) * Tk + j] = 0;
  return keep;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline bool rows_equal(const float* a, const float* b, int n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

inline double row_diff(const float* a, const float* b, int n) {
  double m = 0.0;
  for (int i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}


// Finite differences for attention. tests/ops/gradcheck.h takes one central difference,
// n(h) = g + c·h² + (rounding noise)/h. For this module neither term can be made small enough
// with one step: the softmax logits make the loss strongly curved in W_k (at h = 1e-2 the h²
// term alone gives relative errors up to 2e-2 with weights of std 0.5), while at h <= 5e-3 the
// float32 forward's rounding noise (~1e-6 absolute in L, the whole output is recomputed) reaches
// the same size. Measured over 40 seeds × the 20 configurations below, the helper's single step
// gave worst max_rel 5e-3..1.7e-2 for every (h, weight std) tried. Richardson extrapolation
//       n_R = (4·n(h/2) − n(h)) / 3 = g + O(h⁴)
// cancels the h² term, so a large step (h = 4e-2, where the noise/h term is small) can be used:
// the worst max_rel over the same 40 × 20 runs was 1.8e-3 (weights std 0.4), a 3× margin to
// the 5e-3 threshold, while a gradient off by 1% still measures 1e-2. The error metric and the
// result type are the shared helper's (relative error with a floor at 5% of the tensor's
// largest gradient; see gradcheck.h).
inline constexpr float kGradcheckStep = 4e-2f;
inline constexpr float kGradcheckWeightStd = 0.4f;

template <typename LossFn>
inline attnlab::test::GradCheckResult gradcheck_richardson(std::vector<float>& x, const std::vector<float>& analytic,
                                                    LossFn&& loss) {
  REQUIRE(x.size() == analytic.size());
  attnlab::test::GradCheckOptions opt;
  opt.h = kGradcheckStep;
  opt.richardson = true;
  return attnlab::test::gradcheck(x, analytic, loss, opt);
}

// Threshold on the gradcheck's max relative error (see tests/ops/gradcheck.h for the metric and
// why 5e-3 separates float32 rounding noise from real mistakes).
inline constexpr double kGradcheckTol = 5e-3;

struct GcConfig {
  std::string label;
  int B, Tq, Tk, C, H, Hkv;
  bool causal;
  bool self_attn;
  std::vector<std::vector<int>> pads;  // padded key positions per batch row (empty = no mask)
  std::string scale = "inv_sqrt_dk";
  float dropout = 0.0f;
  bool bias = true;
  std::string type = "scaled_dot_product";
  int window = 0;
  std::string positions = "none";
  std::string score = "general";
  int layer_index = 0;
};

// What run_gradcheck hands to the hooks of GcOptions: the module, its parameters (redrawn), the
// inputs and the key mask of the check.
struct GcContext {
  const GcConfig& config;
  Attention& attn;
  ParamStore& store;
  const std::vector<float>& x_q;
  const std::vector<float>& x_kv;  // = x_q for self-attention
  const std::vector<unsigned char>& keep;  // empty = no mask
  Param* param(const std::string& short_name) const { return store.find("attn." + short_name); }
};

// Counters over the checks of one or more run_gradcheck calls (GcOptions::stats).
struct GcStats {
  size_t checked = 0, shrunk = 0, skipped = 0;  // elements: checked, checked with a step < step, not checked
  double worst_ratio = 0.0;     // max |a − n| / bound (only with rounding_noise > 0)
  double worst_rel_full = 0.0;  // max_rel over the elements checked with the full step
};

// Options of run_gradcheck. The defaults give the check described above; each variant that
// needs more sets only what it needs (the reasons are documented next to those settings).
struct GcOptions {
  // The module; default make_attention(spec, ...). Weights are then redrawn N(0, weight_std²).
  std::function<std::unique_ptr<Attention>(const AttentionSpec&, ParamStore&, Rng&)> make;
  float weight_std = kGradcheckWeightStd;
  // Per-parameter std (short names, e.g. "v"): the drawn values are rescaled by std / weight_std.
  std::map<std::string, float> param_std;
  // Called after the weights are drawn, with the weights' Rng (may draw more, e.g. to constrain λ).
  std::function<void(Attention&, ParamStore&, Rng&)> after_init;
  // Appended to the label in the summary line (e.g. the value of λ).
  std::function<std::string(Attention&)> describe;
  float step = kGradcheckStep;  // largest step h of the Richardson quotient
  // 1: (4·n(h/2) − n(h))/3; 2: Romberg's second level (64·n(h/4) − 20·n(h/2) + n(h))/45.
  int richardson_levels = 1;
  // A tensor with max_rel >= retry_above is measured again with each of retry_steps (same
  // Richardson level) and the best max_rel counts.
  std::vector<float> retry_steps;
  double retry_above = 0.0;
  // > 0: a tensor with max_rel >= retry_above whose elements all agree within noise_abs_tol
  // (max |a − n|) is accepted.
  double noise_abs_tol = 0.0;
  // > 0: an element passes when |a − n| <= tol·max(|a|, |n|, floor) + rounding_noise·Σ|out ⊙ U|/h
  // (the assertion is then error/bound < 1 per tensor).
  double rounding_noise = 0.0;
  // Per-element step: called once per check with the context, returns step(tensor name, element).
  // A step <= 0 skips the element (counted in stats->skipped). Unset: every element uses `step`.
  std::function<std::function<double(const std::string&, size_t)>(const GcContext&)> element_step;
  // The zero-gradient rule below (a tensor whose analytic gradient is < 1e-5 everywhere).
  bool zero_gradient_rule = true;
  GcStats* stats = nullptr;  // accumulates element counts and worst ratios when set
};

// The engine's gradcheck_steps (src/ops/finite_difference.h) over vectors, with the default error
// metric: with every step equal to h and levels 1 this is gradcheck() with
// GradCheckOptions{h, richardson = true}, bit for bit.
template <typename LossFn, typename StepFn>
inline GradCheckResult gradcheck_steps(std::vector<float>& x, const std::vector<float>& analytic, LossFn&& loss,
                                       int levels, StepFn&& step_of, std::vector<double>& num,
                                       std::vector<double>& steps) {
  REQUIRE(x.size() == analytic.size());
  return attnlab::gradcheck_steps(x.data(), x.size(), analytic.data(), loss, levels, step_of, num, steps);
}

// Runs forward + backward once (analytic gradients), then central differences of
// L = Σ out ⊙ U (double accumulation) for every element of every input and parameter.
// Returns the largest relative error over all tensors.
inline double run_gradcheck(const GcConfig& c, uint64_t seed, const GcOptions& opt = {}) {
  INFO("gradcheck config: " << c.label);
  AttentionSpec spec = make_spec(c.C, c.H, c.Hkv, c.causal, c.scale);
  spec.dropout = c.dropout;
  spec.bias = c.bias;
  spec.type = c.type;
  spec.window = c.window;
  spec.positions = attn_positions(c.positions);
  spec.score = attn_score(c.score);
  spec.layer_index = c.layer_index;
  spec.max_len = std::max(c.Tq, c.Tk);
  // the module, as Harness(spec, seed, weight_std) builds it, then the options' adjustments
  ParamStore store;
  std::unique_ptr<Attention> attn;
  {
    Rng wrng(seed);
    attn = opt.make ? opt.make(spec, store, wrng) : make_attention(spec, store, wrng);
    if (opt.weight_std > 0.0f)
      for (auto& p : store.all()) fill_normal(p.w.data(), p.w.size(), wrng, opt.weight_std);
    for (const auto& [name, sd] : opt.param_std)
      if (Param* p = store.find("attn." + name))
        for (float& w : p->w) w *= sd / opt.weight_std;
    if (opt.after_init) opt.after_init(*attn, store, wrng);
  }
  Rng rng(seed + 1);
  std::vector<float> x_q = random_normal(size_t(c.B) * c.Tq * c.C, rng);
  std::vector<float> x_kv = c.self_attn ? std::vector<float>{} : random_normal(size_t(c.B) * c.Tk * c.C, rng);
  const std::vector<float> U = random_normal(size_t(c.B) * c.Tq * c.C, rng);
  std::vector<unsigned char> keep;
  AttnMask mask;
  if (!c.pads.empty()) {
    keep = keep_mask(c.B, c.Tk, c.pads);
    mask.key_keep = keep.data();
  }
  const bool train = c.dropout > 0.0f;
  std::vector<float> out(U.size());
  auto loss = [&]() -> double {
    Rng drop_rng(1234);  // the same dropout mask on every forward
    attn->forward(out.data(), x_q.data(), c.self_attn ? x_q.data() : x_kv.data(), c.B, c.Tq, c.Tk, mask, train,
                  &drop_rng);
    return dot_double(out, U);
  };
  loss();
  double noise = 0.0;  // the rounding-noise allowance's numerator, rounding_noise·Σ|out ⊙ U|
  if (opt.rounding_noise > 0.0) {
    double loss_scale = 0.0;
    for (size_t k = 0; k < out.size(); k++) loss_scale += std::fabs(double(out[k]) * U[k]);
    noise = opt.rounding_noise * loss_scale;
  }
  store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  attn->backward(dx_q.data(), c.self_attn ? dx_q.data() : dx_kv.data(), U.data());

  const GcContext ctx{c, *attn, store, x_q, c.self_attn ? x_q : x_kv, keep};
  std::function<double(const std::string&, size_t)> element_step;
  if (opt.element_step) element_step = opt.element_step(ctx);

  const bool bounded = opt.rounding_noise > 0.0;
  std::string line = c.label + (opt.describe ? opt.describe(*attn) : std::string()) + ":" +
                     (bounded ? " error/bound" : "");
  double worst = 0.0, cfg_ratio = 0.0, cfg_rel_full = 0.0;
  auto check = [&](const std::string& name, std::vector<float>& x, const std::vector<float>& g) {
    std::vector<double> num, steps;
    auto measure = [&](float h) {
      return gradcheck_steps(x, g, loss, opt.richardson_levels, [&](size_t i) {
        if (!element_step) return double(h);
        return element_step(name, i);
      }, num, steps);
    };
    auto r = measure(opt.step);
    if (opt.stats)
      for (double s : steps) {
        if (s > 0.0) opt.stats->checked++;
        else opt.stats->skipped++;
        if (s > 0.0 && s < double(opt.step)) opt.stats->shrunk++;
      }
    double amax = 0.0;
    for (float v : g) amax = std::max(amax, double(std::fabs(v)));
    if (opt.zero_gradient_rule && amax < 1e-5) {
      // An identically zero gradient, e.g. dL/db_k of dot-product attention: b_k adds q·b_k to a
      // whole row of scores and the softmax is invariant to a per-row shift. Both gradients are
      // then pure rounding noise (analytic: a few ulps of the O(1) terms summed; numeric: the
      // forward's noise / 2h), so a relative error means nothing; check both are zero at those
      // noise levels instead.
      const double nmax = amax + r.max_abs;  // bounds the numerical gradient's magnitude
      line += fmt::format(" {}(=0) {:.1e}/{:.1e}", name, amax, nmax);
      CHECK_MESSAGE(nmax < 1e-3, fmt::format("{} d{} should be 0, numeric max |g| ~ {:.3e}", c.label, name, nmax));
      return;
    }
    for (float h : opt.retry_steps) {
      if (r.max_rel < opt.retry_above) break;
      std::vector<double> num0 = num, steps0 = steps;
      const auto r2 = measure(h);
      if (r2.max_rel < r.max_rel) r = r2;
      else num = std::move(num0), steps = std::move(steps0);
    }
    if (opt.noise_abs_tol > 0.0 && r.max_rel >= opt.retry_above && r.max_abs < opt.noise_abs_tol) {
      line += fmt::format(" {}(abs) {:.1e}", name, r.max_abs);  // small gradients: agree absolutely
      return;
    }
    if (bounded) {
      // error / (tol·max(|a|, |n|, floor) + noise / h) per element; passes below 1
      double ratio = 0.0, rel_full = 0.0;
      size_t wi = 0;
      for (size_t i = 0; i < x.size(); i++) {
        if (!(steps[i] > 0.0)) continue;
        const double err = std::fabs(g[i] - num[i]);
        const double big = std::max({std::fabs(double(g[i])), std::fabs(num[i]), r.floor});
        const double q = err / (kGradcheckTol * big + noise / steps[i]);
        if (q > ratio) {
          ratio = q;
          wi = i;
        }
        if (steps[i] == double(opt.step)) rel_full = std::max(rel_full, err / big);
      }
      line += fmt::format(" {} {:.2f}", name, ratio);
      cfg_ratio = std::max(cfg_ratio, ratio);
      cfg_rel_full = std::max(cfg_rel_full, rel_full);
      worst = std::max(worst, r.max_rel);
      CHECK_MESSAGE(ratio < 1.0, fmt::format("{} d{}: element {}: analytic {:.6g}, numeric {:.6g} (step {:.2g}): "
                                             "error {:.3g} × the bound",
                                             c.label, name, wi, g[wi], num[wi], steps[wi], ratio));
      return;
    }
    line += fmt::format(" {} {:.1e}", name, r.max_rel);
    worst = std::max(worst, r.max_rel);
    CHECK_MESSAGE(r.max_rel < kGradcheckTol,
                  fmt::format("{} d{}: max rel error {:.3e} at element {} (analytic {:.6g}, "
                              "numeric {:.6g}), max abs {:.3e}",
                              c.label, name, r.max_rel, r.worst, r.worst_analytic, r.worst_numeric,
                              r.max_abs));
  };
  check("x_q", x_q, dx_q);
  if (!c.self_attn) check("x_kv", x_kv, dx_kv);
  for (Param& p : store.all()) {
    const std::vector<float> g = p.g;  // analytic gradient (forwards do not touch it)
    check(p.name.substr(5), p.w, g);
  }
  if (bounded) {
    if (opt.stats) {
      opt.stats->worst_ratio = std::max(opt.stats->worst_ratio, cfg_ratio);
      opt.stats->worst_rel_full = std::max(opt.stats->worst_rel_full, cfg_rel_full);
    }
    MESSAGE(fmt::format("{}  (worst {:.2f}; max_rel at the full step {:.2e})", line, cfg_ratio, cfg_rel_full));
  } else {
    MESSAGE(fmt::format("{}  (worst {:.2e})", line, worst));
  }
  return worst;
}


// Incremental decoding against the full forward: the module runs forward() over T positions of
// causal self-attention, then cache_reset + forward_cached over the same inputs in chunks of
// 1, 2, 3, ... positions. Returns the largest |difference| of the outputs (0 means exact).
inline double cache_vs_full(const AttentionSpec& spec, int B, int T, uint64_t seed, float weight_std = 0.5f) {
  Harness h(spec, seed, weight_std);
  Rng rng(seed + 7);
  const int C = spec.d_model;
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
  std::vector<float> full(x.size()), step(x.size());
  h.attn->forward(full.data(), x.data(), x.data(), B, T, T, AttnMask{}, false, nullptr);
  h.attn->cache_reset(B, T);
  // feed [B, n, C] chunks: rows of x are strided by T, so copy each chunk out
  std::vector<float> chunk, out;
  for (int t = 0, n = 1; t < T; t += n, n++) {
    n = std::min(n, T - t);
    chunk.resize(size_t(B) * n * C);
    out.resize(chunk.size());
    for (int b = 0; b < B; b++)
      std::copy_n(x.data() + (size_t(b) * T + t) * C, size_t(n) * C, chunk.data() + size_t(b) * n * C);
    h.attn->forward_cached(out.data(), chunk.data(), B, n);
    for (int b = 0; b < B; b++)
      std::copy_n(out.data() + size_t(b) * n * C, size_t(n) * C, step.data() + (size_t(b) * T + t) * C);
  }
  REQUIRE(h.attn->cache_len() == T);
  double m = 0.0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, double(std::fabs(full[i] - step[i])));
  return m;
}

// Causality of a self-attention module with a causal mask: changing the input at position j
// must leave every output before j bit-identical. Returns true when it does for every j.
inline bool causal_outputs_ignore_future(const AttentionSpec& spec, int T, uint64_t seed) {
  Harness h(spec, seed, 0.5f);
  Rng rng(seed + 3);
  const int C = spec.d_model;
  std::vector<float> x = random_normal(size_t(T) * C, rng), base(x.size()), out(x.size());
  h.attn->forward(base.data(), x.data(), x.data(), 1, T, T, AttnMask{}, false, nullptr);
  bool ok = true;
  for (int j = 0; j < T; j++) {
    std::vector<float> x2 = x;
    for (int c = 0; c < C; c++) x2[size_t(j) * C + c] += 1.0f;
    h.attn->forward(out.data(), x2.data(), x2.data(), 1, T, T, AttnMask{}, false, nullptr);
    for (int i = 0; i < j; i++) ok &= rows_equal(out.data() + size_t(i) * C, base.data() + size_t(i) * C, C);
    ok &= !rows_equal(out.data() + size_t(j) * C, base.data() + size_t(j) * C, C);
  }
  return ok;
}

// Cross-attention with key padding: giving the padded keys new values leaves every output bit for
// bit unchanged, padded keys get exactly zero gradient, and every kept key gets some. The module
// is built with Harness(spec, seed) and the inputs drawn from Rng(seed + 1).
inline void check_padded_keys_ignored(const AttentionSpec& spec, int B, int Tq, int Tk,
                                      const std::vector<std::vector<int>>& pads, uint64_t seed) {
  const int C = spec.d_model;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, pads);
  AttnMask mask;
  mask.key_keep = keep.data();
  Harness h(spec, seed);
  Rng rng(seed + 1);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  std::vector<float> base(x_q.size()), out(x_q.size());
  h.attn->forward(base.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
  std::vector<float> x2 = x_kv;
  for (int b = 0; b < B; b++)
    for (int j : pads[b])
      for (int c = 0; c < C; c++) x2[(size_t(b) * Tk + j) * C + c] = 5.0f * rng.normal();
  h.attn->forward(out.data(), x_q.data(), x2.data(), B, Tq, Tk, mask, false, nullptr);
  CHECK(out == base);
  h.store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  const std::vector<float> U = random_normal(out.size(), rng);
  h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
  for (int b = 0; b < B; b++)
    for (int j = 0; j < Tk; j++) {
      INFO("b = " << b << ", key j = " << j);
      const float* g = &dx_kv[(size_t(b) * Tk + j) * C];
      if (keep[size_t(b) * Tk + j] == 0) CHECK(std::all_of(g, g + C, [](float v) { return v == 0.0f; }));
      else CHECK(std::any_of(g, g + C, [](float v) { return v != 0.0f; }));
    }
}

// The UserError message of building a module from s ("" when it builds).
inline std::string construction_error(const AttentionSpec& s) {
  ParamStore store;
  Rng rng(1);
  try {
    make_attention(s, store, rng);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace attnlab::test
