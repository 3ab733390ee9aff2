// Tests of the positions applied inside attention (src/attention/positions.cpp): the RoPE
// rotation (norms kept, exact inverse, the paper's angles and pair layout, and experiment E1's
// invariance: after rotation q_pᵀk_r depends only on p − r) and the ALiBi slopes.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "attention/positions.h"
#include "core/rng.h"
#include "ops/gradcheck.h"

using namespace attnlab;
using attnlab::test::random_normal;

namespace {

// dot of head h of row t (layout [T, Hx, D], row stride `stride`), in double
double head_dot(const std::vector<float>& a, const std::vector<float>& b, int stride, int D, int t, int h) {
  double s = 0.0;
  for (int d = 0; d < D; d++) s += double(a[size_t(t) * stride + h * D + d]) * double(b[size_t(t) * stride + h * D + d]);
  return s;
}

// RoPE of a single D-vector at absolute position p
std::vector<float> rotated(const std::vector<float>& x, int p, float base = 10000.0f) {
  std::vector<float> y = x;
  rope_rotate(y.data(), 1, 1, 1, int(x.size()), int(x.size()), p, base);
  return y;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); i++) s += double(a[i]) * double(b[i]);
  return s;
}

}  // namespace

TEST_CASE("rope_rotate: the paper's angles θ_i = base^(−2i/D) on interleaved pairs (2i, 2i+1)") {
  const int D = 8;
  for (float base : {10000.0f, 100.0f}) {
    for (int p : {0, 1, 5, -3, 1000}) {
      for (int i = 0; i < D / 2; i++) {
        INFO("base " << base << ", position " << p << ", pair " << i);
        // e_{2i} at position p becomes (cos pθ_i, sin pθ_i) in pair i, nothing elsewhere
        std::vector<float> x(D, 0.0f);
        x[2 * i] = 1.0f;
        const std::vector<float> y = rotated(x, p, base);
        const double a = double(p) * std::pow(double(base), -2.0 * i / D);
        CHECK(y[2 * i] == doctest::Approx(std::cos(a)).epsilon(1e-7));
        CHECK(y[2 * i + 1] == doctest::Approx(std::sin(a)).epsilon(1e-7));
        for (int d = 0; d < D; d++)
          if (d != 2 * i && d != 2 * i + 1) CHECK(y[d] == 0.0f);
        // e_{2i+1} becomes (−sin, cos)
        std::fill(x.begin(), x.end(), 0.0f);
        x[2 * i + 1] = 1.0f;
        const std::vector<float> z = rotated(x, p, base);
        CHECK(z[2 * i] == doctest::Approx(-std::sin(a)).epsilon(1e-7));
        CHECK(z[2 * i + 1] == doctest::Approx(std::cos(a)).epsilon(1e-7));
      }
    }
  }
}

TEST_CASE("rope_rotate: rotations keep every pair's norm and leave the row padding alone") {
  const int B = 2, T = 5, Hx = 3, D = 8, stride = Hx * D + 4;  // 4 extra columns per row
  Rng rng(1);
  const std::vector<float> x = random_normal(size_t(B) * T * stride, rng);
  std::vector<float> y = x;
  rope_rotate(y.data(), B, T, Hx, D, stride, 3, 10000.0f);
  double worst = 0.0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const size_t row = (size_t(b) * T + t) * stride;
      for (int h = 0; h < Hx; h++)
        for (int i = 0; i < D / 2; i++) {
          const size_t k = row + h * D + 2 * i;
          const double n0 = std::hypot(double(x[k]), double(x[k + 1]));
          const double n1 = std::hypot(double(y[k]), double(y[k + 1]));
          worst = std::max(worst, std::fabs(n0 - n1) / std::max(n0, 1e-3));
        }
      for (int c = Hx * D; c < stride; c++) CHECK(y[row + c] == x[row + c]);  // untouched
    }
  MESSAGE(fmt::format("RoPE: worst relative change of a pair's norm {:.2e}", worst));
  CHECK(worst < 1e-6);
  // and something did rotate: positions 3..7 are non-zero angles
  CHECK(y != x);
}

TEST_CASE("rope_rotate: sign −1 is the inverse (the backward), and equals rotating by −p") {
  const int B = 3, T = 4, Hx = 2, D = 6;
  Rng rng(2);
  const std::vector<float> x = random_normal(size_t(B) * T * Hx * D, rng);
  for (int pos0 : {0, 7, -2, 500}) {
    INFO("pos0 = " << pos0);
    std::vector<float> y = x;
    rope_rotate(y.data(), B, T, Hx, D, Hx * D, pos0, 10000.0f, +1);
    rope_rotate(y.data(), B, T, Hx, D, Hx * D, pos0, 10000.0f, -1);
    double err = 0.0;
    for (size_t i = 0; i < x.size(); i++) err = std::max(err, std::fabs(double(y[i]) - double(x[i])));
    CHECK(err < 1e-6);
    // R_p^{-1} = R_p^T: <R_p a, b> = <a, R_p^T b> = <a, inverse-rotated b>
    std::vector<float> a = random_normal(x.size(), rng), ra = a, b = random_normal(x.size(), rng), rb = b;
    rope_rotate(ra.data(), B, T, Hx, D, Hx * D, pos0, 10000.0f, +1);
    rope_rotate(rb.data(), B, T, Hx, D, Hx * D, pos0, 10000.0f, -1);
    CHECK(dot(ra, b) == doctest::Approx(dot(a, rb)).epsilon(1e-6));
  }
  // the inverse at +p is the rotation at −p (a single row, T = 1)
  std::vector<float> v(x.begin(), x.begin() + D), u = v;
  rope_rotate(v.data(), 1, 1, 1, D, D, 9, 10000.0f, -1);
  rope_rotate(u.data(), 1, 1, 1, D, D, -9, 10000.0f, +1);
  for (int d = 0; d < D; d++) CHECK(v[d] == doctest::Approx(u[d]).epsilon(1e-7));
}

// Experiment E1 (RoPE's relative-position property, RoFormer §3.4.2): with q at position p and
// k at position r, (R_p q)ᵀ(R_r k) = qᵀ R_{r−p} k depends on p and r only through p − r.
TEST_CASE("rope_rotate: q_pᵀk_r after rotation depends only on p − r (E1)") {
  const int D = 16;
  Rng rng(3);
  double worst = 0.0;
  for (int trial = 0; trial < 20; trial++) {
    const std::vector<float> q = random_normal(D, rng, 1.0f / std::sqrt(float(D)));
    const std::vector<float> k = random_normal(D, rng, 1.0f / std::sqrt(float(D)));
    for (int p : {0, 3, 11})
      for (int r : {0, 2, 11}) {
        const double base_dot = dot(rotated(q, p), rotated(k, r));
        for (int shift : {1, 5, 64, 1000, 4095}) {
          const double d = dot(rotated(q, p + shift), rotated(k, r + shift));
          worst = std::max(worst, std::fabs(d - base_dot));
          CHECK(std::fabs(d - base_dot) <= 1e-5);
        }
      }
    // ... and it does depend on p − r (otherwise the property would be vacuous)
    CHECK(std::fabs(dot(rotated(q, 4), rotated(k, 1)) - dot(rotated(q, 1), rotated(k, 1))) > 1e-4);
  }
  MESSAGE(fmt::format("RoPE E1: worst |q_{{p+s}}ᵀk_{{r+s}} − q_pᵀk_r| over shifts up to 4095: {:.2e}", worst));
}

TEST_CASE("alibi_slope: Press et al. 2022, powers of two and the recipe for other head counts") {
  // H = 8: the paper's 1/2, 1/4, ..., 1/256
  for (int h = 0; h < 8; h++) CHECK(alibi_slope(h, 8) == std::ldexp(1.0f, -(h + 1)));
  // H = 16: 2^-0.5, 2^-1, ..., 2^-8
  for (int h = 0; h < 16; h++) CHECK(alibi_slope(h, 16) == doctest::Approx(std::exp2(-0.5 * (h + 1))).epsilon(1e-7));
  CHECK(alibi_slope(0, 1) == std::ldexp(1.0f, -8));
  // H = 6: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then every other 8-head slope: 2^-1, 2^-3
  const float six[] = {0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f};
  for (int h = 0; h < 6; h++) CHECK(alibi_slope(h, 6) == six[h]);
  // H = 12: the 8-head slopes, then the 16-head slopes 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
  for (int h = 0; h < 8; h++) CHECK(alibi_slope(h, 12) == alibi_slope(h, 8));
  for (int k = 0; k < 4; k++)
    CHECK(alibi_slope(8 + k, 12) == doctest::Approx(std::exp2(-0.5 - k)).epsilon(1e-7));
  // H = 3: 2^-4, 2^-8, then 2^-2
  CHECK(alibi_slope(0, 3) == 0.0625f);
  CHECK(alibi_slope(1, 3) == 0.00390625f);
  CHECK(alibi_slope(2, 3) == 0.25f);
}
