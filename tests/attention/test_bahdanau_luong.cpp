// Tests of the additive (bahdanau) and multiplicative (luong: dot | general | concat) attention
// modules (src/attention/bahdanau.cpp, luong.cpp). Their PyTorch fixtures (bahdanau_*, luong_*,
// written by scripts/make_additive_fixtures.py) are checked by the generic fixture test of
// test_attention.cpp. Here:
//   a) finite-difference gradient checks of every input and parameter, causal / none / key
//      padding × MHA / GQA × self / cross, plus window, ALiBi, dropout, no bias, empty rows;
//   b) the KV cache against the full forward; causality; key padding;
//   c) bahdanau with v = 0 gives exactly uniform weights (and its initial state); at v = 0 (bahdanau
//      and luong concat) W_q, W_k, their biases and the score's maps get exactly zero gradient;
//   d) luong dot = scaled_dot_product with scale none; luong concat = bahdanau (w_c = [u_q | u_k]);
//   e) parameters, initialisation, determinism, configuration errors.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
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

struct Variant {
  std::string label, type, score;
};
const std::vector<Variant> kVariants = {
    {"bahdanau", "bahdanau", "general"},
    {"luong dot", "luong", "dot"},
    {"luong general", "luong", "general"},
    {"luong concat", "luong", "concat"},
};

AttentionSpec variant_spec(const Variant& v, int C, int H, int Hkv, bool causal) {
  AttentionSpec s = make_spec(C, H, Hkv, causal);
  s.type = v.type;
  s.score = attn_score(v.score);
  return s;
}

GcConfig gc(const Variant& v, std::string label, int B, int Tq, int Tk, int C, int H, int Hkv, bool causal,
            bool self_attn, std::vector<std::vector<int>> pads = {}) {
  GcConfig c;
  c.label = v.label + " " + label;
  c.B = B;
  c.Tq = Tq;
  c.Tk = Tk;
  c.C = C;
  c.H = H;
  c.Hkv = Hkv;
  c.causal = causal;
  c.self_attn = self_attn;
  c.pads = std::move(pads);
  c.type = v.type;
  c.score = v.score;
  return c;
}

// The tests run on one OpenMP thread (except the determinism test): at these tiny shapes every
// parallel region costs more than its work, and on a loaded 2-core machine two threads made the
// ~200k forwards of the gradient checks 40× slower.
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

// The additive scores (bahdanau, luong concat) run run_gradcheck (harness.h) with two options:
// the same loss L = Σ out ⊙ U, the same threshold and error metric (gradcheck.h's: relative,
// floored at 5% of the tensor's largest gradient).
//
// GcOptions::param_std — standard deviations of the additive score's parameters. The harness
// redraws every parameter N(0, 0.4²); for the additive score that leaves it small
// (|v_hᵀ tanh(·)| ~ 0.4·√D·0.6 ≈ 0.3 at D = 2), the softmax nearly uniform, and dL/dx_q of
// order 1e-4..1e-3, where the finite differences' rounding noise (~1e-5) gives relative errors
// of 1..2e-2 although the gradient is right (the PyTorch fixtures agree to 1e-6). With v of std
// 2 and the maps of std 0.8 the scores spread over O(1) like the dot scores, and the gradients
// are O(1e-2..1). (The drawn values are rescaled by std / 0.4.)
//
// GcOptions::richardson_levels = 2, step = kRombergStep — finite differences one Richardson
// level further than the harness: with central differences n(h) = g + a·h² + b·h⁴ + O(h⁶),
// Romberg's second level
//     n_R2 = (64·n(h/4) − 20·n(h/2) + n(h)) / 45 = g + O(h⁶)
// cancels the h⁴ term that the harness's (4·n(h/2) − n(h))/3 leaves. The additive score is
// strongly curved (tanh of O(1) arguments, times v of std 2: dL/dw_k ~ 0.5 with L'' ~ 60 along
// one weight), so that h⁴ term reached 0.5..1% in a few of 30 seeds. The smallest step is 2e-2,
// as the harness's, so the rounding noise is the same. Measured over 41 seeds × the 20
// additive configurations of each score (820 checks of bahdanau and 820 of concat): median
// worst max_rel 6.5e-4, 99th percentile 3e-3, 2 checks above 5e-3 (6.5e-3 on a db_k, 5.4e-3 on
// a dv, both tensors of size ~5e-3 whose error, 5..8e-5 absolute, is the forward's rounding
// noise); the seeds below give 2.4e-3 at worst. A gradient off by 1% measures ~1e-2.
constexpr float kRombergStep = 8e-2f;

GcOptions additive_gc_options() {
  GcOptions opt;
  opt.param_std = {{"v", 2.0f}, {"u_q", 0.8f}, {"u_k", 0.8f}, {"w_c", 0.8f}};
  opt.richardson_levels = 2;
  opt.step = kRombergStep;
  opt.zero_gradient_rule = false;  // the additive checks assert max_rel on every tensor
  return opt;
}

// the additive scores get the options above; dot and general use the harness as is
double gradcheck_variant(const GcConfig& c, uint64_t seed) {
  const bool additive = c.type == "bahdanau" || c.score == "concat";
  return additive ? run_gradcheck(c, seed, additive_gc_options()) : run_gradcheck(c, seed);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// a) finite-difference gradient checks
// ---------------------------------------------------------------------------------------------

TEST_CASE("bahdanau/luong: gradcheck, causal/none/padding x MHA/GQA x self/cross") {
  // C = 8, H = 4 (head dim 2), MHA Hkv = 4, GQA Hkv = 2; self T = 5, cross Tq = 3 over Tk = 5
  // (causal cross = a prefix continuation: query i sees keys j <= i + 2)
  OneThread one;
  uint64_t seed = 300;
  std::string summary = "gradcheck worst max rel error per variant and configuration:";
  for (const Variant& v : kVariants) {
    double worst_v = 0.0;
    for (const char* mask : {"causal", "nomask", "padding"})
      for (int Hkv : {4, 2})
        for (bool self_attn : {true, false}) {
          const std::string m = mask;
          const int Tq = self_attn ? 5 : 3, Tk = 5;
          std::vector<std::vector<int>> pads;
          if (m == "padding") pads = {{}, {1, 4}};  // row 1: keys 1 and 4 padded
          const std::string label =
              fmt::format("{} {} {}", m, Hkv == 4 ? "MHA" : "GQA", self_attn ? "self" : "cross");
          const GcConfig c = gc(v, label, 2, Tq, Tk, 8, 4, Hkv, m == "causal", self_attn, pads);
          const double w = gradcheck_variant(c, seed++);
          summary += fmt::format("\n  {:<14} {:<20} {:.2e}", v.label, label, w);
          worst_v = std::max(worst_v, w);
        }
    summary += fmt::format("\n  {:<14} worst {:.2e}", v.label, worst_v);
  }
  MESSAGE(summary);
}

TEST_CASE("bahdanau/luong: gradcheck with window, ALiBi, dropout, no bias, head dim 4, empty rows") {
  OneThread one;
  uint64_t seed = 400;
  std::string summary = "gradcheck worst max rel error, special configurations:";
  for (const Variant& v : kVariants) {
    std::vector<GcConfig> cs;
    GcConfig win = gc(v, "window 2 causal self GQA", 2, 5, 5, 8, 4, 2, true, true);
    win.window = 2;
    cs.push_back(win);
    GcConfig win_nc = gc(v, "window 2 nomask self MHA + padding", 2, 5, 5, 8, 4, 4, false, true, {{0}, {3}});
    win_nc.window = 2;
    cs.push_back(win_nc);
    GcConfig al = gc(v, "alibi causal self GQA", 2, 5, 5, 8, 4, 2, true, true);
    al.positions = "alibi";
    cs.push_back(al);
    GcConfig al_nc = gc(v, "alibi+window 3 nomask self MHA", 2, 5, 5, 8, 4, 4, false, true);
    al_nc.positions = "alibi";
    al_nc.window = 3;
    cs.push_back(al_nc);
    GcConfig drop = gc(v, "dropout 0.3 causal self GQA", 2, 5, 5, 8, 4, 2, true, true);
    drop.dropout = 0.3f;
    cs.push_back(drop);
    GcConfig nob = gc(v, "no bias causal cross MHA", 2, 3, 5, 8, 4, 4, true, false);
    nob.bias = false;
    cs.push_back(nob);
    // head dim 4 (H = 2), MQA
    cs.push_back(gc(v, "D=4 nomask cross MQA", 2, 3, 4, 8, 2, 1, false, false));
    // queries with no visible key: causal Tq > Tk (queries 0, 1 see nothing, 2..5 see 1..4
    // keys), and batch row 1 has every key padded (rows 0 and 2 carry the signal)
    cs.push_back(gc(v, "empty rows causal cross GQA", 3, 6, 4, 8, 4, 2, true, false, {{}, {0, 1, 2, 3}, {}}));
    double worst_v = 0.0;
    for (const auto& c : cs) {
      const double w = gradcheck_variant(c, seed++);
      summary += fmt::format("\n  {:<48} {:.2e}", c.label, w);
      worst_v = std::max(worst_v, w);
    }
    summary += fmt::format("\n  {:<48} {:.2e}", v.label + " worst", worst_v);
  }
  MESSAGE(summary);
}

// ---------------------------------------------------------------------------------------------
// b) KV cache and causality
// ---------------------------------------------------------------------------------------------

TEST_CASE("bahdanau/luong: cached decoding equals the full forward (GQA, window, ALiBi)") {
  OneThread one;
  std::string summary = "cache vs full, max |diff|:";
  double worst = 0.0;
  for (const Variant& v : kVariants)
    for (int variant = 0; variant < 3; variant++) {
      AttentionSpec s = variant_spec(v, 16, 4, variant == 0 ? 4 : 2, true);
      if (variant >= 1) s.window = 3;
      if (variant == 2) s.positions = AttnPositions::alibi;
      s.max_len = 9;
      const char* what = variant == 0 ? "MHA" : variant == 1 ? "GQA window 3" : "GQA window 3 alibi";
      const std::string label = fmt::format("{} {}", v.label, what);
      INFO(label);
      const double d = cache_vs_full(s, 2, 9, 500 + variant);
      summary += fmt::format("\n  {:<36} {:.2e}", label, d);
      worst = std::max(worst, d);
      // the same bound as scaled_dot_product's: a cached step's one-row projections go through
      // sgemv, the full forward's through sgemm, so the two round differently (seen: 4e-6)
      CHECK(d < 1e-5);
    }
  MESSAGE(summary);

  // a forward's saved state survives cached decoding: backward afterwards is the same
  const Variant& v = kVariants[0];
  Harness h(variant_spec(v, 8, 2, 1, true), 77);
  Rng rng(78);
  const std::vector<float> x = random_normal(2 * 4 * 8, rng), U = random_normal(x.size(), rng);
  std::vector<float> out(x.size()), dx1(x.size(), 0.0f), dx2(x.size(), 0.0f);
  h.attn->forward(out.data(), x.data(), x.data(), 2, 4, 4, {}, false, nullptr);
  h.store.zero_grad();
  h.attn->backward(dx1.data(), dx1.data(), U.data());
  h.attn->cache_reset(2, 4);
  std::vector<float> o2(x.size());
  h.attn->forward_cached(o2.data(), x.data(), 2, 1);
  h.attn->backward(dx2.data(), dx2.data(), U.data());
  CHECK(dx1 == dx2);
  // the cache refuses what does not fit
  CHECK_THROWS_AS(h.attn->forward_cached(o2.data(), x.data(), 2, 4), UserError);
  CHECK_THROWS_AS(h.attn->forward_cached(o2.data(), x.data(), 1, 1), UserError);
}

TEST_CASE("bahdanau/luong: causal self-attention ignores the future, exactly") {
  OneThread one;
  for (const Variant& v : kVariants)
    for (int Hkv : {4, 2}) {
      INFO(v.label << " Hkv = " << Hkv);
      AttentionSpec s = variant_spec(v, 16, 4, Hkv, true);
      CHECK(causal_outputs_ignore_future(s, 6, 600 + Hkv));
      s.window = 2;
      s.positions = AttnPositions::alibi;
      CHECK(causal_outputs_ignore_future(s, 6, 610 + Hkv));
    }
}

TEST_CASE("bahdanau/luong: padded keys do not influence the output or receive gradient") {
  for (const Variant& v : kVariants) {
    INFO(v.label);
    check_padded_keys_ignored(variant_spec(v, 8, 4, 2, false), 3, 4, 6, {{}, {3, 4, 5}, {0, 2}}, 21);
  }
}

// ---------------------------------------------------------------------------------------------
// c) bahdanau's initial state: v = 0 gives exactly uniform weights
// ---------------------------------------------------------------------------------------------

TEST_CASE("bahdanau: v = 0 gives exactly uniform weights over the visible keys") {
  const int B = 2, T = 6, C = 8, H = 4;
  const std::vector<unsigned char> keep = keep_mask(B, T, {{}, {1, 4}});
  AttnMask mask;
  mask.key_keep = keep.data();
  for (int window : {0, 3}) {
    INFO("window = " << window);
    AttentionSpec s = variant_spec(kVariants[0], C, H, 2, true);
    s.window = window;
    Harness h(s, 91);  // every parameter random (std 0.5) ...
    std::fill(h.param("v").w.begin(), h.param("v").w.end(), 0.0f);  // ... but v
    Rng rng(92);
    const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
    std::vector<float> out(x.size());
    h.attn->keep_weights(true);
    h.attn->forward(out.data(), x.data(), x.data(), B, T, T, mask, false, nullptr);
    const std::vector<float> w = h.attn->attention_weights();
    REQUIRE(w.size() == size_t(B) * H * T * T);
    for (int b = 0; b < B; b++)
      for (int hd = 0; hd < H; hd++)
        for (int i = 0; i < T; i++) {
          int n = 0;
          auto visible = [&](int j) {
            return j <= i && (window == 0 || j > i - window) && keep[size_t(b) * T + j];
          };
          for (int j = 0; j < T; j++) n += visible(j);
          REQUIRE(n > 0);
          for (int j = 0; j < T; j++) {
            INFO("b " << b << " h " << hd << " i " << i << " j " << j);
            const float p = w[((size_t(b) * H + hd) * T + i) * T + j];
            CHECK(p == (visible(j) ? 1.0f / float(n) : 0.0f));
          }
        }
  }

  // the module as built (GPT-2 projections, A = B = I, v = 0): uniform weights; the gradient
  // reaches v but not yet u_q, u_k (every term of theirs carries a factor v)
  Harness h(variant_spec(kVariants[0], C, H, 4, true), 93, /*weight_std=*/0.0f);
  const std::vector<float>& u = h.param("u_q").w;
  for (int hd = 0; hd < H; hd++)
    for (int r = 0; r < 2; r++)
      for (int c = 0; c < 2; c++) CHECK(u[(size_t(hd) * 2 + r) * 2 + c] == (r == c ? 1.0f : 0.0f));
  CHECK(h.param("u_k").w == u);
  Rng rng(94);
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng), U = random_normal(x.size(), rng);
  std::vector<float> out(x.size()), dx(x.size(), 0.0f);
  h.attn->keep_weights(true);
  h.attn->forward(out.data(), x.data(), x.data(), B, T, T, {}, false, nullptr);
  const std::vector<float> w = h.attn->attention_weights();
  for (int i = 0; i < T; i++) CHECK(w[size_t(i) * T] == 1.0f / float(i + 1));  // b 0, h 0, key 0
  h.store.zero_grad();
  h.attn->backward(dx.data(), dx.data(), U.data());
  for (const char* n : {"u_q", "u_k"}) {
    INFO(n);
    for (float g : h.param(n).g) CHECK(g == 0.0f);
  }
  CHECK(std::any_of(h.param("v").g.begin(), h.param("v").g.end(), [](float g) { return g != 0.0f; }));
}

// At v = 0 the additive score v_hᵀ tanh(a_i + c_j) is 0 whatever q and k are, so nothing that
// reaches the loss only through the score gets a gradient: every term of dq_i and dk_j carries a
// factor v (e_ijd = dS_ij v_hd (1 − t²)), hence W_q, W_k, b_q, b_k and the score's own maps
// (u_q, u_k; luong concat's w_c) get exactly 0, and so does x_q in cross-attention. v does not
// (dv_h = Σ dS_ij t_ij), nor do W_v, b_v, W_o, b_o (the uniform weights still pass V on). After
// one step on v alone, every one of them gets a gradient. Parameters random (biases included),
// so the zeros come from v = 0, not from a special start.
TEST_CASE("bahdanau/luong concat: at v = 0 W_q, W_k, their biases and the maps get exactly zero gradient") {
  const int B = 2, Tq = 5, C = 8, H = 2;
  auto nonzero = [](const std::vector<float>& g) {
    return std::any_of(g.begin(), g.end(), [](float x) { return x != 0.0f; });
  };
  for (const Variant& var : {kVariants[0], kVariants[3]})
    for (bool self_attn : {true, false}) {
      INFO(var.label << (self_attn ? " causal self" : " cross with padding"));
      const int Tk = self_attn ? Tq : 7;
      const std::vector<unsigned char> keep = keep_mask(B, Tk, self_attn ? std::vector<std::vector<int>>{}
                                                                         : std::vector<std::vector<int>>{{}, {1, 4}});
      AttnMask mask;
      if (!self_attn) mask.key_keep = keep.data();
      Harness h(variant_spec(var, C, H, 1, self_attn), 95);  // GQA: one KV head for two heads
      std::vector<float>& v = h.param("v").w;
      std::fill(v.begin(), v.end(), 0.0f);
      Rng rng(96);
      const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
      const std::vector<float> x_kv = self_attn ? x_q : random_normal(size_t(B) * Tk * C, rng);
      const std::vector<float> U = random_normal(x_q.size(), rng);
      std::vector<float> out(x_q.size()), dx_q(x_q.size()), dx_kv(x_kv.size());
      auto gradients = [&] {
        std::fill(dx_q.begin(), dx_q.end(), 0.0f);
        std::fill(dx_kv.begin(), dx_kv.end(), 0.0f);
        h.store.zero_grad();
        h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
        h.attn->backward(dx_q.data(), self_attn ? dx_q.data() : dx_kv.data(), U.data());
      };
      std::vector<std::string> through_score = {"w_q", "b_q", "w_k", "b_k"};
      for (const char* n : var.type == "bahdanau" ? std::vector<const char*>{"u_q", "u_k"}
                                                  : std::vector<const char*>{"w_c"})
        through_score.push_back(n);

      gradients();
      for (const std::string& n : through_score) {
        INFO("v = 0: " << n);
        for (float g : h.param(n).g) REQUIRE(g == 0.0f);
      }
      if (!self_attn)
        for (float g : dx_q) REQUIRE(g == 0.0f);
      for (const char* n : {"v", "w_v", "b_v", "w_o", "b_o"}) {
        INFO("v = 0: " << n);
        CHECK(nonzero(h.param(n).g));
      }

      // one gradient step on v alone; now the score depends on q and k, and they learn
      const std::vector<float> dv = h.param("v").g;
      for (size_t i = 0; i < v.size(); i++) v[i] -= 0.5f * dv[i];
      gradients();
      for (const std::string& n : through_score) {
        INFO("after one step on v: " << n);
        CHECK(nonzero(h.param(n).g));
      }
      CHECK(nonzero(dx_q));
    }
}

// ---------------------------------------------------------------------------------------------
// d) luong dot is scaled dot-product attention without the scale
// ---------------------------------------------------------------------------------------------

TEST_CASE("luong dot equals scaled_dot_product with scale none") {
  const int B = 2, Tq = 4, Tk = 6, C = 16;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{2}, {0, 5}});
  AttnMask mask;
  mask.key_keep = keep.data();
  for (bool causal : {true, false}) {
    INFO("causal = " << causal);
    AttentionSpec sl = variant_spec(kVariants[1], C, 4, 2, causal);
    sl.window = 4;
    sl.positions = AttnPositions::alibi;
    AttentionSpec ss = sl;
    ss.type = "scaled_dot_product";
    ss.scale = "none";
    Harness hl(sl, 5), hs(ss, 5);
    REQUIRE(hl.store.all().size() == hs.store.all().size());
    for (const Param& p : hs.store.all()) hl.param(p.name.substr(5)).w = p.w;  // same weights, by name
    Rng rng(6);
    const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
    const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
    const std::vector<float> U = random_normal(x_q.size(), rng);
    std::vector<float> ol(x_q.size()), os(x_q.size());
    hl.attn->keep_weights(true);
    hs.attn->keep_weights(true);
    hl.attn->forward(ol.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    hs.attn->forward(os.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    const std::vector<float> wl = hl.attn->attention_weights(), ws = hs.attn->attention_weights();
    REQUIRE(wl.size() == ws.size());
    double dw = 0.0, dout = 0.0, dg = 0.0;
    for (size_t i = 0; i < wl.size(); i++) dw = std::max(dw, double(std::fabs(wl[i] - ws[i])));
    for (size_t i = 0; i < ol.size(); i++) dout = std::max(dout, double(std::fabs(ol[i] - os[i])));
    hl.store.zero_grad();
    hs.store.zero_grad();
    std::vector<float> gql(x_q.size(), 0.0f), gkl(x_kv.size(), 0.0f), gqs(x_q.size(), 0.0f), gks(x_kv.size(), 0.0f);
    hl.attn->backward(gql.data(), gkl.data(), U.data());
    hs.attn->backward(gqs.data(), gks.data(), U.data());
    for (size_t i = 0; i < gql.size(); i++) dg = std::max(dg, double(std::fabs(gql[i] - gqs[i])));
    for (size_t i = 0; i < gkl.size(); i++) dg = std::max(dg, double(std::fabs(gkl[i] - gks[i])));
    for (const Param& p : hs.store.all()) {
      const std::vector<float>& g = hl.param(p.name.substr(5)).g;
      for (size_t i = 0; i < g.size(); i++) dg = std::max(dg, double(std::fabs(g[i] - p.g[i])));
    }
    MESSAGE(fmt::format("luong dot vs scaled_dot_product (scale none), causal={}: max |dW| {:.1e}, |dout| "
                        "{:.1e}, |dgrad| {:.1e}",
                        causal, dw, dout, dg));
    CHECK(dw < 1e-6);
    CHECK(dout < 1e-5);
    CHECK(dg < 1e-4);
  }
}

TEST_CASE("luong concat with w_c = [u_q | u_k] equals bahdanau") {
  // W_a [q; k] = W_a[:, :D] q + W_a[:, D:] k (Luong's W_a, stored as w_c): the same score, side by side
  const int B = 2, Tq = 5, Tk = 7, C = 16, H = 4, D = 4;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{1}, {6}});
  AttnMask mask;
  mask.key_keep = keep.data();
  AttentionSpec sb = variant_spec(kVariants[0], C, H, 2, true);
  sb.window = 5;
  sb.positions = AttnPositions::alibi;
  AttentionSpec sc = sb;
  sc.type = "luong";
  sc.score = AttnScore::concat;
  Harness hb(sb, 15), hc(sc, 16);
  for (const char* n : {"w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o", "v"}) hc.param(n).w = hb.param(n).w;
  std::vector<float>& w_c = hc.param("w_c").w;
  for (int h = 0; h < H; h++)
    for (int r = 0; r < D; r++)
      for (int c = 0; c < D; c++) {
        w_c[(size_t(h) * D + r) * 2 * D + c] = hb.param("u_q").w[(size_t(h) * D + r) * D + c];
        w_c[(size_t(h) * D + r) * 2 * D + D + c] = hb.param("u_k").w[(size_t(h) * D + r) * D + c];
      }
  Rng rng(17);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng), x_kv = random_normal(size_t(B) * Tk * C, rng);
  const std::vector<float> U = random_normal(x_q.size(), rng);
  std::vector<float> ob(x_q.size()), oc(x_q.size());
  hb.attn->forward(ob.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
  hc.attn->forward(oc.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
  hb.store.zero_grad();
  hc.store.zero_grad();
  std::vector<float> gqb(x_q.size(), 0.0f), gkb(x_kv.size(), 0.0f), gqc(x_q.size(), 0.0f), gkc(x_kv.size(), 0.0f);
  hb.attn->backward(gqb.data(), gkb.data(), U.data());
  hc.attn->backward(gqc.data(), gkc.data(), U.data());
  auto diff = [](const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0.0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
    return m;
  };
  double dg = std::max(diff(gqb, gqc), diff(gkb, gkc));
  for (const char* n : {"w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o", "v"})
    dg = std::max(dg, diff(hb.param(n).g, hc.param(n).g));
  const std::vector<float>& gc_ = hc.param("w_c").g;
  for (int h = 0; h < H; h++)
    for (int r = 0; r < D; r++)
      for (int c = 0; c < D; c++) {
        const size_t i = (size_t(h) * D + r) * D + c, o = (size_t(h) * D + r) * 2 * D + c;
        dg = std::max(dg, double(std::fabs(hb.param("u_q").g[i] - gc_[o])));
        dg = std::max(dg, double(std::fabs(hb.param("u_k").g[i] - gc_[o + D])));
      }
  const double dout = diff(ob, oc);
  MESSAGE(fmt::format("luong concat vs bahdanau: max |dout| {:.1e}, |dgrad| {:.1e}", dout, dg));
  CHECK(dout < 1e-5);
  CHECK(dg < 1e-4);
}

// ---------------------------------------------------------------------------------------------
// e) parameters, initialisation, determinism, configuration errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("bahdanau/luong: parameters, shapes and initialisation") {
  const int C = 12, H = 3, D = 4;  // GQA: Hkv = 1, K/V width 4
  struct Expect {
    Variant v;
    std::vector<std::pair<std::string, std::vector<int>>> extra;
  };
  const std::vector<Expect> expect = {
      {kVariants[0], {{"u_q", {H, D, D}}, {"u_k", {H, D, D}}, {"v", {H, D}}}},
      {kVariants[1], {}},
      {kVariants[2], {{"w_a", {H, D, D}}}},
      {kVariants[3], {{"w_c", {H, D, 2 * D}}, {"v", {H, D}}}},
  };
  for (const Expect& e : expect) {
    INFO(e.v.label);
    ParamStore store, ref;
    Rng rng(3), rng2(3);
    AttentionSpec s = variant_spec(e.v, C, H, 1, true);
    s.name = "blocks.1.attn";
    make_attention(s, store, rng);
    AttentionSpec sr = s;
    sr.type = "scaled_dot_product";
    make_attention(sr, ref, rng2);
    // the shared projections: same names, shapes and (same seed) values as scaled_dot_product
    REQUIRE(store.all().size() == ref.all().size() + e.extra.size());
    for (size_t i = 0; i < ref.all().size(); i++) {
      CHECK(store.all()[i].name == ref.all()[i].name);
      CHECK(store.all()[i].shape == ref.all()[i].shape);
      CHECK(store.all()[i].w == ref.all()[i].w);
    }
    for (size_t i = 0; i < e.extra.size(); i++) {
      const Param& p = store.all()[ref.all().size() + i];
      CHECK(p.name == "blocks.1.attn." + e.extra[i].first);
      CHECK(p.shape == e.extra[i].second);
      const std::string n = e.extra[i].first;
      for (int h = 0; h < H; h++)
        for (int r = 0; r < D; r++) {
          if (n == "v") {
            CHECK(p.w[size_t(h) * D + r] == 0.0f);
            continue;
          }
          const int cols = n == "w_c" ? 2 * D : D;
          for (int c = 0; c < cols; c++) {
            const bool one = c % D == r;  // identity ([I I] for w_c)
            CHECK(p.w[(size_t(h) * D + r) * cols + c] == (one ? 1.0f : 0.0f));
          }
        }
    }
    ParamStore nob;
    s.bias = false;
    make_attention(s, nob, rng);
    CHECK(nob.all().size() == 4 + e.extra.size());
  }
}

TEST_CASE("bahdanau/luong: results do not depend on the thread count") {
  const int B = 3, T = 7, C = 16;
  const int saved = omp_get_max_threads();
  for (const Variant& v : kVariants) {
    INFO(v.label);
    AttentionSpec s = variant_spec(v, C, 4, 2, true);
    s.dropout = 0.2f;
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      Harness h(s, 81);
      Rng rng(82);
      const std::vector<float> x = random_normal(size_t(B) * T * C, rng), U = random_normal(x.size(), rng);
      std::vector<float> out(x.size()), dx(x.size(), 0.0f);
      Rng drop(83);
      h.attn->forward(out.data(), x.data(), x.data(), B, T, T, {}, true, &drop);
      h.store.zero_grad();
      h.attn->backward(dx.data(), dx.data(), U.data());
      std::vector<float> all = out;
      all.insert(all.end(), dx.begin(), dx.end());
      for (const Param& p : h.store.all()) all.insert(all.end(), p.g.begin(), p.g.end());
      results.push_back(all);
    }
    CHECK(results[0] == results[1]);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("bahdanau/luong: configuration errors are UserErrors") {
  const auto message_of = construction_error;
  for (const Variant& v : kVariants) {
    INFO(v.label);
    AttentionSpec s = variant_spec(v, 16, 4, 2, true);
    CHECK(message_of(s).empty());
    for (const char* bad : {"none", "0.5"}) {
      AttentionSpec t = s;
      t.scale = bad;
      CHECK(message_of(t).find("scale") != std::string::npos);
    }
    AttentionSpec r = s;
    r.positions = AttnPositions::rope;
    CHECK(message_of(r).find("rope") != std::string::npos);
    std::string bad_score;  // an unknown score name is refused where it becomes an AttnScore
    try {
      attn_score("cosine");
    } catch (const UserError& e) {
      bad_score = e.what();
    }
    CHECK(bad_score.find("score") != std::string::npos);
  }
  // built directly, without the registry's check, the modules still refuse
  ParamStore store;
  Rng rng(2);
  AttentionSpec s = variant_spec(kVariants[1], 16, 4, 2, true);
  CHECK_THROWS_AS(attn_score("additive"), UserError);
  s.score = AttnScore::dot;
  s.scale = "none";
  CHECK_THROWS_AS(attention_registry().at("luong").make(s, store, rng), UserError);
  s.type = "bahdanau";
  CHECK_THROWS_AS(attention_registry().at("bahdanau").make(s, store, rng), UserError);
}

