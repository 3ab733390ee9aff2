// Shared helpers of the attention tests: a module with its parameter store, masks, error
// measures, and the finite-difference gradient check every variant runs.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
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

// Runs forward + backward once (analytic gradients), then central differences of
// L = Σ out ⊙ U (double accumulation) for every element of every input and parameter.
// Returns the largest relative error over all tensors.
inline double run_gradcheck(const GcConfig& c, uint64_t seed) {
  INFO("gradcheck config: " << c.label);
  AttentionSpec spec = make_spec(c.C, c.H, c.Hkv, c.causal, c.scale);
  spec.dropout = c.dropout;
  spec.bias = c.bias;
  spec.type = c.type;
  spec.window = c.window;
  spec.positions = c.positions;
  spec.score = c.score;
  spec.layer_index = c.layer_index;
  spec.max_len = std::max(c.Tq, c.Tk);
  Harness h(spec, seed, kGradcheckWeightStd);
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
    h.attn->forward(out.data(), x_q.data(), c.self_attn ? x_q.data() : x_kv.data(), c.B, c.Tq, c.Tk,
                    mask, train, &drop_rng);
    return dot_double(out, U);
  };
  loss();
  h.store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  h.attn->backward(dx_q.data(), c.self_attn ? dx_q.data() : dx_kv.data(), U.data());

  std::string line = c.label + ":";
  double worst = 0.0;
  auto check = [&](const std::string& name, std::vector<float>& x, const std::vector<float>& g) {
    const auto r = gradcheck_richardson(x, g, loss);
    double amax = 0.0;
    for (float v : g) amax = std::max(amax, double(std::fabs(v)));
    if (amax < 1e-5) {
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
  for (Param& p : h.store.all()) {
    const std::vector<float> g = p.g;  // analytic gradient (forwards do not touch it)
    check(p.name.substr(5), p.w, g);
  }
  MESSAGE(fmt::format("{}  (worst {:.2e})", line, worst));
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

}  // namespace attnlab::test
