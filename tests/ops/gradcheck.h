// Finite-difference gradient checking for float32 ops. Header-only and reusable by every test
// area: #include "ops/gradcheck.h" (the tests/ directory is on each test program's include path).
//
// How to use it
//   1. Pick a fixed random "upstream" tensor U shaped like the op's output and define the scalar
//      loss L(x) = Σ_i out_i(x) · U_i, accumulated in double (dot_double). Its gradient with
//      respect to the output is exactly U, so the op's backward run with dout = U gives the
//      analytic dL/dx.
//   2. Call gradcheck(x, analytic, loss), where loss() re-runs the forward from the CURRENT
//      contents of x: gradcheck perturbs x in place, one element at a time, and restores it.
//   3. Assert result.max_rel < 5e-3 (what tests/ops uses; see below).
//
// Numerical derivative: central difference
//       n_i = (L(x + h e_i) - L(x - h e_i)) / (x_i⁺ - x_i⁻)
//   where x_i± are the float values actually stored after adding ±h, so the rounding of the
//   perturbed input does not bias the quotient.
//
// Step size, default h = 1e-2. Two errors compete:
//   * truncation, ≈ h² |L‴| / 6: about 2e-5 for O(1) curvature;
//   * rounding: the float32 forward rounds every output it recomputes (relative 6e-8 each, more
//     through internal sums such as a GEMM's dot products or layernorm's mean and variance), so
//     L carries noise of ~1e-7..1e-6 absolute, and the quotient divides it by 2h.
//   The optimum is h ≈ (3·noise/|L‴|)^(1/3) ≈ 5e-3..1e-2. Measured over 61 random seeds of the
//   gradient checks in test_ops.cpp, the worst max_rel of any check was 1.1e-2 with h = 1e-3
//   (rounding noise alone reaches a 1% error), 1.9e-3 with h = 5e-3 and 1.2e-3 with h = 1e-2,
//   while h = 3e-2 starts to show truncation error on GELU. Inputs should be O(1); for functions
//   strongly curved at the input scale, pass a smaller h in GradCheckOptions.
//
// Error metric, per element (a = analytic, n = numerical):
//       abs_i = |a - n|
//       rel_i = |a - n| / max(|a|, |n|, floor),    floor = floor_frac · max_j max(|a_j|, |n_j|)
//   i.e. the usual relative error |a-n| / max(|a|,|n|), except that elements whose gradient is
//   below 5% (default floor_frac) of the tensor's largest gradient are measured against that 5%
//   instead of their own size: for them the finite difference is dominated by rounding noise (a
//   GELU tail gradient of 1e-6 cannot be resolved to 1%), so a pure relative error would measure
//   noise, not bugs (with floor_frac = 0 the same correct ops report max_rel up to 1.0). Scaling
//   the floor by the tensor's own largest gradient keeps the metric independent of the loss scale
//   (e.g. a mean over many tokens). Equivalently, rel_i < τ is the mixed criterion
//   |a - n| < max(rtol·max(|a|,|n|), atol) with rtol = τ and atol = τ·floor.
//   Correct float32 ops measure max_rel ~1e-5..1e-3; a gradient off by a factor 1.01 measures
//   ~1e-2, so a 5e-3 threshold separates the two.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "core/rng.h"

namespace attnlab::test {

struct GradCheckOptions {
  float h = 1e-2f;           // finite-difference step, absolute (inputs are O(1))
  double floor_frac = 0.05;  // relative-error floor, as a fraction of the largest |gradient|
  double min_floor = 1e-12;  // keeps an all-zero gradient from dividing 0 by 0
  // Richardson extrapolation n = (4·n(h/2) − n(h)) / 3 cancels the h² truncation term, so a
  // large step (small rounding noise / h) can be used on strongly curved losses such as the
  // softmax logits of attention (see tests/attention for the measurements). Costs 2× the forwards.
  bool richardson = false;
};

struct GradCheckResult {
  double max_abs = 0.0;  // max_i |a_i - n_i|
  double max_rel = 0.0;  // max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)
  double floor = 0.0;    // the floor used
  size_t worst = 0;      // index of the element with the largest rel error
  double worst_analytic = 0.0;
  double worst_numeric = 0.0;
  size_t checked = 0;    // number of elements perturbed
};

// Fill x[0..n) with N(0, scale²) values drawn in order from rng (deterministic for a given seed).
inline void fill_normal(float* x, size_t n, Rng& rng, float scale = 1.0f) {
  for (size_t i = 0; i < n; i++) x[i] = scale * rng.normal();
}

// Fill x[0..n) with uniform values in [lo, hi), drawn in order from rng.
inline void fill_uniform(float* x, size_t n, Rng& rng, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng.uniform();
}

// A new vector of n N(0, scale²) values.
inline std::vector<float> random_normal(size_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> v(n);
  fill_normal(v.data(), n, rng, scale);
  return v;
}

// Σ_i a_i b_i accumulated in double: the scalar loss of a gradient check.
inline double dot_double(const float* a, const float* b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  return s;
}
inline double dot_double(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) throw std::invalid_argument("dot_double: sizes differ");
  return dot_double(a.data(), b.data(), a.size());
}

// Compare analytic[0..n) with central differences of loss() with respect to x[0..n).
// loss: callable returning double that recomputes the forward from the current contents of x.
// x is restored bit-exactly on return.
template <typename LossFn>
GradCheckResult gradcheck(float* x, size_t n, const float* analytic, LossFn&& loss,
                          GradCheckOptions opt = {}) {
  // numerical gradient, one central difference (or a Richardson pair) per element
  auto central = [&](size_t i, float h) {
    const float orig = x[i];
    const float xp = orig + h;
    const float xm = orig - h;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = orig;
    return (lp - lm) / ((double)xp - (double)xm);
  };
  std::vector<double> num(n);
  for (size_t i = 0; i < n; i++)
    num[i] = opt.richardson ? (4.0 * central(i, opt.h / 2) - central(i, opt.h)) / 3.0 : central(i, opt.h);
  // the floor: a fraction of the tensor's largest gradient magnitude
  double scale = 0.0;
  for (size_t i = 0; i < n; i++)
    scale = std::max({scale, std::fabs((double)analytic[i]), std::fabs(num[i])});
  const double floor = std::max(opt.floor_frac * scale, opt.min_floor);

  GradCheckResult r;
  r.floor = floor;
  r.checked = n;
  for (size_t i = 0; i < n; i++) {
    const double a = analytic[i];
    const double abs_err = std::fabs(a - num[i]);
    const double rel_err = abs_err / std::max({std::fabs(a), std::fabs(num[i]), floor});
    r.max_abs = std::max(r.max_abs, abs_err);
    if (i == 0 || rel_err > r.max_rel) {
      r.max_rel = rel_err;
      r.worst = i;
      r.worst_analytic = a;
      r.worst_numeric = num[i];
    }
  }
  return r;
}

template <typename LossFn>
GradCheckResult gradcheck(std::vector<float>& x, const std::vector<float>& analytic, LossFn&& loss,
                          GradCheckOptions opt = {}) {
  if (x.size() != analytic.size())
    throw std::invalid_argument("gradcheck: input and gradient sizes differ");
  return gradcheck(x.data(), x.size(), analytic.data(), static_cast<LossFn&&>(loss), opt);
}

}  // namespace attnlab::test
