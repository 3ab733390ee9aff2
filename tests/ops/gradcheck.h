// Finite-difference gradient checking for the tests: the engine of src/ops/finite_difference.h
// (its header explains the step, the Richardson option and the error metric), with the random
// fills and the double-accumulated loss the checks use. Header-only and reusable by every test
// area: #include "ops/gradcheck.h" (the tests/ directory is on each test program's include path).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "core/rng.h"
#include "ops/finite_difference.h"

namespace attnlab::test {

using attnlab::GradCheckOptions;
using attnlab::GradCheckResult;
using attnlab::gradcheck;

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

}  // namespace attnlab::test
