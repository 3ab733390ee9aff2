// Tests for src/ops: a finite-difference gradient check of every differentiable input of every
// op, plus value tests (hand-computed losses, normalization, masks, accumulation, determinism).
//
// Gradient-check tolerance: every check asserts max_rel < 5e-3, with the metric of gradcheck.h
//   rel = |a - n| / max(|a|, |n|, 0.05 · max|grad|),   central differences, h = 1e-2.
// The forward runs in float32, so the finite difference carries rounding noise of ~1e-5..1e-4
// absolute on O(1) gradients (gradcheck.h derives this); correct ops measure max_rel
// ~1e-6..1e-3 here (worst over 61 random seeds: 1.2e-3). A gradient off by a factor 1.01 measures
// ~1e-2, so 5e-3 separates "float32 noise" from "bug" with a margin of >= 2x on both sides.
// (A plain 1e-2 threshold would let a 1% error through.)
//
// Every analytic gradient is produced by running the backward into a buffer prefilled with random
// values and subtracting the prefill, so the checks also verify that backward ADDS (+=).
//
// Set GRADCHECK_VERBOSE=1 to print the measured errors of every check.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "ops/gradcheck.h"
#include "ops/ops.h"
#include "ops/attention_core.h"

using namespace attnlab;
using attnlab::test::dot_double;
using attnlab::test::fill_normal;
using attnlab::test::gradcheck;
using attnlab::test::GradCheckResult;
using attnlab::test::random_normal;

namespace {

constexpr double kGradTol = 5e-3;  // see the header comment

using Vec = std::vector<float>;

void expect_grad_ok(const GradCheckResult& r, const std::string& what) {
  INFO(what << ": max_rel=" << r.max_rel << " max_abs=" << r.max_abs << " floor=" << r.floor
            << " worst[" << r.worst << "] analytic=" << r.worst_analytic
            << " numeric=" << r.worst_numeric);
  if (std::getenv("GRADCHECK_VERBOSE"))
    MESSAGE(what << ": max_rel=" << r.max_rel << " max_abs=" << r.max_abs);
  CHECK(r.checked > 0);
  CHECK(r.max_rel < kGradTol);
}

// Runs backward into a randomly prefilled buffer and returns (buffer - prefill): the analytic
// gradient, provided the backward accumulates with += as the contract says.
struct AccumGrad {
  Vec prefill, buf;
  AccumGrad(size_t n, Rng& rng) : prefill(random_normal(n, rng)), buf(prefill) {}
  float* data() { return buf.data(); }
  Vec grad() const {
    Vec g(buf.size());
    for (size_t i = 0; i < g.size(); i++) g[i] = buf[i] - prefill[i];
    return g;
  }
};

bool bitwise_equal(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double max_abs_diff(const Vec& a, const Vec& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
  return m;
}

// Runs f with exactly `threads` OpenMP threads, restoring the previous setting.
template <typename F>
void with_threads(int threads, F&& f) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(threads);
  f();
  omp_set_num_threads(prev);
}

}  // namespace

// ============================================================================ gradient checks

TEST_CASE("gradcheck: linear (inp, W, b)") {
  const int N = 5, IC = 7, OC = 3;
  Rng rng(1);
  Vec inp = random_normal(N * IC, rng), W = random_normal(OC * IC, rng, 0.5f),
      b = random_normal(OC, rng), up = random_normal(N * OC, rng), out(N * OC);
  auto loss = [&] {
    linear_forward(out.data(), inp.data(), W.data(), b.data(), N, IC, OC);
    return dot_double(out, up);
  };
  loss();
  AccumGrad dinp(N * IC, rng), dW(OC * IC, rng), db(OC, rng);
  linear_backward(dinp.data(), dW.data(), db.data(), up.data(), inp.data(), W.data(), N, IC, OC);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "linear dinp");
  expect_grad_ok(gradcheck(W, dW.grad(), loss), "linear dW");
  expect_grad_ok(gradcheck(b, db.grad(), loss), "linear db");
}

TEST_CASE("gradcheck: layernorm (inp, w, b)") {
  const int N = 5, C = 7;
  Rng rng(2);
  Vec inp = random_normal(N * C, rng, 2.0f), w(C), b = random_normal(C, rng),
      up = random_normal(N * C, rng), out(N * C), mean(N), rstd(N);
  for (int c = 0; c < C; c++) w[c] = 1.0f + 0.5f * rng.normal();
  for (int c = 0; c < C; c++) inp[c] += 3.0f;  // one row with a large offset
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
    return dot_double(out, up);
  };
  loss();
  AccumGrad dinp(N * C, rng), dw(C, rng), db(C, rng);
  layernorm_backward(dinp.data(), dw.data(), db.data(), up.data(), inp.data(), w.data(),
                     mean.data(), rstd.data(), N, C);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "layernorm dinp");
  expect_grad_ok(gradcheck(w, dw.grad(), loss), "layernorm dw");
  expect_grad_ok(gradcheck(b, db.grad(), loss), "layernorm db");
}

TEST_CASE("gradcheck: gelu") {
  const size_t n = 37;
  Rng rng(3);
  Vec inp = random_normal(n, rng, 2.0f), up = random_normal(n, rng), out(n);
  inp[0] = 0.0f;  // the inflection region
  inp[1] = -5.0f;  // far tail: gradient ~0
  inp[2] = 5.0f;   // far tail: gradient ~1
  auto loss = [&] {
    gelu_forward(out.data(), inp.data(), n);
    return dot_double(out, up);
  };
  AccumGrad dinp(n, rng);
  gelu_backward(dinp.data(), inp.data(), up.data(), n);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "gelu dinp");
}

TEST_CASE("gradcheck: softmax") {
  const int N = 5, C = 7;
  Rng rng(4);
  Vec inp = random_normal(N * C, rng, 2.0f), up = random_normal(N * C, rng), out(N * C);
  for (int c = 0; c < C; c++) inp[C + c] += 50.0f;  // a shifted row: max subtraction matters
  auto loss = [&] {
    softmax_forward(out.data(), inp.data(), N, C);
    return dot_double(out, up);
  };
  loss();
  AccumGrad dinp(N * C, rng);
  softmax_backward(dinp.data(), out.data(), up.data(), N, C);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "softmax dinp");
}

TEST_CASE("gradcheck: embedding table (with repeated and unused ids)") {
  const int V = 6, N = 5, C = 7;
  const std::vector<int> ids = {3, 1, 3, 0, 5};  // 3 repeats, 2 and 4 unused
  Rng rng(5);
  Vec table = random_normal(V * C, rng), up = random_normal(N * C, rng), out(N * C);
  auto loss = [&] {
    embedding_forward(out.data(), ids.data(), table.data(), N, C);
    return dot_double(out, up);
  };
  AccumGrad dtable(V * C, rng);
  embedding_backward(dtable.data(), ids.data(), up.data(), N, C);
  const Vec g = dtable.grad();
  expect_grad_ok(gradcheck(table, g, loss), "embedding dtable");
  for (int c = 0; c < C; c++) {
    CHECK(g[2 * C + c] == 0.0f);
    CHECK(g[4 * C + c] == 0.0f);
  }
}

TEST_CASE("gradcheck: cross-entropy logits (ignored rows, smoothing 0 and 0.1)") {
  const int N = 7, V = 5, ignore = -100;
  const std::vector<int> targets = {2, ignore, 0, 4, ignore, 1, 3};
  for (float smoothing : {0.0f, 0.1f}) {
    CAPTURE(smoothing);
    Rng rng(6);
    Vec logits = random_normal(N * V, rng, 2.0f), probs(N * V), losses(N);
    int count = 0;
    // the scalar checked is the mean loss, recomputed in double from the per-row losses
    auto loss = [&] {
      cross_entropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), N, V,
                            ignore, smoothing, &count);
      double s = 0.0;
      for (float l : losses) s += l;
      return s / count;
    };
    loss();
    REQUIRE(count == 5);
    AccumGrad dlogits(N * V, rng);
    cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, V, ignore, smoothing,
                           1.0f / count);
    const Vec g = dlogits.grad();
    expect_grad_ok(gradcheck(logits, g, loss),
                   "cross-entropy dlogits, smoothing " + std::to_string(smoothing));
    for (int v = 0; v < V; v++) {
      CHECK(g[1 * V + v] == 0.0f);
      CHECK(g[4 * V + v] == 0.0f);
    }
  }
}

TEST_CASE("gradcheck: dropout inp (fixed mask)") {
  const size_t n = 37;
  const float p = 0.3f;
  Rng rng(7);
  Vec inp = random_normal(n, rng), up = random_normal(n, rng), out(n), mask(n);
  // the same seed every call, so every evaluation of the loss uses the same mask
  auto loss = [&] {
    Rng drop_rng(1234);
    dropout_forward(out.data(), mask.data(), inp.data(), n, p, drop_rng);
    return dot_double(out, up);
  };
  loss();
  AccumGrad dinp(n, rng);
  dropout_backward(dinp.data(), mask.data(), up.data(), n);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "dropout dinp");
}

TEST_CASE("gradcheck: residual (both inputs)") {
  const size_t n = 37;
  Rng rng(8);
  Vec a = random_normal(n, rng), b = random_normal(n, rng), up = random_normal(n, rng), out(n);
  auto loss = [&] {
    residual_forward(out.data(), a.data(), b.data(), n);
    return dot_double(out, up);
  };
  AccumGrad da(n, rng), db(n, rng);
  residual_backward(da.data(), db.data(), up.data(), n);
  expect_grad_ok(gradcheck(a, da.grad(), loss), "residual da");
  expect_grad_ok(gradcheck(b, db.grad(), loss), "residual db");
}

TEST_CASE("gradcheck: the checker flags a wrong gradient") {
  // sanity check of the checker itself: a gradient off by 1% must fail the tolerance
  const size_t n = 11;
  Rng rng(9);
  Vec x = random_normal(n, rng), up = random_normal(n, rng), out(n);
  auto loss = [&] {
    gelu_forward(out.data(), x.data(), n);
    return dot_double(out, up);
  };
  Vec g(n, 0.0f);
  gelu_backward(g.data(), x.data(), up.data(), n);
  CHECK(gradcheck(x, g, loss).max_rel < kGradTol);
  size_t big = 0;
  for (size_t i = 1; i < n; i++)
    if (std::fabs(g[i]) > std::fabs(g[big])) big = i;
  g[big] *= 1.01f;
  CHECK(gradcheck(x, g, loss).max_rel > kGradTol);
}

// ============================================================================ value tests

TEST_CASE("linear: forward matches a naive reference, with and without bias") {
  const int N = 9, IC = 13, OC = 11;
  Rng rng(10);
  Vec inp = random_normal(N * IC, rng), W = random_normal(OC * IC, rng), b = random_normal(OC, rng);
  Vec out(N * OC), out_nob(N * OC, 123.0f);  // garbage: forward must overwrite
  linear_forward(out.data(), inp.data(), W.data(), b.data(), N, IC, OC);
  linear_forward(out_nob.data(), inp.data(), W.data(), nullptr, N, IC, OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0.0;
      for (int i = 0; i < IC; i++) s += (double)inp[n * IC + i] * W[o * IC + i];
      CHECK(out_nob[n * OC + o] == doctest::Approx(s).epsilon(1e-5));
      CHECK(out[n * OC + o] == doctest::Approx(s + b[o]).epsilon(1e-5));
    }
}

TEST_CASE("linear: backward with null dinp / dW / db") {
  const int N = 5, IC = 7, OC = 3;
  Rng rng(11);
  Vec inp = random_normal(N * IC, rng), W = random_normal(OC * IC, rng),
      dout = random_normal(N * OC, rng);
  Vec dinp(N * IC, 0.0f), dW(OC * IC, 0.0f), db(OC, 0.0f);
  linear_backward(dinp.data(), dW.data(), db.data(), dout.data(), inp.data(), W.data(), N, IC, OC);

  Vec dW2(OC * IC, 0.0f);
  linear_backward(nullptr, dW2.data(), nullptr, dout.data(), inp.data(), W.data(), N, IC, OC);
  CHECK(bitwise_equal(dW, dW2));

  Vec dinp2(N * IC, 0.0f);
  linear_backward(dinp2.data(), nullptr, nullptr, dout.data(), inp.data(), W.data(), N, IC, OC);
  CHECK(bitwise_equal(dinp, dinp2));

  Vec db2(OC, 0.0f);
  linear_backward(nullptr, nullptr, db2.data(), dout.data(), inp.data(), W.data(), N, IC, OC);
  CHECK(bitwise_equal(db, db2));
  for (int o = 0; o < OC; o++) {
    double s = 0.0;
    for (int n = 0; n < N; n++) s += dout[n * OC + o];
    CHECK(db[o] == doctest::Approx(s).epsilon(1e-6));
  }
}

TEST_CASE("cross-entropy: hand-computed values, probs, stability") {
  // row 0: logits [1,2,3], target 2;  row 1: ignored
  const int V = 3, ignore = -1;
  const std::vector<int> targets = {2, ignore};
  const Vec base = {1.0f, 2.0f, 3.0f, 0.5f, -0.5f, 9.0f};
  // lse = log(e + e² + e³) = 3.40760596444438
  const double lse = 3.40760596444438;
  for (float shift : {0.0f, 1000.0f}) {  // the same loss for logits shifted by 1000
    CAPTURE(shift);
    Vec logits = base, probs(2 * V), losses(2, 7.0f);
    for (float& l : logits) l += shift;
    int count = -1;
    float mean = cross_entropy_forward(probs.data(), losses.data(), logits.data(), targets.data(),
                                       2, V, ignore, 0.0f, &count);
    CHECK(count == 1);
    CHECK(mean == doctest::Approx(lse - 3.0).epsilon(1e-6));  // 0.40760596
    CHECK(losses[0] == doctest::Approx(0.40760596444438).epsilon(1e-6));
    CHECK(losses[1] == 0.0f);
    CHECK(probs[0] == doctest::Approx(0.09003057317038046).epsilon(1e-6));
    CHECK(probs[1] == doctest::Approx(0.24472847105479767).epsilon(1e-6));
    CHECK(probs[2] == doctest::Approx(0.6652409557748219).epsilon(1e-6));

    // smoothing 0.1: lse - 0.9·3 - (0.1/3)·(1+2+3) = 0.50760596
    mean = cross_entropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), 2, V,
                                 ignore, 0.1f, &count);
    CHECK(std::isfinite(mean));
    CHECK(mean == doctest::Approx(lse - 0.9 * 3.0 - 0.1 / 3.0 * 6.0).epsilon(1e-6));
  }
}

TEST_CASE("cross-entropy: ignored rows give zero loss and zero gradient") {
  const int N = 4, V = 6;
  Rng rng(12);
  Vec logits = random_normal(N * V, rng), probs(N * V), losses(N, 5.0f), dlogits(N * V, 0.0f);
  for (int ignore : {-100, 0}) {  // the ignore index may also be a real class id (padding = 0)
    CAPTURE(ignore);
    const std::vector<int> targets = {3, ignore, ignore, 5};
    int count = 0;
    const float mean = cross_entropy_forward(probs.data(), losses.data(), logits.data(),
                                             targets.data(), N, V, ignore, 0.1f, &count);
    CHECK(count == 2);
    CHECK(losses[1] == 0.0f);
    CHECK(losses[2] == 0.0f);
    CHECK(losses[0] > 0.0f);
    CHECK(mean == doctest::Approx((losses[0] + losses[3]) / 2.0).epsilon(1e-6));
    std::fill(dlogits.begin(), dlogits.end(), 0.0f);
    cross_entropy_backward(dlogits.data(), probs.data(), targets.data(), N, V, ignore, 0.1f, 0.5f);
    double row0 = 0.0;
    for (int v = 0; v < V; v++) {
      CHECK(dlogits[1 * V + v] == 0.0f);
      CHECK(dlogits[2 * V + v] == 0.0f);
      row0 += dlogits[v];
    }
    CHECK(std::fabs(row0) < 1e-6);  // Σ_v (p - q) = 0
  }
  // all rows ignored: mean 0, count 0
  const std::vector<int> all_ignored(N, -1);
  int count = 99;
  CHECK(cross_entropy_forward(probs.data(), losses.data(), logits.data(), all_ignored.data(), N, V,
                              -1, 0.0f, &count) == 0.0f);
  CHECK(count == 0);
  // an out-of-range target is an error, not a silent read
  const std::vector<int> bad = {0, V, 1, 2};
  CHECK_THROWS(cross_entropy_forward(probs.data(), losses.data(), logits.data(), bad.data(), N, V,
                                     -1, 0.0f, &count));
}

TEST_CASE("layernorm: w=1, b=0 gives rows of mean 0 and variance 1, and saves mean and rstd") {
  const int N = 6, C = 33;
  Rng rng(13);
  Vec inp = random_normal(N * C, rng, 3.0f), w(C, 1.0f), b(C, 0.0f), out(N * C), mean(N), rstd(N);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) inp[n * C + c] += 10.0f * n;  // different offsets per row
  layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
  for (int n = 0; n < N; n++) {
    double m = 0.0, v = 0.0, xm = 0.0, xv = 0.0;
    for (int c = 0; c < C; c++) m += out[n * C + c], xm += inp[n * C + c];
    m /= C, xm /= C;
    for (int c = 0; c < C; c++) {
      v += (out[n * C + c] - m) * (out[n * C + c] - m);
      xv += (inp[n * C + c] - xm) * (inp[n * C + c] - xm);
    }
    v /= C, xv /= C;
    CHECK(std::fabs(m) < 1e-5);
    CHECK(v == doctest::Approx(1.0).epsilon(1e-4));  // exactly var/(var+eps) ≈ 1 - 1e-6
    CHECK(mean[n] == doctest::Approx(xm).epsilon(1e-5));
    CHECK(rstd[n] == doctest::Approx(1.0 / std::sqrt(xv + 1e-5)).epsilon(1e-5));
  }
}

TEST_CASE("softmax: rows sum to 1, stable for large inputs") {
  const int N = 4, C = 9;
  Rng rng(14);
  Vec inp = random_normal(N * C, rng, 3.0f), out(N * C);
  for (int c = 0; c < C; c++) inp[2 * C + c] += 1000.0f;   // would overflow exp() unshifted
  for (int c = 0; c < C; c++) inp[3 * C + c] -= 1000.0f;   // would underflow to 0/0
  softmax_forward(out.data(), inp.data(), N, C);
  for (int n = 0; n < N; n++) {
    double s = 0.0;
    for (int c = 0; c < C; c++) {
      CHECK(out[n * C + c] > 0.0f);
      CHECK(out[n * C + c] <= 1.0f);
      s += out[n * C + c];
    }
    CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("gelu: known values") {
  Vec x = {0.0f, 1.0f, -1.0f, 3.0f, -10.0f}, y(5);
  gelu_forward(y.data(), x.data(), x.size());
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == doctest::Approx(0.8411919906).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(-0.1588080094).epsilon(1e-5));
  CHECK(y[3] == doctest::Approx(2.9963625).epsilon(1e-6));
  CHECK(std::fabs(y[4]) < 1e-6);
}

TEST_CASE("gradcheck: gelu_erf (exact GELU)") {
  const size_t n = 37;
  Rng rng(31);
  Vec inp = random_normal(n, rng, 2.0f), up = random_normal(n, rng), out(n);
  inp[0] = 0.0f;
  inp[1] = -5.0f;
  inp[2] = 5.0f;
  auto loss = [&] {
    gelu_erf_forward(out.data(), inp.data(), n);
    return dot_double(out, up);
  };
  AccumGrad dinp(n, rng);  // checks that the backward adds into what was there
  gelu_erf_backward(dinp.data(), inp.data(), up.data(), n);
  expect_grad_ok(gradcheck(inp, dinp.grad(), loss), "gelu_erf dinp");
}

// x·Φ(x) from the closed form (Python: 0.5*x*(1+math.erf(x/math.sqrt(2)))); the tanh form differs
// from it by up to ~1e-3 (0.8411920 at x = 1), so these values also tell the two apart.
TEST_CASE("gelu_erf: known values, and the in-place backward equals the accumulating one") {
  Vec x = {0.0f, 1.0f, -1.0f, 3.0f, -10.0f}, y(5);
  gelu_erf_forward(y.data(), x.data(), x.size());
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == doctest::Approx(0.8413447460685429).epsilon(1e-6));
  CHECK(y[2] == doctest::Approx(-0.15865525393145707).epsilon(1e-6));
  CHECK(y[3] == doctest::Approx(2.99595030590511).epsilon(1e-6));
  CHECK(std::fabs(y[4]) < 1e-6);
  Rng rng(32);
  const size_t n = 1000;
  Vec xs = random_normal(n, rng, 2.0f), d = random_normal(n, rng), acc(n, 0.0f);
  gelu_erf_backward(acc.data(), xs.data(), d.data(), n);
  Vec inplace = d;
  gelu_erf_backward_inplace(inplace.data(), xs.data(), n);
  CHECK(inplace == acc);
  // slope at 0 is Φ(0) = ½; at 1, Φ(1) + φ(1)
  Vec one = {0.0f, 1.0f}, g = {1.0f, 1.0f};
  gelu_erf_backward_inplace(g.data(), one.data(), 2);
  CHECK(g[0] == doctest::Approx(0.5).epsilon(1e-7));
  CHECK(g[1] == doctest::Approx(0.8413447460685429 + 0.24197072451914337).epsilon(1e-6));
}

// The MLP backward's write-mode pair must give what the add-mode functions give into zeroed
// buffers (the model switched to them to skip the zeroing passes).
TEST_CASE("gelu_backward_inplace and linear_backward(add_dinp=false) equal the accumulating forms") {
  Rng rng(21);
  const int N = 37, IC = 19, OC = 45;
  const size_t n = size_t(N) * OC;  // not a multiple of the GELU block or packet
  Vec x(n), d(n), W(size_t(OC) * IC), inp(size_t(N) * IC), dout(n);
  for (auto* v : {&x, &d, &W, &inp, &dout})
    for (auto& e : *v) e = 2.0f * rng.normal();
  Vec acc(n, 0.0f);
  gelu_backward(acc.data(), x.data(), d.data(), n);
  Vec inplace = d;
  gelu_backward_inplace(inplace.data(), x.data(), n);
  CHECK(inplace == acc);
  CHECK(inplace != d);

  Vec da(size_t(N) * IC, 0.0f), dW1(size_t(OC) * IC, 0.0f), dW2 = dW1;
  linear_backward(da.data(), dW1.data(), nullptr, dout.data(), inp.data(), W.data(), N, IC, OC);
  Vec dw_(size_t(N) * IC, 123.0f);  // garbage: written, not added to
  linear_backward(dw_.data(), dW2.data(), nullptr, dout.data(), inp.data(), W.data(), N, IC, OC, false);
  CHECK(dw_ == da);
  CHECK(dW2 == dW1);
}

TEST_CASE("embedding and residual: forward values") {
  const int V = 4, C = 3;
  const Vec table = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};
  const std::vector<int> ids = {2, 0, 2};
  Vec out(3 * C);
  embedding_forward(out.data(), ids.data(), table.data(), 3, C);
  CHECK(out == Vec{20, 21, 22, 0, 1, 2, 20, 21, 22});
  (void)V;
  const Vec a = {1, 2, 3}, b = {10, 20, 30};
  Vec r(3);
  residual_forward(r.data(), a.data(), b.data(), 3);
  CHECK(r == Vec{11, 22, 33});
  // null gradient pointers are skipped
  Vec da(3, 0.0f);
  residual_backward(da.data(), nullptr, b.data(), 3);
  CHECK(da == b);
}

TEST_CASE("dropout: p=0.5 keeps about half and scales by 2, and the mask follows the seed") {
  const size_t n = 100000;
  Rng rng(15);
  Vec inp = random_normal(n, rng), out(n), mask(n), out2(n), mask2(n);
  Rng r1(42);
  dropout_forward(out.data(), mask.data(), inp.data(), n, 0.5f, r1);
  size_t kept = 0;
  bool values_ok = true;
  for (size_t i = 0; i < n; i++) {
    if (mask[i] == 2.0f) {
      kept++;
      values_ok &= out[i] == 2.0f * inp[i];
    } else {
      values_ok &= mask[i] == 0.0f && out[i] == 0.0f;
    }
  }
  CHECK(values_ok);
  // binomial(1e5, 0.5): σ ≈ 158, so ±1000 is > 6σ
  CHECK(kept > n / 2 - 1000);
  CHECK(kept < n / 2 + 1000);

  Rng r2(42);
  dropout_forward(out2.data(), mask2.data(), inp.data(), n, 0.5f, r2);
  CHECK(bitwise_equal(mask, mask2));
  CHECK(bitwise_equal(out, out2));
  CHECK(r1.state() == r2.state());

  Rng r3(43);
  dropout_forward(out2.data(), mask2.data(), inp.data(), n, 0.5f, r3);
  CHECK_FALSE(bitwise_equal(mask, mask2));

  // p = 0: identity, mask all ones, nothing drawn
  Rng r4(42);
  const auto before = r4.state();
  dropout_forward(out2.data(), mask2.data(), inp.data(), n, 0.0f, r4);
  CHECK(r4.state() == before);
  CHECK(bitwise_equal(out2, inp));
  CHECK(mask2 == Vec(n, 1.0f));
}

TEST_CASE("backward accumulates: calling it twice doubles the gradient") {
  Rng rng(16);
  const int N = 5, IC = 7, OC = 3, V = 6;
  const auto twice_is_double = [](const Vec& once, const Vec& twice, const char* what) {
    INFO(what);
    REQUIRE(once.size() == twice.size());
    double m = 0.0, scale = 0.0;
    for (size_t i = 0; i < once.size(); i++) {
      m = std::max(m, (double)std::fabs(twice[i] - 2.0f * once[i]));
      scale = std::max(scale, (double)std::fabs(once[i]));
    }
    CHECK(scale > 0.0);
    CHECK(m <= 1e-6 * scale);  // exact for elementwise ops; GEMM with beta=1 may round once
  };
  const auto run = [](int times, auto&& f) {
    for (int k = 0; k < times; k++) f();
  };

  {  // linear
    Vec inp = random_normal(N * IC, rng), W = random_normal(OC * IC, rng),
        dout = random_normal(N * OC, rng);
    Vec g1[3], g2[3];
    for (int t = 1; t <= 2; t++) {
      Vec dinp(N * IC, 0.0f), dW(OC * IC, 0.0f), db(OC, 0.0f);
      run(t, [&] {
        linear_backward(dinp.data(), dW.data(), db.data(), dout.data(), inp.data(), W.data(), N,
                        IC, OC);
      });
      Vec* g = t == 1 ? g1 : g2;
      g[0] = dinp, g[1] = dW, g[2] = db;
    }
    twice_is_double(g1[0], g2[0], "linear dinp");
    twice_is_double(g1[1], g2[1], "linear dW");
    twice_is_double(g1[2], g2[2], "linear db");
  }
  {  // layernorm
    Vec inp = random_normal(N * IC, rng), w = random_normal(IC, rng), b = random_normal(IC, rng),
        dout = random_normal(N * IC, rng), out(N * IC), mean(N), rstd(N);
    layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, IC);
    Vec g1[3], g2[3];
    for (int t = 1; t <= 2; t++) {
      Vec dinp(N * IC, 0.0f), dw(IC, 0.0f), db(IC, 0.0f);
      run(t, [&] {
        layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(),
                           mean.data(), rstd.data(), N, IC);
      });
      Vec* g = t == 1 ? g1 : g2;
      g[0] = dinp, g[1] = dw, g[2] = db;
    }
    twice_is_double(g1[0], g2[0], "layernorm dinp");
    twice_is_double(g1[1], g2[1], "layernorm dw");
    twice_is_double(g1[2], g2[2], "layernorm db");
  }
  // single-input ops: backward(t) runs the backward t times into a zeroed buffer
  const auto check_single = [&](size_t n, const char* what, auto&& backward) {
    Vec g1(n, 0.0f), g2(n, 0.0f);
    backward(g1.data());
    backward(g2.data());
    backward(g2.data());
    twice_is_double(g1, g2, what);
  };
  const size_t n = N * IC;
  Vec x = random_normal(n, rng), dout = random_normal(n, rng), y(n), mask(n);
  check_single(n, "gelu", [&](float* g) { gelu_backward(g, x.data(), dout.data(), n); });
  softmax_forward(y.data(), x.data(), N, IC);
  check_single(n, "softmax", [&](float* g) { softmax_backward(g, y.data(), dout.data(), N, IC); });
  const std::vector<int> ids = {1, 4, 1, 0, 5};
  check_single(V * IC, "embedding",
               [&](float* g) { embedding_backward(g, ids.data(), dout.data(), N, IC); });
  const std::vector<int> targets = {1, -1, 6, 0, 2};
  Vec probs(n), losses(N);
  cross_entropy_forward(probs.data(), losses.data(), x.data(), targets.data(), N, IC, -1, 0.1f);
  check_single(n, "cross-entropy", [&](float* g) {
    cross_entropy_backward(g, probs.data(), targets.data(), N, IC, -1, 0.1f, 0.25f);
  });
  Rng drop_rng(3);
  dropout_forward(y.data(), mask.data(), x.data(), n, 0.4f, drop_rng);
  check_single(n, "dropout", [&](float* g) { dropout_backward(g, mask.data(), dout.data(), n); });
  check_single(n, "residual a", [&](float* g) { residual_backward(g, nullptr, dout.data(), n); });
  check_single(n, "residual b", [&](float* g) { residual_backward(nullptr, g, dout.data(), n); });
}

TEST_CASE("determinism: row reductions are bitwise identical across runs and thread counts") {
  // large enough that the OpenMP loops actually run in parallel
  const int N = 517, C = 301, V = 97;
  Rng rng(17);
  Vec inp = random_normal((size_t)N * C, rng), w = random_normal(C, rng), b = random_normal(C, rng),
      dout = random_normal((size_t)N * C, rng), out((size_t)N * C), mean(N), rstd(N);
  std::vector<int> ids(N), targets(N);
  for (int n = 0; n < N; n++) {
    ids[n] = (int)rng.below(V);
    targets[n] = n % 7 == 0 ? -1 : (int)rng.below(C);
  }
  layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);

  struct Result {
    Vec ln_dinp, ln_dw, ln_db, lin_db, emb, ce_grad;
    float ce_loss = 0.0f;
  };
  const auto compute = [&] {
    Result r;
    r.ln_dinp.assign((size_t)N * C, 0.0f);
    r.ln_dw.assign(C, 0.0f);
    r.ln_db.assign(C, 0.0f);
    layernorm_backward(r.ln_dinp.data(), r.ln_dw.data(), r.ln_db.data(), dout.data(), inp.data(),
                       w.data(), mean.data(), rstd.data(), N, C);
    r.lin_db.assign(C, 0.0f);
    linear_backward(nullptr, nullptr, r.lin_db.data(), dout.data(), inp.data(), nullptr, N, 1, C);
    r.emb.assign((size_t)V * C, 0.0f);
    embedding_backward(r.emb.data(), ids.data(), dout.data(), N, C);
    Vec probs((size_t)N * C), losses(N);
    r.ce_loss = cross_entropy_forward(probs.data(), losses.data(), inp.data(), targets.data(), N,
                                      C, -1, 0.1f);
    r.ce_grad.assign((size_t)N * C, 0.0f);
    cross_entropy_backward(r.ce_grad.data(), probs.data(), targets.data(), N, C, -1, 0.1f, 0.01f);
    return r;
  };
  Result one, two, two_again;
  with_threads(1, [&] { one = compute(); });
  with_threads(2, [&] { two = compute(); });
  with_threads(2, [&] { two_again = compute(); });
  // same thread count, and 1 vs 2 threads
  for (auto [r1, o] : {std::pair{&two, &two_again}, std::pair{&one, &two}}) {
    CHECK(bitwise_equal(r1->ln_dinp, o->ln_dinp));
    CHECK(bitwise_equal(r1->ln_dw, o->ln_dw));
    CHECK(bitwise_equal(r1->ln_db, o->ln_db));
    CHECK(bitwise_equal(r1->lin_db, o->lin_db));
    CHECK(bitwise_equal(r1->emb, o->emb));
    CHECK(bitwise_equal(r1->ce_grad, o->ce_grad));
    CHECK(r1->ce_loss == o->ce_loss);
  }
  // and the layernorm parameter gradients agree with a double-precision reference
  Vec ref_dw(C, 0.0f);
  for (int c = 0; c < C; c++) {
    double s = 0.0;
    for (int n = 0; n < N; n++)
      s += (double)dout[(size_t)n * C + c] * ((inp[(size_t)n * C + c] - mean[n]) * rstd[n]);
    ref_dw[c] = (float)s;
  }
  CHECK(max_abs_diff(one.ln_dw, ref_dw) < 1e-3);
}

TEST_CASE("softmax_backward_rows equals softmax_backward into a zeroed buffer") {
  attnlab::Rng rng(17);
  const int N = 4, C = 9;
  std::vector<float> x = attnlab::test::random_normal(N * C, rng), p(N * C), dout = attnlab::test::random_normal(N * C, rng);
  attnlab::softmax_forward(p.data(), x.data(), N, C);
  std::vector<float> ref(N * C, 0.0f), d = dout;
  attnlab::softmax_backward(ref.data(), p.data(), dout.data(), N, C);
  attnlab::softmax_backward_rows(d.data(), p.data(), N, C);
  for (int i = 0; i < N * C; i++) CHECK(d[i] == doctest::Approx(ref[i]).epsilon(1e-6));
}
