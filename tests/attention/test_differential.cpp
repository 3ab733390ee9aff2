// Tests of differential attention (src/attention/differential.cpp, Ye et al. 2024).
// The PyTorch fixtures (scripts/make_differential_fixtures.py, cases differential_*) are checked
// by the generic fixture test in test_attention.cpp. Here:
//   a) finite-difference gradient checks of every input and parameter (λ vectors and norm_w
//      included), over causal / none / key padding × MHA / GQA × self / cross, and the options
//      (window, rope, dropout, no bias, numeric scale, deeper layer, empty rows, no headwise norm);
//   b) λ_init per layer, and the maps against a direct computation: attention_weights() is
//      A₁ − λA₂, and with λ forced to 0 it is softmax(s·Q₁K₁ᵀ), rows summing to 1;
//   c) incremental decoding equals the full forward; causality; key padding; empty rows;
//   d) determinism across thread counts, backward accumulation, one dropout mask for both maps;
//   e) configuration errors.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "attention/differential.h"
#include "attention/harness.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "ops/gradcheck.h"

using namespace attnlab;
using namespace attnlab::test;

namespace {

AttentionSpec diff_spec(int C, int H, int Hkv, bool causal) {
  AttentionSpec s = make_spec(C, H, Hkv, causal);
  s.type = "differential";
  return s;
}

GcConfig diff_config(const std::string& label, int B, int Tq, int Tk, int C, int H, int Hkv, bool causal,
                     bool self_attn, std::vector<std::vector<int>> pads = {}) {
  GcConfig c;
  c.label = label;
  c.B = B;
  c.Tq = Tq;
  c.Tk = Tk;
  c.C = C;
  c.H = H;
  c.Hkv = Hkv;
  c.causal = causal;
  c.self_attn = self_attn;
  c.pads = std::move(pads);
  c.type = "differential";
  return c;
}

// The two maps of batch b, head h computed directly from the parameters (double): projections,
// the head's halves (Q₁ = columns h·2d + [0,d), Q₂ = h·2d + [d,2d); K likewise for kv head g),
// scores, the causal / padding mask, softmax. No RoPE or window.
struct DirectMaps {
  std::vector<double> A1, A2;  // [Tq,Tk]
};
DirectMaps direct_maps(Harness& hn, const AttentionSpec& s, const std::vector<float>& x_q,
                       const std::vector<float>& x_kv, const unsigned char* keep, int B, int Tq, int Tk, int b,
                       int h) {
  const int C = s.d_model, H = s.n_heads, Hkv = s.n_kv_heads > 0 ? s.n_kv_heads : H, d = C / (2 * H);
  const int g = h / (H / Hkv);
  const Param &wq = hn.param("w_q"), &bq = hn.param("b_q"), &wk = hn.param("w_k"), &bk = hn.param("b_k");
  auto proj = [&](const float* x, const Param& W, const Param& bias, int row) {
    double acc = bias.w[row];
    for (int c = 0; c < C; c++) acc += double(W.w[size_t(row) * C + c]) * x[c];
    return acc;
  };
  DirectMaps m;
  for (int half = 0; half < 2; half++) {
    std::vector<double> A(size_t(Tq) * Tk, 0.0);
    for (int i = 0; i < Tq; i++) {
      std::vector<double> q(d);
      for (int e = 0; e < d; e++) q[e] = proj(&x_q[(size_t(b) * Tq + i) * C], wq, bq, h * 2 * d + half * d + e);
      std::vector<double> srow(Tk);
      double mx = -1e300;
      bool any = false;
      for (int j = 0; j < Tk; j++) {
        const bool ok = (!s.causal || j <= i + Tk - Tq) && (!keep || keep[size_t(b) * Tk + j]);
        if (!ok) continue;
        double dot = 0.0;
        for (int e = 0; e < d; e++)
          dot += q[e] * proj(&x_kv[(size_t(b) * Tk + j) * C], wk, bk, g * 2 * d + half * d + e);
        srow[j] = dot / std::sqrt(double(d));
        mx = std::max(mx, srow[j]);
        any = true;
      }
      if (!any) continue;
      double sum = 0.0;
      for (int j = 0; j < Tk; j++) {
        const bool ok = (!s.causal || j <= i + Tk - Tq) && (!keep || keep[size_t(b) * Tk + j]);
        if (ok) sum += (A[size_t(i) * Tk + j] = std::exp(srow[j] - mx));
      }
      for (int j = 0; j < Tk; j++) A[size_t(i) * Tk + j] /= sum;
    }
    (half == 0 ? m.A1 : m.A2) = A;
  }
  return m;
}

// Gradcheck of differential attention: run_gradcheck of harness.h (loss L = Σ out ⊙ U, every
// element of every input and parameter, Richardson differences with h = 0.04, weights
// N(0, 0.4²), the 5e-3 max_rel threshold, the zero-gradient rule) on a module built directly
// (GcOptions::make), so that options the spec has no field for (the headwise norm switch) can be
// set, plus three measures the differential map needs. Measured with a correct backward over 144
// random configurations (12 seeds × the 12 mask / head / self-cross layouts of the first test):
//  1. λ is put in [0.2, 0.8], the range of λ_init (GcOptions::after_init redraws the λ vectors
//     until it is). Near λ = 1 the two maps cancel (D = A₁ − A₂ ≈ 0 where they agree) and near
//     λ = 0 a row whose first map is dropped out is D = −λ·Ã₂; the RMSNorm of such small rows of O
//     is so curved that finite differences fail at every step (max_rel up to 1.3 at λ = 0.93,
//     while central differences with h = 1e-3 agree with the analytic gradient).
//  2. The RMSNorm makes the loss more curved than the dot-product family's: with h = 0.04 alone,
//     4 of the 144 configurations measured 1e-2..6e-2 on W_q or W_k, which h = 0.01 measures at
//     6e-4..9e-4. A tensor above kRetryAbove is measured again with h = 0.01 and h = 0.16 and the
//     best step counts (GcOptions::retry_steps): truncation and rounding errors depend on h, a
//     wrong gradient does not (an error of 1% measures ≥ 1e-2 at every step).
//  3. A λ vector's gradient is dλ·e·λ_k, and dλ sums signed terms over all heads and rows, so in
//     some configurations all four are small (largest |g| ~ 1e-2) next to the ~3e-5 absolute
//     noise of a numerical derivative (the float32 loss rounds at ~2e-6, divided by 2h). A tensor
//     whose elements all agree within kNoiseAbsTol (the largest such error measured: 6.3e-5) is
//     accepted (GcOptions::noise_abs_tol); only λ vectors ever needed it (9 of the ~2000 tensors).
// The worst max_rel over the 144 configurations was then 2.2e-3 (threshold 5e-3).
inline constexpr double kRetryAbove = 1e-3;
inline constexpr double kNoiseAbsTol = 2e-4;

double diff_gradcheck(const GcConfig& c, uint64_t seed, bool headwise_norm = true) {
  GcOptions opt;
  opt.make = [headwise_norm](const AttentionSpec& spec, ParamStore& store, Rng& rng) -> std::unique_ptr<Attention> {
    return std::make_unique<DifferentialAttention>(spec, store, rng, headwise_norm);
  };
  // λ in [0.2, 0.8] (see 1. above)
  opt.after_init = [](Attention& a, ParamStore& store, Rng& rng) {
    auto& attn = dynamic_cast<DifferentialAttention&>(a);
    for (int tries = 0; tries < 1000 && !(attn.lambda() >= 0.2f && attn.lambda() <= 0.8f); tries++)
      for (const char* n : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"}) {
        Param* p = store.find("attn." + std::string(n));
        fill_normal(p->w.data(), p->w.size(), rng, kGradcheckWeightStd);
      }
    REQUIRE(attn.lambda() >= 0.2f);
    REQUIRE(attn.lambda() <= 0.8f);
  };
  opt.describe = [](Attention& a) {
    return fmt::format(" (λ {:.3f})", dynamic_cast<DifferentialAttention&>(a).lambda());
  };
  opt.retry_steps = {kGradcheckStep / 4, kGradcheckStep * 4};  // 2. above
  opt.retry_above = kRetryAbove;
  opt.noise_abs_tol = kNoiseAbsTol;  // 3. above
  GcConfig dc = c;
  dc.type = "differential";
  return run_gradcheck(dc, seed, opt);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// a) finite-difference gradient checks
// ---------------------------------------------------------------------------------------------

TEST_CASE("differential: gradcheck, causal/none/padding x MHA/GQA x self/cross") {
  // C = 16, H = 2 differential heads: halves of d = 4; MHA Hkv = 2, GQA Hkv = 1
  double worst = 0.0;
  uint64_t seed = 300;
  for (const char* mask : {"causal", "nomask", "padding"})
    for (int Hkv : {2, 1})
      for (bool self_attn : {true, false}) {
        const std::string m = mask;
        const bool causal = m == "causal";
        const int Tq = self_attn ? 4 : 3, Tk = self_attn ? 4 : 5;
        std::vector<std::vector<int>> pads;
        if (m == "padding") pads = self_attn ? std::vector<std::vector<int>>{{}, {2, 3}}
                                             : std::vector<std::vector<int>>{{1}, {3, 4}};
        const std::string label =
            fmt::format("{} {} {}", m, Hkv == 2 ? "MHA" : "GQA", self_attn ? "self" : "cross");
        const GcConfig c = diff_config(label, 2, Tq, Tk, 16, 2, Hkv, causal, self_attn, pads);
        worst = std::max(worst, diff_gradcheck(c, seed++));
      }
  MESSAGE(fmt::format("differential gradcheck worst max rel error over the 12 configurations: {:.3e}", worst));
}

TEST_CASE("differential: gradcheck with window, rope, dropout, no bias, scale, depth, empty rows") {
  std::vector<GcConfig> cs;
  GcConfig win = diff_config("window 2 causal self GQA", 2, 5, 5, 16, 2, 1, true, true);
  win.window = 2;
  cs.push_back(win);
  GcConfig winb = diff_config("window 2 nomask self MHA + padding", 2, 5, 5, 16, 2, 2, false, true, {{}, {0, 4}});
  winb.window = 2;
  cs.push_back(winb);
  GcConfig rope = diff_config("rope causal self GQA", 2, 4, 4, 16, 2, 1, true, true);
  rope.positions = "rope";
  cs.push_back(rope);
  GcConfig drop = diff_config("dropout 0.3 causal self MHA", 2, 4, 4, 16, 2, 2, true, true);
  drop.dropout = 0.3f;
  cs.push_back(drop);
  GcConfig nob = diff_config("no bias causal cross MHA, layer 4", 2, 3, 4, 16, 2, 2, true, false);
  nob.bias = false;
  nob.layer_index = 4;
  cs.push_back(nob);
  GcConfig sc = diff_config("scale 0.3 nomask cross GQA", 2, 3, 4, 16, 2, 1, false, false);
  sc.scale = "0.3";
  cs.push_back(sc);
  // halves of width 2 (d_model = 4·n_heads, as `attnlab gradcheck` uses)
  cs.push_back(diff_config("d 2: C 8 H 2 causal self MQA", 2, 5, 5, 8, 2, 1, true, true));
  cs.push_back(diff_config("d 2: C 16 H 4 nomask cross GQA", 2, 4, 5, 16, 4, 2, false, false));
  // causal with Tq > Tk: queries 0, 1 see no key; batch row 1 has every key padded
  cs.push_back(diff_config("empty rows causal cross MHA", 2, 4, 2, 16, 2, 2, true, false, {{}, {0, 1}}));
  double worst = 0.0;
  uint64_t seed = 400;
  for (const auto& c : cs) worst = std::max(worst, diff_gradcheck(c, seed++));
  MESSAGE(fmt::format("differential gradcheck worst max rel error over the option configurations: {:.3e}", worst));
}

TEST_CASE("differential: gradcheck without the headwise norm (ablation E7)") {
  double worst = 0.0;
  const GcConfig a = diff_config("no norm causal self GQA", 2, 4, 4, 16, 2, 1, true, true);
  const GcConfig b = diff_config("no norm nomask cross MHA", 2, 3, 5, 16, 2, 2, false, false);
  worst = std::max(worst, diff_gradcheck(a, 500, /*headwise_norm=*/false));
  worst = std::max(worst, diff_gradcheck(b, 501, /*headwise_norm=*/false));
  MESSAGE(fmt::format("differential (no norm) gradcheck worst max rel error: {:.3e}", worst));
}

// ---------------------------------------------------------------------------------------------
// b) λ and the maps
// ---------------------------------------------------------------------------------------------

TEST_CASE("differential: lambda_init = 0.8 - 0.6 exp(-0.3 l), l = layer_index from 0") {
  CHECK(DifferentialAttention::lambda_init_for(0) == doctest::Approx(0.2).epsilon(1e-7));
  CHECK(DifferentialAttention::lambda_init_for(1) == doctest::Approx(0.35550907).epsilon(1e-6));
  CHECK(DifferentialAttention::lambda_init_for(2) == doctest::Approx(0.47071302).epsilon(1e-6));
  for (int l : {0, 1, 2, 7}) {
    INFO("layer " << l);
    ParamStore store;
    Rng rng(1);
    AttentionSpec s = diff_spec(16, 2, 0, true);
    s.layer_index = l;
    auto a = make_attention(s, store, rng);
    auto* da = dynamic_cast<DifferentialAttention*>(a.get());
    REQUIRE(da != nullptr);
    CHECK(da->lambda_init() == DifferentialAttention::lambda_init_for(l));
    // at initialisation λ ≈ λ_init: the λ vectors are N(0, 0.1²), so λ_q·λ_k ≈ 0
    CHECK(std::fabs(da->lambda() - da->lambda_init()) < 0.1);
  }
}

TEST_CASE("differential: attention_weights() is A1 - lambda A2, and with lambda = 0 it is softmax(s Q1 K1^T)") {
  const int B = 2, Tq = 4, Tk = 6, C = 16, H = 2;
  for (bool causal : {true, false}) {
    INFO("causal = " << causal);
    AttentionSpec s = diff_spec(C, H, 1, causal);
    s.layer_index = 2;
    Harness hn(s, 61);
    Rng rng(62);
    const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
    const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
    const std::vector<unsigned char> keep = keep_mask(B, Tk, {{}, {1, 5}});
    AttnMask mask;
    mask.key_keep = keep.data();
    std::vector<float> out(x_q.size());
    auto* da = dynamic_cast<DifferentialAttention*>(hn.attn.get());
    REQUIRE(da != nullptr);
    hn.attn->keep_weights(true);

    // general λ (the Harness draws the λ vectors N(0, 0.5²))
    hn.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    std::vector<float> w = hn.attn->attention_weights();
    REQUIRE(w.size() == size_t(B) * H * Tq * Tk);
    const double lam = da->lambda();
    CHECK(std::fabs(lam - da->lambda_init()) > 0.01);  // the test is not at the trivial point
    double err = 0.0;
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        const DirectMaps m = direct_maps(hn, s, x_q, x_kv, keep.data(), B, Tq, Tk, b, h);
        for (int i = 0; i < Tq * Tk; i++)
          err = std::max(err, std::fabs(w[(size_t(b) * H + h) * Tq * Tk + i] - (m.A1[i] - lam * m.A2[i])));
      }
    CHECK(err < 1e-5);

    // λ forced to 0: λ_q2 = λ_k2 = 0 gives exp(0) = 1, and λ_q1·λ_k1 = ln(1 − λ_init) makes
    // exp(λ_q1·λ_k1) − 1 = −λ_init
    for (const char* n : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
      std::fill(hn.param(n).w.begin(), hn.param(n).w.end(), 0.0f);
    hn.param("lambda_q1").w[0] = std::log(1.0f - da->lambda_init());
    hn.param("lambda_k1").w[0] = 1.0f;
    CHECK(std::fabs(da->lambda()) < 1e-6);
    hn.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    w = hn.attn->attention_weights();
    err = 0.0;
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H; h++) {
        const DirectMaps m = direct_maps(hn, s, x_q, x_kv, keep.data(), B, Tq, Tk, b, h);
        for (int i = 0; i < Tq; i++) {
          double sum = 0.0;
          for (int j = 0; j < Tk; j++) {
            const float p = w[((size_t(b) * H + h) * Tq + i) * Tk + j];
            err = std::max(err, std::fabs(p - m.A1[size_t(i) * Tk + j]));
            const bool masked = (causal && j > i + Tk - Tq) || !keep[size_t(b) * Tk + j];
            if (masked) CHECK(std::fabs(p) < 1e-7);
            else CHECK(p > 0.0f);
            sum += p;
          }
          CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        }
      }
    CHECK(err < 1e-5);
  }
}

// ---------------------------------------------------------------------------------------------
// c) cache, causality, padding, empty rows
// ---------------------------------------------------------------------------------------------

TEST_CASE("differential: incremental decoding equals the full forward") {
  struct Case {
    const char* label;
    int Hkv;
    int window;
    const char* positions;
  };
  double worst = 0.0;
  uint64_t seed = 70;
  for (const Case& c : {Case{"MHA", 2, 0, "none"}, Case{"GQA", 1, 0, "none"}, Case{"MHA rope", 2, 0, "rope"},
                        Case{"GQA window 3 rope", 1, 3, "rope"}}) {
    INFO(c.label);
    AttentionSpec s = diff_spec(16, 2, c.Hkv, true);
    s.window = c.window;
    s.positions = attn_positions(c.positions);
    s.layer_index = 1;
    s.max_len = 9;
    const double diff = cache_vs_full(s, 2, 9, seed++);
    MESSAGE(fmt::format("differential cache vs full, {}: max |diff| {:.3e}", c.label, diff));
    CHECK(diff < 2e-5);
    worst = std::max(worst, diff);
  }
  // errors: no reset, batch mismatch, overflow
  ParamStore store;
  Rng rng(1);
  auto a = make_attention(diff_spec(16, 2, 2, true), store, rng);
  std::vector<float> x(2 * 3 * 16, 0.5f), out(x.size());
  CHECK_THROWS_AS(a->forward_cached(out.data(), x.data(), 2, 1), UserError);
  a->cache_reset(2, 2);
  CHECK_THROWS_AS(a->forward_cached(out.data(), x.data(), 1, 1), UserError);
  CHECK_THROWS_AS(a->forward_cached(out.data(), x.data(), 2, 3), UserError);
  CHECK_NOTHROW(a->forward_cached(out.data(), x.data(), 2, 2));
  CHECK(a->cache_len() == 2);
}

TEST_CASE("differential: causal self-attention ignores the future, exactly") {
  for (const char* pos : {"none", "rope"}) {
    INFO("positions " << pos);
    AttentionSpec s = diff_spec(16, 2, 1, true);
    s.positions = attn_positions(pos);
    s.max_len = 6;
    CHECK(causal_outputs_ignore_future(s, 6, 81));
  }
}

TEST_CASE("differential: padded keys do not influence the output or receive gradient") {
  check_padded_keys_ignored(diff_spec(16, 2, 1, false), 3, 4, 6, {{}, {3, 4, 5}, {0, 2}}, 91);
}

TEST_CASE("differential: a query with no visible key outputs exactly b_o and passes no gradient") {
  const int B = 2, Tq = 4, Tk = 2, C = 16;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{}, {0, 1}});
  AttnMask mask;
  mask.key_keep = keep.data();
  Harness h(diff_spec(C, 2, 2, true), 101);
  Rng rng(102);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  std::vector<float> out(x_q.size());
  h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
  const std::vector<float>& b_o = h.param("b_o").w;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < Tq; i++) {
      INFO("b = " << b << ", i = " << i);
      const float* o = &out[(size_t(b) * Tq + i) * C];
      for (int c = 0; c < C; c++) CHECK(std::isfinite(o[c]));
      if (b == 1 || i < 2) CHECK(rows_equal(o, b_o.data(), C));
      else CHECK(row_diff(o, b_o.data(), C) > 1e-5);
    }
  h.store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  const std::vector<float> U = random_normal(out.size(), rng);
  h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
  for (const Param& p : h.store.all())
    for (float v : p.g) REQUIRE(std::isfinite(v));
  for (int i = 0; i < Tq; i++) {
    const float* g0 = &dx_q[size_t(i) * C];
    if (i < 2) CHECK(std::all_of(g0, g0 + C, [](float v) { return v == 0.0f; }));
    const float* g1 = &dx_q[(size_t(1) * Tq + i) * C];
    CHECK(std::all_of(g1, g1 + C, [](float v) { return v == 0.0f; }));
  }
}

// ---------------------------------------------------------------------------------------------
// d) parameters, determinism, accumulation
// ---------------------------------------------------------------------------------------------

TEST_CASE("differential: parameters, shapes and initialisation") {
  ParamStore store;
  Rng rng(3);
  AttentionSpec s = diff_spec(24, 3, 1, true);  // d = 4, K/V width 8
  s.name = "blocks.1.attn";
  make_attention(s, store, rng);
  const std::vector<std::pair<std::string, std::vector<int>>> expect = {
      {"w_q", {24, 24}}, {"w_k", {8, 24}},      {"w_v", {8, 24}},      {"w_o", {24, 24}},
      {"b_q", {24}},     {"b_k", {8}},          {"b_v", {8}},          {"b_o", {24}},
      {"lambda_q1", {4}}, {"lambda_k1", {4}},   {"lambda_q2", {4}},    {"lambda_k2", {4}},
      {"norm_w", {8}}};
  REQUIRE(store.all().size() == expect.size());
  for (const auto& [name, shape] : expect) {
    INFO(name);
    Param* p = store.find("blocks.1.attn." + name);
    REQUIRE(p != nullptr);
    CHECK(p->shape == shape);
  }
  for (float v : store.find("blocks.1.attn.norm_w")->w) CHECK(v == 1.0f);
  for (const char* n : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"}) {
    const auto& w = store.find(std::string("blocks.1.attn.") + n)->w;
    CHECK(std::any_of(w.begin(), w.end(), [](float v) { return v != 0.0f; }));
    CHECK(std::all_of(w.begin(), w.end(), [](float v) { return std::fabs(v) < 0.6f; }));  // N(0, 0.1²)
  }
  // without the headwise norm there is no norm_w
  ParamStore store2;
  DifferentialAttention plain(s, store2, rng, false);
  CHECK(store2.find("blocks.1.attn.norm_w") == nullptr);
  CHECK(store2.all().size() == expect.size() - 1);
  CHECK_FALSE(plain.headwise_norm());
}

// Dropout draws one mask for D = A₁ − λA₂, i.e. the same mask for both maps (docs/attention.md). Made
// visible by two identical maps and λ = 1: D = 0, so with a shared mask D̃ = 0 and the output is
// the output bias alone, in training as in evaluation; separate masks per map would keep A₁ where
// they drop A₂ and give outputs of order one.
TEST_CASE("differential: dropout drops a position from both maps at once") {
  const int B = 2, T = 6, C = 16, H = 2, d = C / (2 * H);
  AttentionSpec s = diff_spec(C, H, H, true);
  s.dropout = 0.5f;
  Harness hn(s, 21);
  // Q₂ = Q₁ and K₂ = K₁: copy the first half's rows of W_q, W_k (and biases) into the second half
  for (const char* w : {"w_q", "w_k"})
    for (int h = 0; h < H; h++)
      for (int e = 0; e < d; e++)
        for (int c = 0; c < C; c++)
          hn.param(w).w[size_t(h * 2 * d + d + e) * C + c] = hn.param(w).w[size_t(h * 2 * d + e) * C + c];
  for (const char* b : {"b_q", "b_k"})
    for (int h = 0; h < H; h++)
      for (int e = 0; e < d; e++) hn.param(b).w[h * 2 * d + d + e] = hn.param(b).w[h * 2 * d + e];
  // λ = exp(λ_q1·λ_k1) − exp(0) + λ_init = 1 with λ_q1·λ_k1 = ln(2 − λ_init)
  auto* da = dynamic_cast<DifferentialAttention*>(hn.attn.get());
  REQUIRE(da != nullptr);
  for (const char* n : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"})
    std::fill(hn.param(n).w.begin(), hn.param(n).w.end(), 0.0f);
  hn.param("lambda_q1").w[0] = std::log(2.0f - da->lambda_init());
  hn.param("lambda_k1").w[0] = 1.0f;
  Rng rng(22);
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
  std::vector<float> out(x.size());
  Rng drop(23);
  hn.attn->forward(out.data(), x.data(), x.data(), B, T, T, AttnMask{}, true, &drop);
  CHECK(std::fabs(da->lambda() - 1.0f) < 1e-6f);
  const std::vector<float>& b_o = hn.param("b_o").w;
  double err = 0.0;
  for (size_t i = 0; i < out.size(); i++) err = std::max(err, double(std::fabs(out[i] - b_o[i % C])));
  CHECK(err < 1e-3);  // separate masks: about 1
}

TEST_CASE("differential: bitwise deterministic across thread counts, and backward adds") {
  const int B = 2, T = 5, C = 16;
  AttentionSpec s = diff_spec(C, 2, 1, true);
  s.dropout = 0.2f;
  s.positions = AttnPositions::rope;
  s.max_len = T;
  auto run = [&](int threads, int repeats) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    Harness h(s, 111);
    Rng rng(112);
    const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
    const std::vector<float> U = random_normal(x.size(), rng);
    std::vector<float> out(x.size()), dx(x.size(), 0.0f);
    Rng drop(7);
    h.attn->forward(out.data(), x.data(), x.data(), B, T, T, AttnMask{}, true, &drop);
    h.store.zero_grad();
    for (int r = 0; r < repeats; r++) h.attn->backward(dx.data(), dx.data(), U.data());
    omp_set_num_threads(prev);
    std::vector<float> all = out;
    all.insert(all.end(), dx.begin(), dx.end());
    for (const Param& p : h.store.all()) all.insert(all.end(), p.g.begin(), p.g.end());
    return all;
  };
  const std::vector<float> one = run(1, 1), two = run(2, 1);
  CHECK(one == two);
  // a second backward adds the same amounts again
  const std::vector<float> twice = run(1, 2);
  const size_t n_out = size_t(B) * T * C;
  for (size_t i = n_out; i < one.size(); i++)
    CHECK(twice[i] == doctest::Approx(2.0 * double(one[i])).epsilon(1e-5).scale(1e-6));
}

// ---------------------------------------------------------------------------------------------
// e) configuration errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("differential: configuration errors are UserErrors") {
  const auto message_of = construction_error;
  AttentionSpec s = diff_spec(16, 2, 0, true);
  CHECK(message_of(s).empty());
  SUBCASE("d_model must be divisible by 2 n_heads") {
    s.d_model = 12;
    s.n_heads = 4;  // 12 % 4 == 0, but the halves would be 1.5 wide
    const std::string m = message_of(s);
    CHECK(m.find("n_heads") != std::string::npos);
    CHECK(m.find("2·n_heads") != std::string::npos);
  }
  SUBCASE("rope needs even halves") {
    s.d_model = 24;
    s.n_heads = 4;  // d = 3
    s.positions = AttnPositions::rope;
    CHECK(message_of(s).find("positions") != std::string::npos);
    s.d_model = 32;  // d = 4
    CHECK(message_of(s).empty());
  }
  SUBCASE("alibi is not supported") {
    s.positions = AttnPositions::alibi;
    CHECK(message_of(s).find("alibi") != std::string::npos);
  }
  SUBCASE("n_kv_heads must divide n_heads") {
    s.d_model = 24;
    s.n_heads = 3;
    s.n_kv_heads = 2;
    CHECK_FALSE(message_of(s).empty());
    s.n_kv_heads = 3;
    CHECK(message_of(s).empty());
  }
}
