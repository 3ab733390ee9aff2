// The finite-difference gradient check: one engine for `attnlab gradcheck`
// (attention/gradcheck.h) and every test area (tests/ops/gradcheck.h adds the test helpers).
//
// How to use it
//   1. Pick a fixed random "upstream" tensor U shaped like the op's output and define the scalar
//      loss L(x) = Σ_i out_i(x) · U_i, accumulated in double. Its gradient with respect to the
//      output is exactly U, so the op's backward run with dout = U gives the analytic dL/dx.
//   2. Call gradcheck(x, analytic, loss), where loss() re-runs the forward from the CURRENT
//      contents of x: gradcheck perturbs x in place, one element at a time, and restores it.
//   3. Assert result.max_rel < 5e-3.
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

namespace attnlab {

struct GradCheckOptions {
  float h = 1e-2f;           // finite-difference step, absolute (inputs are O(1))
  double floor_frac = 0.05;  // relative-error floor, as a fraction of the largest |gradient|
  double min_floor = 1e-12;  // keeps an all-zero gradient from dividing 0 by 0
  // Richardson extrapolation n = (4·n(h/2) − n(h)) / 3 cancels the h² truncation term, so a
  // large step (small rounding noise / h) can be used on strongly curved losses such as the
  // softmax logits of attention. Costs 2× the forwards.
  bool richardson = false;
  // Absolute errors up to this much are rounding noise of the loss: max_rel_beyond_noise
  // measures what is left above it (0: the same as max_rel).
  double noise = 0.0;
};

struct GradCheckResult {
  double max_abs = 0.0;  // max_i |a_i - n_i|
  double max_rel = 0.0;  // max_i |a_i - n_i| / max(|a_i|, |n_i|, floor)
  double max_rel_beyond_noise = 0.0;  // max_i max(0, |a_i - n_i| − noise) / max(|a_i|, |n_i|, floor)
  double floor = 0.0;    // the floor used
  size_t worst = 0;      // index of the element with the largest rel error
  double worst_analytic = 0.0;
  double worst_numeric = 0.0;
  size_t checked = 0;    // number of elements perturbed
};

// The general form. The step of element i is step_of(i) (≤ 0: skipped, numerical value 0, not
// counted); levels 0: one central difference n(h); 1: Richardson (4·n(h/2) − n(h))/3; 2: Romberg's
// second level (64·n(h/4) − 20·n(h/2) + n(h))/45. num and steps receive the numerical gradient
// and the step of every element. The error metric (opt's floor and noise) covers the checked
// elements. x is restored bit-exactly.
template <typename LossFn, typename StepFn>
GradCheckResult gradcheck_steps(float* x, size_t n, const float* analytic, LossFn&& loss, int levels,
                                StepFn&& step_of, std::vector<double>& num, std::vector<double>& steps,
                                const GradCheckOptions& opt = {}) {
  // n(h) = (L(x + h e_i) − L(x − h e_i)) / (x_i⁺ − x_i⁻), over the values actually stored
  auto central = [&](size_t i, float h) {
    const float orig = x[i], xp = orig + h, xm = orig - h;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = orig;
    return (lp - lm) / (double(xp) - double(xm));
  };
  num.assign(n, 0.0);
  steps.assign(n, 0.0);
  for (size_t i = 0; i < n; i++) {
    const double h = step_of(i);
    if (!(h > 0.0)) continue;
    steps[i] = h;
    if (levels >= 2)
      num[i] = (64.0 * central(i, float(h / 4)) - 20.0 * central(i, float(h / 2)) + central(i, float(h))) / 45.0;
    else if (levels == 1)
      num[i] = (4.0 * central(i, float(h / 2)) - central(i, float(h))) / 3.0;
    else
      num[i] = central(i, float(h));
  }
  // the floor: a fraction of the tensor's largest gradient magnitude
  double scale = 0.0;
  for (size_t i = 0; i < n; i++)
    if (steps[i] > 0.0) scale = std::max({scale, std::fabs(double(analytic[i])), std::fabs(num[i])});
  GradCheckResult r;
  r.floor = std::max(opt.floor_frac * scale, opt.min_floor);
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    if (!(steps[i] > 0.0)) continue;
    r.checked++;
    const double a = analytic[i], abs_err = std::fabs(a - num[i]);
    const double denom = std::max({std::fabs(a), std::fabs(num[i]), r.floor});
    const double rel_err = abs_err / denom;
    r.max_abs = std::max(r.max_abs, abs_err);
    r.max_rel_beyond_noise = std::max(r.max_rel_beyond_noise, std::max(0.0, abs_err - opt.noise) / denom);
    if (first || rel_err > r.max_rel) {
      r.max_rel = rel_err;
      r.worst = i;
      r.worst_analytic = a;
      r.worst_numeric = num[i];
    }
    first = false;
  }
  return r;
}

// Every element with the step opt.h (Richardson if opt.richardson).
template <typename LossFn>
GradCheckResult gradcheck(float* x, size_t n, const float* analytic, LossFn&& loss, GradCheckOptions opt = {}) {
  std::vector<double> num, steps;
  return gradcheck_steps(x, n, analytic, static_cast<LossFn&&>(loss), opt.richardson ? 1 : 0,
                         [&](size_t) { return double(opt.h); }, num, steps, opt);
}

template <typename LossFn>
GradCheckResult gradcheck(std::vector<float>& x, const std::vector<float>& analytic, LossFn&& loss,
                          GradCheckOptions opt = {}) {
  if (x.size() != analytic.size()) throw std::invalid_argument("gradcheck: input and gradient sizes differ");
  return gradcheck(x.data(), x.size(), analytic.data(), static_cast<LossFn&&>(loss), opt);
}

}  // namespace attnlab
