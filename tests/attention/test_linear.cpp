// Tests of the `linear` attention module (src/attention/linear.cpp; Katharopoulos et al. 2020).
// The PyTorch fixtures (tests/fixtures/attention/linear_*, written by
// scripts/make_linear_fixtures.py from the quadratic form φ(Q)φ(K)ᵀ) are checked by the generic
// fixture test in test_attention.cpp. Here:
//   a) finite-difference gradient checks of every input and parameter;
//   b) the recurrent (cached) form against the parallel causal form, causality;
//   c) the implied weights A reproduce the output; key padding and empty rows;
//   d) determinism over thread counts, the += contract, and rejected options.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "attention/harness.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "ops/gradcheck.h"

using namespace attnlab;
using namespace attnlab::test;

namespace {

AttentionSpec linear_spec(int C, int H, int Hkv, bool causal) {
  AttentionSpec s = make_spec(C, H, Hkv, causal);
  s.type = "linear";
  return s;
}

constexpr double kUlp32 = 1.1920928955078125e-07;  // 2^-23, the float32 ulp at 1

const char* heads_label(int H, int Hkv) { return Hkv == H ? "MHA" : Hkv == 1 ? "MQA" : "GQA"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// a) finite-difference gradient checks
// ---------------------------------------------------------------------------------------------
//
// The linear variant runs run_gradcheck (harness.h) with two of its options (linear_gc_options
// below); the set-up (weights std 0.4, inputs, U, L = Σ out ⊙ U), the Richardson quotient with
// h = 4e-2 and the relative error with a floor of 5% of the tensor's largest gradient are the same.
//
// 1. The elu kink (GcOptions::element_step). φ = elu + 1 is only C¹ (φ'' jumps from 1 to 0 at 0),
//    and Richardson assumes L is smooth within ±h. When a perturbation of ±h moves a
//    pre-activation q or k across 0 the quotient is off by up to ~h/4 on that term: run_gradcheck
//    as it is measured max_rel up to 1.4e-2 on this backward (6 of 23 configurations failed),
//    2.6e-3 with φ temporarily replaced by the smooth exp. Perturbing one element by t moves each
//    pre-activation p it touches linearly, p(t) = p₀ + t·s, so its kink-free radius is
//    r = min |p₀/s| over those that reach the loss (Q = x_q W_qᵀ + b_q, K = x_kv W_kᵀ + b_k,
//    recomputed here in double; padded keys and queries that see no key do not count). The
//    element's step is h = min(4e-2, 0.9 r). One near-zero pre-activation shrinks the step of a
//    whole row of W_q or W_k: ~7% of the elements get a smaller step; an element with h < 4e-3 is
//    not checked (~1%, ≤ 5% allowed).
// 2. Rounding noise (GcOptions::rounding_noise = ε₃₂). The float32 forward gives L a noise of a
//    fraction of ε₃₂·Σ|out ⊙ U|, and the quotient divides it by h. Linear attention depends on the
//    queries weakly (its weights are flat compared with a softmax: a query that sees one key has
//    A = 1 whatever q is), so the query-side gradients (dx_q, dW_q, db_q, and db_k) can be 100×
//    smaller than the output-side ones, and the 5%-of-max floor alone does not lift them above
//    that noise: over 40 seeds per configuration, 15 of 920 checks exceeded 5e-3 (worst 1.3e-2, a
//    case where the quotient itself moved by 1.5e-4 between h = 2e-2 and 4e-2, with gradients of
//    5e-3). So an element passes when
//        |a − n| ≤ 5e-3 · max(|a|, |n|, floor) + ε₃₂ · Σ|out ⊙ U| / h
//    where the second term (≈ 3.5e-4 at h = 4e-2) is an upper bound of that noise (measured
//    noise of L: ~0.2 ε₃₂·Σ|out ⊙ U|). It matters only for gradients below ~0.07; a wrong term
//    in the backward moves the large ones by far more (see the deliberate breaks in the report).
// The reported number per tensor is the largest |a − n| / bound (passes below 1), and, for
// comparison with the plain check, the max_rel of the elements checked with the full step.

namespace {

using LinearGcStats = GcStats;

// the step of each element: min(4e-2, 0.9 × its kink-free radius), 0 (skipped) below 4e-3
std::function<double(const std::string&, size_t)> elu_kink_steps(const GcContext& ctx) {
  const GcConfig& c = ctx.config;
  const std::vector<float>& x_q = ctx.x_q;
  const std::vector<float>& xkv = ctx.x_kv;
  const std::vector<unsigned char>& keep = ctx.keep;
  // pre-activations in double (inputs and parameters are restored bit-exactly after each step)
  const int C = c.C, Ckv = c.Hkv * (c.C / c.H), Nq = c.B * c.Tq, Nk = c.B * c.Tk;
  const Param& wq = *ctx.param("w_q");
  const Param& wk = *ctx.param("w_k");
  const Param* bq = c.bias ? ctx.param("b_q") : nullptr;
  const Param* bk = c.bias ? ctx.param("b_k") : nullptr;
  std::vector<double> Q(size_t(Nq) * C), K(size_t(Nk) * Ckv);
  for (int r = 0; r < Nq; r++)
    for (int o = 0; o < C; o++) {
      double s = bq ? bq->w[o] : 0.0;
      for (int i = 0; i < C; i++) s += double(x_q[size_t(r) * C + i]) * wq.w[size_t(o) * C + i];
      Q[size_t(r) * C + o] = s;
    }
  for (int r = 0; r < Nk; r++)
    for (int o = 0; o < Ckv; o++) {
      double s = bk ? bk->w[o] : 0.0;
      for (int i = 0; i < C; i++) s += double(xkv[size_t(r) * C + i]) * wk.w[size_t(o) * C + i];
      K[size_t(r) * Ckv + o] = s;
    }
  // pre-activations that cannot reach the loss: padded keys, queries that see no kept key
  std::vector<char> q_live(Nq, 0), k_live(Nk, 1);
  for (int b = 0; b < c.B; b++) {
    int first = 0;
    while (first < c.Tk && !keep.empty() && !keep[size_t(b) * c.Tk + first]) first++;
    for (int i = 0; i < c.Tq; i++) {
      const int lim = c.causal ? std::clamp(i + c.Tk - c.Tq + 1, 0, c.Tk) : c.Tk;
      q_live[size_t(b) * c.Tq + i] = lim > first;
    }
    for (int j = 0; j < c.Tk; j++) k_live[size_t(b) * c.Tk + j] = keep.empty() || keep[size_t(b) * c.Tk + j];
  }
  const double inf = std::numeric_limits<double>::infinity();
  auto dist = [inf](double p, double slope) { return slope == 0.0 ? inf : std::fabs(p / slope); };
  // kink-free radius of element e of the named tensor (w_v, b_v, w_o, b_o do not reach φ)
  auto radius = [=, &x_q, &xkv, &wq, &wk](const std::string& name, size_t e) -> double {
    double r = inf;
    if (name == "x_q" || name == "x_kv") {
      const size_t row = e / C, col = e % C;
      if (name == "x_q" && q_live[row])
        for (int o = 0; o < C; o++) r = std::min(r, dist(Q[row * C + o], wq.w[size_t(o) * C + col]));
      if ((name == "x_kv" || c.self_attn) && k_live[row])
        for (int o = 0; o < Ckv; o++) r = std::min(r, dist(K[row * Ckv + o], wk.w[size_t(o) * C + col]));
    } else if (name == "w_q" || name == "b_q") {
      const size_t o = name == "w_q" ? e / C : e;
      for (int row = 0; row < Nq; row++)
        if (q_live[row])
          r = std::min(r, dist(Q[size_t(row) * C + o], name == "w_q" ? double(x_q[size_t(row) * C + e % C]) : 1.0));
    } else if (name == "w_k" || name == "b_k") {
      const size_t o = name == "w_k" ? e / C : e;
      for (int row = 0; row < Nk; row++)
        if (k_live[row])
          r = std::min(r, dist(K[size_t(row) * Ckv + o], name == "w_k" ? double(xkv[size_t(row) * C + e % C]) : 1.0));
    }
    return r;
  };
  return [radius](const std::string& name, size_t e) {
    const double step = std::min(double(kGradcheckStep), 0.9 * radius(name, e));
    return step < 4e-3 ? 0.0 : step;
  };
}

void linear_gradcheck(const GcConfig& c, uint64_t seed, LinearGcStats& st) {
  GcConfig lc = c;
  lc.type = "linear";
  GcOptions opt;
  opt.element_step = elu_kink_steps;  // 1. above
  opt.rounding_noise = kUlp32;        // 2. above
  opt.stats = &st;
  run_gradcheck(lc, seed, opt);
}

void report(const LinearGcStats& st, const std::string& what) {
  MESSAGE(fmt::format("linear gradcheck, {}: worst error / bound {:.3f}; max_rel of the full-step elements "
                      "{:.2e}; {} elements checked, {} with a step shrunk for the elu kink, {} skipped",
                      what, st.worst_ratio, st.worst_rel_full, st.checked, st.shrunk, st.skipped));
  CHECK(st.skipped * 20 <= st.checked);  // at most 5% of the elements too close to the kink
}

}  // namespace

TEST_CASE("linear: gradcheck, causal/none/padding x MHA/GQA/MQA x self/cross") {
  // C = 16, H = 4 (head dim 4: with D = 2 the output depends on a query only through the ratio of
  // its two features, too weakly for finite differences); cross + causal is a prefix
  // continuation (query i sees j <= i+2)
  LinearGcStats st;
  uint64_t seed = 300;
  for (const std::string mask : {"causal", "none", "padding"})
    for (int Hkv : {4, 2, 1})
      for (bool self_attn : {true, false}) {
        GcConfig c;
        c.label = fmt::format("linear {} {} {}", mask, heads_label(4, Hkv), self_attn ? "self" : "cross");
        c.B = 2;
        c.Tq = self_attn ? 4 : 3;
        c.Tk = self_attn ? 4 : 5;
        c.C = 16;
        c.H = 4;
        c.Hkv = Hkv;
        c.causal = mask == "causal";
        c.self_attn = self_attn;
        if (mask == "padding") c.pads = {{1}, {c.Tk - 2, c.Tk - 1}};
        linear_gradcheck(c, seed++, st);
      }
  report(st, "18 configurations");
}

TEST_CASE("linear: gradcheck with causal + padding, empty rows, no bias") {
  std::vector<GcConfig> cs;
  // causal + padding; in row 1 query 0 sees only the padded key 0
  cs.push_back({"linear causal+padding self GQA", 2, 4, 4, 16, 4, 2, true, true, {{2}, {0, 3}}});
  // causal with Tq > Tk: queries 0, 1 see no key at all
  cs.push_back({"linear causal Tq>Tk (empty rows) cross MHA", 2, 4, 2, 16, 4, 4, true, false, {}});
  // every key of batch row 1 padded
  cs.push_back({"linear all keys padded in row 1 cross MQA", 2, 3, 4, 16, 4, 1, false, false, {{0}, {0, 1, 2, 3}}});
  GcConfig nob{"linear no bias causal cross MHA", 2, 3, 4, 16, 4, 4, true, false, {}};
  nob.bias = false;
  cs.push_back(nob);
  // a longer sequence
  cs.push_back({"linear causal self GQA T=7", 1, 7, 7, 16, 4, 2, true, true, {}});
  LinearGcStats st;
  uint64_t seed = 400;
  for (const auto& c : cs) linear_gradcheck(c, seed++, st);
  report(st, "special configurations");
}

// ---------------------------------------------------------------------------------------------
// b) recurrent form and causality
// ---------------------------------------------------------------------------------------------

// Both forms add the keys to (S, z) in the same order with the same function and read each
// query with the same function, so they agree to the last bit whenever the projections do;
// the only possible difference is the GEMM of the projections over B·T rows vs B·n rows (a BLAS
// may block differently), i.e. a few float32 ulps of the O(1) outputs. The tolerance 1e-5 on
// outputs of size ~1 allows that and is far below what a wrong state update gives (O(0.1)).
TEST_CASE("linear: recurrent (cached) form equals the parallel causal form") {
  double worst = 0.0;
  for (int Hkv : {4, 2, 1}) {
    INFO("n_kv_heads = " << Hkv);
    const AttentionSpec s = linear_spec(16, 4, Hkv, true);
    const double d = cache_vs_full(s, 2, 11, 500 + Hkv);
    MESSAGE(fmt::format("linear cache_vs_full {}: max |full - cached| = {:.3e}", heads_label(4, Hkv), d));
    CHECK(d < 1e-5);
    worst = std::max(worst, d);
  }
  // the state does not grow with the sequence: a cache of capacity 1 serves any length
  ParamStore store;
  Rng rng(9);
  auto attn = make_attention(linear_spec(8, 2, 1, true), store, rng);
  attn->cache_reset(1, 1);
  Rng xr(10);
  std::vector<float> x = random_normal(8, xr), out(8);
  for (int t = 0; t < 20; t++) attn->forward_cached(out.data(), x.data(), 1, 1);
  CHECK(attn->cache_len() == 20);
  for (float v : out) CHECK(std::isfinite(v));
  // and a wrong batch size is a user error
  CHECK_THROWS_AS(attn->forward_cached(out.data(), x.data(), 2, 1), UserError);
}

TEST_CASE("linear: causal self-attention ignores the future, exactly") {
  for (int Hkv : {2, 1}) {
    INFO("n_kv_heads = " << Hkv);
    CHECK(causal_outputs_ignore_future(linear_spec(8, 2, Hkv, true), 6, 600 + Hkv));
  }
  // without the causal mask every output sees every position
  CHECK_FALSE(causal_outputs_ignore_future(linear_spec(8, 2, 2, false), 6, 610));
}

TEST_CASE("linear: causal prefix continuation (Tq < Tk) aligns the mask to the end") {
  const int B = 1, Tq = 3, Tk = 6, C = 8;
  Harness h(linear_spec(C, 4, 2, true), 11);
  Rng rng(12);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  std::vector<float> base(x_q.size()), out(x_q.size());
  h.attn->forward(base.data(), x_q.data(), x_kv.data(), B, Tq, Tk, {}, false, nullptr);
  for (int j = 0; j < Tk; j++) {
    INFO("changed key j = " << j);
    std::vector<float> x2 = x_kv;
    for (int c = 0; c < C; c++) x2[size_t(j) * C + c] += 1.0f;
    h.attn->forward(out.data(), x_q.data(), x2.data(), B, Tq, Tk, {}, false, nullptr);
    for (int i = 0; i < Tq; i++) {
      INFO("query i = " << i);
      if (j > i + (Tk - Tq)) CHECK(rows_equal(&out[size_t(i) * C], &base[size_t(i) * C], C));
      else CHECK(row_diff(&out[size_t(i) * C], &base[size_t(i) * C], C) > 1e-5);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// c) implied weights, key padding, empty rows
// ---------------------------------------------------------------------------------------------

TEST_CASE("linear: the implied weights reproduce the output, out = (A V) W_oᵀ + b_o") {
  const int B = 2, Tq = 5, Tk = 7, C = 16, H = 4, Hkv = 2, D = C / H;
  const std::vector<std::vector<int>> pads = {{}, {1, 6}};
  const std::vector<unsigned char> keep = keep_mask(B, Tk, pads);
  AttnMask mask;
  mask.key_keep = keep.data();
  for (bool causal : {false, true}) {
    INFO("causal = " << causal);
    Harness h(linear_spec(C, H, Hkv, causal), 21);
    Rng rng(22);
    const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
    const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
    std::vector<float> out(x_q.size());
    h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    CHECK(h.attn->attention_weights().empty());  // not asked for
    h.attn->keep_weights(true);
    h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    const std::vector<float> w = h.attn->attention_weights();
    REQUIRE(w.size() == size_t(B) * H * Tq * Tk);

    // V = x_kv W_vᵀ + b_v, O_h = A_h V_g, out = O W_oᵀ + b_o, all in double
    const Param& wv = h.param("w_v");
    const Param& bv = h.param("b_v");
    const Param& wo = h.param("w_o");
    const Param& bo = h.param("b_o");
    const int Ckv = Hkv * D;
    std::vector<double> V(size_t(B) * Tk * Ckv), O(size_t(B) * Tq * C, 0.0);
    for (int r = 0; r < B * Tk; r++)
      for (int o = 0; o < Ckv; o++) {
        double s = bv.w[o];
        for (int c = 0; c < C; c++) s += double(x_kv[size_t(r) * C + c]) * wv.w[size_t(o) * C + c];
        V[size_t(r) * Ckv + o] = s;
      }
    double max_diff = 0.0, max_out = 0.0;
    for (int b = 0; b < B; b++)
      for (int hd = 0; hd < H; hd++) {
        const int g = hd / (H / Hkv);
        for (int i = 0; i < Tq; i++) {
          double rowsum = 0.0;
          for (int j = 0; j < Tk; j++) {
            const float a = w[((size_t(b) * H + hd) * Tq + i) * Tk + j];
            const bool visible = (!causal || j <= i + (Tk - Tq)) && keep[size_t(b) * Tk + j];
            if (!visible) CHECK(a == 0.0f);
            else CHECK(a > 0.0f);
            rowsum += a;
            for (int e = 0; e < D; e++)
              O[(size_t(b) * Tq + i) * C + hd * D + e] += a * V[(size_t(b) * Tk + j) * Ckv + g * D + e];
          }
          CHECK(rowsum == doctest::Approx(1.0).epsilon(1e-5));  // 1 − ε/d_i, up to rounding
        }
      }
    for (int r = 0; r < B * Tq; r++)
      for (int o = 0; o < C; o++) {
        double s = bo.w[o];
        for (int c = 0; c < C; c++) s += O[size_t(r) * C + c] * wo.w[size_t(o) * C + c];
        max_diff = std::max(max_diff, std::fabs(s - out[size_t(r) * C + o]));
        max_out = std::max(max_out, std::fabs(s));
      }
    MESSAGE(fmt::format("linear implied weights (causal={}): max |A·V path − out| = {:.3e} (max |out| {:.2f})",
                        causal, max_diff, max_out));
    CHECK(max_diff < 1e-5 * std::max(1.0, max_out));
    h.attn->keep_weights(false);
  }
}

TEST_CASE("linear: padded keys do not influence the output or receive gradient") {
  for (bool causal : {false, true}) {
    INFO("causal = " << causal);
    check_padded_keys_ignored(linear_spec(8, 4, 2, causal), 3, 4, 6, {{}, {3, 4, 5}, {0, 2}}, 31);
  }
}

TEST_CASE("linear: a query with no visible key outputs exactly b_o and sends no gradient") {
  // causal with Tq > Tk: queries 0 and 1 see no key; batch row 1 has every key padded
  const int B = 2, Tq = 4, Tk = 2, C = 8;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{}, {0, 1}});
  AttnMask mask;
  mask.key_keep = keep.data();
  Harness h(linear_spec(C, 4, 4, true), 41);
  Rng rng(42);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  std::vector<float> out(x_q.size());
  h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
  const std::vector<float>& b_o = h.param("b_o").w;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      INFO("b = " << b << ", i = " << i);
      const float* o = &out[(size_t(b) * Tq + i) * C];
      const bool empty = b == 1 || i < 2;
      if (empty) CHECK(rows_equal(o, b_o.data(), C));
      else CHECK(row_diff(o, b_o.data(), C) > 1e-5);
    }
  h.store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  const std::vector<float> U = random_normal(out.size(), rng);
  h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
  for (float v : dx_q) REQUIRE(std::isfinite(v));
  for (float v : dx_kv) REQUIRE(std::isfinite(v));
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      INFO("b = " << b << ", i = " << i);
      const float* g = &dx_q[(size_t(b) * Tq + i) * C];
      if (b == 1 || i < 2) CHECK(std::all_of(g, g + C, [](float v) { return v == 0.0f; }));
    }
}

// ---------------------------------------------------------------------------------------------
// d) determinism, the += contract, options
// ---------------------------------------------------------------------------------------------

TEST_CASE("linear: forward and backward are bitwise the same for 1 and 2 threads, and backward adds") {
  // large enough for the (b, head) loops to run in parallel (see kParallelWork in linear.cpp)
  const int B = 2, Tq = 40, Tk = 48, C = 64;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{2, 17}, {}});
  AttnMask mask;
  mask.key_keep = keep.data();
  Rng rng(52);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  const std::vector<float> U = random_normal(x_q.size(), rng);
  struct Result {
    std::vector<float> out, dq, dkv;
    std::vector<std::vector<float>> grads;
  };
  auto run = [&](int threads, float fill_q, float fill_kv) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    Harness h(linear_spec(C, 4, 2, true), 51);
    Result r;
    r.out.resize(x_q.size());
    h.attn->forward(r.out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    h.store.zero_grad();
    r.dq.assign(x_q.size(), fill_q);
    r.dkv.assign(x_kv.size(), fill_kv);
    h.attn->backward(r.dq.data(), r.dkv.data(), U.data());
    for (const Param& p : h.store.all()) r.grads.push_back(p.g);
    omp_set_num_threads(prev);
    return r;
  };
  const Result a = run(1, 0.0f, 0.0f), b = run(2, 0.0f, 0.0f), c = run(2, 1.0f, -2.0f);
  CHECK(a.out == b.out);
  CHECK(a.dq == b.dq);
  CHECK(a.dkv == b.dkv);
  CHECK(a.grads == b.grads);
  for (size_t i = 0; i < a.dq.size(); i++) CHECK(c.dq[i] == doctest::Approx(1.0f + a.dq[i]).epsilon(1e-5));
  for (size_t i = 0; i < a.dkv.size(); i++) CHECK(c.dkv[i] == doctest::Approx(-2.0f + a.dkv[i]).epsilon(1e-5));
}

TEST_CASE("linear: parameters as scaled_dot_product, and window, rope, alibi, dropout and scale are rejected") {
  auto build = [](AttentionSpec s) {
    ParamStore store;
    Rng rng(1);
    make_attention(s, store, rng);
    return store.all().size();
  };
  AttentionSpec s = linear_spec(12, 6, 2, true);
  s.name = "blocks.1.attn";
  {
    ParamStore store;
    Rng rng(3);
    make_attention(s, store, rng);
    const std::vector<std::pair<std::string, std::vector<int>>> expect = {
        {"blocks.1.attn.w_q", {12, 12}}, {"blocks.1.attn.w_k", {4, 12}}, {"blocks.1.attn.w_v", {4, 12}},
        {"blocks.1.attn.w_o", {12, 12}}, {"blocks.1.attn.b_q", {12}},    {"blocks.1.attn.b_k", {4}},
        {"blocks.1.attn.b_v", {4}},      {"blocks.1.attn.b_o", {12}}};
    REQUIRE(store.all().size() == expect.size());
    for (const auto& [name, shape] : expect) {
      INFO(name);
      REQUIRE(store.find(name) != nullptr);
      CHECK(store.find(name)->shape == shape);
    }
    // the same initial values as scaled_dot_product from the same seed
    ParamStore sdp_store;
    Rng rng2(3);
    AttentionSpec sdp = s;
    sdp.type = "scaled_dot_product";
    make_attention(sdp, sdp_store, rng2);
    for (const auto& [name, shape] : expect) CHECK(store.find(name)->w == sdp_store.find(name)->w);
  }
  s.bias = false;
  CHECK(build(s) == 4);
  s.bias = true;
  CHECK(build(s) == 8);

  auto rejected = [&](AttentionSpec bad, const std::string& option) {
    INFO("option " << option);
    std::string msg;
    try {
      build(bad);
    } catch (const UserError& e) {
      msg = e.what();
    }
    CHECK_MESSAGE(msg.find(option) != std::string::npos, "expected a UserError naming " << option << ", got '"
                                                                                       << msg << "'");
  };
  AttentionSpec w = s;
  w.window = 3;
  rejected(w, "window");
  AttentionSpec alibi = s;
  alibi.positions = AttnPositions::alibi;
  rejected(alibi, "positions");
  AttentionSpec rope = s;
  rope.positions = AttnPositions::rope;
  rejected(rope, "positions");
  AttentionSpec drop = s;
  drop.dropout = 0.1f;
  rejected(drop, "dropout");
  AttentionSpec sc = s;
  sc.scale = "none";
  rejected(sc, "scale");
}
