// Tests of flash attention (src/attention/flash.{h,cpp}): the tiled kernel behind
// scaled_dot_product's impl flash and the `flash` registry type.
//   a) flash ≡ naive: the same module weights and inputs through impl naive and impl flash give
//      the same output (max abs diff ≤ 1e-6) and the same gradients of x_q, x_kv and every
//      parameter (max abs diff ≤ 1e-5·max(1, max|g|): absolute for gradients up to 1, relative
//      to the tensor's largest gradient beyond), over masks, GQA/MQA, RoPE, ALiBi, cross-attention
//      with Tq ≠ Tk, fully masked rows and lengths that are not multiples of the tile;
//   b) finite-difference gradcheck of the `flash` type; c) incremental decoding, causality and
//      key padding; d) recomputed attention weights; e) impl auto; f) determinism across thread
//      counts; g) the packet exp; h) configuration errors.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "attention/flash.h"
#include "attention/harness.h"
#include "attention/scaled_dot_product.h"
#include "config/config.h"
#include "core/error.h"

using namespace attnlab;
using namespace attnlab::test;

namespace {

constexpr double kFwdTol = 1e-6;   // max |out_flash − out_naive|
constexpr double kGradTol = 1e-5;  // max |g_flash − g_naive| / max(1, max |g_naive|)
// Weights N(0, (1/√C)²): unit-variance projections (what LayerNorm'd inputs and a trained model
// give), scores of std ~1, so the softmax is far from uniform but not saturated. Both
// implementations are float32 with different summation orders, and their difference is their
// rounding noise: the score rounding ε·|s| becomes a relative error of every weight, so with
// std 0.5 weights (scores of size ~20) the two differed by up to 1e-6 relative to max |out| and
// each was that far from a float64 reference. At unit scale the worst forward difference over 8
// seeds of the 22 configurations below was 6.4e-7 and the worst gradient one 2.2e-6; a wrong mask,
// rescale or GQA mapping gives 1e-3 or more.
constexpr float kEqWeightStd = 1.0f;

struct EqConfig {
  std::string label;
  int B, Tq, Tk, C, H, Hkv;
  bool causal, self_attn;
  std::vector<std::vector<int>> pads;  // padded keys per batch row
  int window = 0;
  std::string positions = "none";
};

double max_abs_f(const std::vector<float>& v) {
  double m = 0.0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}
double max_diff_f(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// Forward + backward of one module; returns out, dx_q, dx_kv and the parameter gradients.
struct Run {
  std::vector<float> out, dx_q, dx_kv;
  std::vector<std::vector<float>> grads;
  std::vector<std::string> names;
  bool flash = false;
};

Run run_module(const AttentionSpec& spec, const EqConfig& c, uint64_t seed, float weight_std) {
  Harness h(spec, seed, weight_std);
  Rng rng(seed + 1);
  const std::vector<float> x_q = random_normal(size_t(c.B) * c.Tq * c.C, rng);
  const std::vector<float> x_kv = c.self_attn ? x_q : random_normal(size_t(c.B) * c.Tk * c.C, rng);
  const std::vector<float> U = random_normal(x_q.size(), rng);
  std::vector<unsigned char> keep;
  AttnMask mask;
  if (!c.pads.empty()) {
    keep = keep_mask(c.B, c.Tk, c.pads);
    mask.key_keep = keep.data();
  }
  Run r;
  r.out.resize(x_q.size());
  h.attn->forward(r.out.data(), x_q.data(), x_kv.data(), c.B, c.Tq, c.Tk, mask, false, nullptr);
  r.flash = dynamic_cast<ScaledDotProductAttention&>(*h.attn).last_forward_flash();
  h.store.zero_grad();
  r.dx_q.assign(x_q.size(), 0.0f);
  r.dx_kv.assign(x_kv.size(), 0.0f);
  h.attn->backward(r.dx_q.data(), c.self_attn ? r.dx_q.data() : r.dx_kv.data(), U.data());
  for (Param& p : h.store.all()) {
    r.grads.push_back(p.g);
    r.names.push_back(p.name);
  }
  return r;
}

AttentionSpec spec_of(const EqConfig& c, const std::string& impl) {
  AttentionSpec s = make_spec(c.C, c.H, c.Hkv, c.causal);
  s.window = c.window;
  s.positions = attn_positions(c.positions);
  s.max_len = std::max(c.Tq, c.Tk);
  s.impl = attn_impl(impl);
  return s;
}

// Compares impl naive with impl flash (and the `flash` type); returns a summary line.
std::string compare_impls(const EqConfig& c, uint64_t seed, double& worst_fwd, double& worst_grad) {
  INFO("config: " << c.label);
  const float wstd = kEqWeightStd / std::sqrt(float(c.C));
  const Run naive = run_module(spec_of(c, "naive"), c, seed, wstd);
  const Run flash = run_module(spec_of(c, "flash"), c, seed, wstd);
  AttentionSpec typed = spec_of(c, "auto");
  typed.type = "flash";
  const Run typed_run = run_module(typed, c, seed, wstd);
  CHECK_FALSE(naive.flash);
  CHECK(flash.flash);
  CHECK(typed_run.flash);
  CHECK(typed_run.out == flash.out);  // the type is the same module with impl flash
  CHECK(typed_run.dx_q == flash.dx_q);

  const double fwd = max_diff_f(flash.out, naive.out) / std::max(1.0, max_abs_f(naive.out));
  CHECK_MESSAGE(fwd <= kFwdTol, fmt::format("{}: forward max |diff| {:.3e} (max |out| {:.3g})", c.label, fwd,
                                            max_abs_f(naive.out)));
  worst_fwd = std::max(worst_fwd, fwd);
  std::string line = fmt::format("{}: out {:.1e}", c.label, fwd);
  auto grad = [&](const std::string& name, const std::vector<float>& a, const std::vector<float>& b,
                  const std::vector<float>* scale_of = nullptr) {
    const double scale = std::max(1.0, max_abs_f(scale_of ? *scale_of : b));
    const double d = max_diff_f(a, b) / scale;
    CHECK_MESSAGE(d <= kGradTol, fmt::format("{}: d{} max |diff| / max(1, max|g|) = {:.3e} (max |g| {:.3g})",
                                             c.label, name, d, max_abs_f(b)));
    worst_grad = std::max(worst_grad, d);
    return d;
  };
  double gw = grad("x_q", flash.dx_q, naive.dx_q);
  if (!c.self_attn) gw = std::max(gw, grad("x_kv", flash.dx_kv, naive.dx_kv));
  REQUIRE(flash.grads.size() == naive.grads.size());
  // d b_k is 0 in exact arithmetic (the softmax ignores the per-row shift q·b_k): in both
  // implementations it is the rounding noise of Σ_j dK_j, so it is measured against the scale of
  // d w_k = Σ_j dK_jᵀ x_j, which sums the same rows
  const std::vector<float>* dw_k = nullptr;
  for (size_t i = 0; i < naive.names.size(); i++)
    if (naive.names[i] == "attn.w_k") dw_k = &naive.grads[i];
  REQUIRE(dw_k != nullptr);
  for (size_t i = 0; i < naive.grads.size(); i++)
    gw = std::max(gw, grad(naive.names[i], flash.grads[i], naive.grads[i],
                           naive.names[i] == "attn.b_k" ? dw_k : nullptr));
  return line + fmt::format(", grads {:.1e}", gw);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// a) flash ≡ naive
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: equals naive (values and gradients) over masks, GQA and lengths not multiple of the tile") {
  std::vector<EqConfig> cs;
  // causal self-attention over lengths around the 64-wide tiles; head widths 8, 12, 32, 64
  for (int T : {1, 7, 63, 65, 130, 257})
    cs.push_back({fmt::format("causal self T={}", T), 2, T, T, 32, 4, 4, true, true, {}});
  cs.push_back({"causal self D=12 GQA", 1, 100, 100, 48, 4, 2, true, true, {}});
  cs.push_back({"causal self D=64 MQA", 1, 130, 130, 128, 2, 1, true, true, {}});
  cs.push_back({"no mask self D=32 GQA", 2, 97, 97, 64, 2, 1, false, true, {}});
  // key padding (row 1: a padded tail and some holes), self and cross
  std::vector<int> holes = {3, 64, 65, 66, 100};
  for (int j = 110; j < 130; j++) holes.push_back(j);
  cs.push_back({"padding self GQA", 2, 130, 130, 32, 4, 2, false, true, {{0, 5}, holes}});
  cs.push_back({"padding + causal self MQA", 2, 130, 130, 32, 4, 1, true, true, {{}, holes}});
  // sliding window, causal and not, across tile borders
  EqConfig w1{"window 40 causal self GQA", 2, 150, 150, 32, 4, 2, true, true, {}};
  w1.window = 40;
  cs.push_back(w1);
  EqConfig w2{"window 70 no mask self", 1, 200, 200, 32, 4, 4, false, true, {}};
  w2.window = 70;
  cs.push_back(w2);
  EqConfig w3{"window 5 causal + padding", 2, 67, 67, 32, 4, 2, true, true, {{1, 2, 3}, {60, 61, 62, 63, 64}}};
  w3.window = 5;
  cs.push_back(w3);
  // positions
  EqConfig rope{"rope causal self GQA", 2, 130, 130, 32, 4, 2, true, true, {}};
  rope.positions = "rope";
  cs.push_back(rope);
  EqConfig alibi{"alibi causal self", 2, 130, 130, 32, 4, 4, true, true, {}};
  alibi.positions = "alibi";
  cs.push_back(alibi);
  EqConfig alibi2{"alibi no mask window 50 MQA", 1, 120, 120, 32, 4, 1, false, true, {}};
  alibi2.positions = "alibi";
  alibi2.window = 50;
  cs.push_back(alibi2);
  // cross-attention, Tq ≠ Tk
  cs.push_back({"cross Tq<Tk padding", 2, 65, 257, 32, 4, 2, false, false, {{256}, {0, 1, 200, 201, 202}}});
  cs.push_back({"cross Tq>Tk", 2, 130, 7, 32, 4, 4, false, false, {}});
  cs.push_back({"causal prefix Tq<Tk (continuation)", 2, 70, 140, 32, 4, 2, true, false, {}});
  // fully masked rows: causal Tq > Tk (the first queries see no key), all keys of a row padded
  cs.push_back({"causal Tq>Tk (empty rows)", 2, 130, 63, 32, 4, 4, true, false, {}});
  // head widths and key lengths that are multiples of 16: the kernel reads K, V, Q and dO in place
  // instead of through padded copies
  cs.push_back({"in place: causal self D=32 T=128 GQA", 2, 128, 128, 128, 4, 2, true, true, {}});
  cs.push_back({"in place: cross D=16 Tq=48 Tk=64 padding", 2, 48, 64, 64, 4, 4, false, false, {{3}, {60, 61}}});
  EqConfig w4{"in place: window 70 causal D=64 T=192", 1, 192, 192, 128, 2, 2, true, true, {}};
  w4.window = 70;
  cs.push_back(w4);
  std::vector<int> all(70);
  for (int j = 0; j < 70; j++) all[j] = j;
  cs.push_back({"all keys padded in row 1", 2, 65, 70, 32, 4, 2, false, false, {{0}, all}});

  double worst_fwd = 0.0, worst_grad = 0.0;
  uint64_t seed = 900;
  std::string summary = "flash vs naive (forward max |diff|; gradients max |diff| / max(1, max|g|)):";
  for (const auto& c : cs) summary += "\n  " + compare_impls(c, seed++, worst_fwd, worst_grad);
  MESSAGE(summary);
  MESSAGE(fmt::format("flash vs naive over {} configurations: worst forward {:.2e} (tolerance {:.0e}), worst "
                      "gradient {:.2e} (tolerance {:.0e})", cs.size(), worst_fwd, kFwdTol, worst_grad, kGradTol));
}

TEST_CASE("flash: a query with no visible key outputs exactly b_o and passes no gradient") {
  // causal cross-attention with Tq > Tk: queries 0..Tq−Tk−1 see no key
  const int B = 1, Tq = 70, Tk = 3, C = 32;
  AttentionSpec s = make_spec(C, 4, 2, true);
  s.type = "flash";
  Harness h(s, 31);
  Rng rng(32);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  std::vector<float> out(x_q.size());
  h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, {}, false, nullptr);
  const std::vector<float>& b_o = h.param("b_o").w;
  const int empty = Tq - Tk;
  for (int i = 0; i < empty; i++) CHECK(std::equal(b_o.begin(), b_o.end(), out.begin() + size_t(i) * C));
  CHECK_FALSE(std::equal(b_o.begin(), b_o.end(), out.begin() + size_t(empty) * C));
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  const std::vector<float> U = random_normal(out.size(), rng);
  h.store.zero_grad();
  h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
  // query `empty` sees key 0 alone: a softmax over one key is 1 whatever the score, so its
  // dq is exactly 0 too (the backward's D_i = dO·O equals dP bit for bit there); the queries
  // after it see two or more keys and get a gradient
  for (int i = 0; i < Tq; i++) {
    const float* g = &dx_q[size_t(i) * C];
    if (i <= empty) CHECK(std::all_of(g, g + C, [](float v) { return v == 0.0f; }));
    else CHECK(std::any_of(g, g + C, [](float v) { return v != 0.0f; }));
  }
}

// ---------------------------------------------------------------------------------------------
// b) finite differences
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: gradcheck of the flash type, masks x GQA x positions") {
  std::vector<GcConfig> cs;
  cs.push_back({"flash causal self GQA", 2, 5, 5, 8, 4, 2, true, true, {}});
  cs.push_back({"flash nomask cross MQA", 2, 3, 5, 8, 4, 1, false, false, {}});
  cs.push_back({"flash padding cross MHA", 2, 4, 5, 8, 4, 4, false, false, {{1}, {3, 4}}});
  cs.push_back({"flash causal Tq>Tk + all-padded row", 2, 4, 3, 8, 4, 2, true, false, {{}, {0, 1, 2}}});
  GcConfig win{"flash window 2 causal self alibi", 2, 5, 5, 8, 4, 2, true, true, {}};
  win.window = 2;
  win.positions = "alibi";
  cs.push_back(win);
  GcConfig rope{"flash rope causal self", 2, 5, 5, 8, 2, 2, true, true, {}};
  rope.positions = "rope";
  cs.push_back(rope);
  double worst = 0.0;
  uint64_t seed = 950;
  for (auto& c : cs) {
    c.type = "flash";
    worst = std::max(worst, run_gradcheck(c, seed++));
  }
  MESSAGE(fmt::format("flash gradcheck worst max rel error: {:.3e}", worst));
}

// ---------------------------------------------------------------------------------------------
// c) decoding, causality, padding
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: cached decoding (naive steps) reproduces the flash forward") {
  for (const char* pos : {"none", "rope", "alibi"})
    for (int window : {0, 5}) {
      INFO("positions " << pos << ", window " << window);
      AttentionSpec s = make_spec(16, 4, 2, true);
      s.type = "flash";
      s.positions = attn_positions(pos);
      s.window = window;
      s.max_len = 70;
      const double d = cache_vs_full(s, 2, 70, 960 + window);
      CHECK(d <= 1e-5);
    }
}

TEST_CASE("flash: causal self-attention ignores the future, exactly") {
  AttentionSpec s = make_spec(16, 2, 1, true);
  s.type = "flash";
  CHECK(causal_outputs_ignore_future(s, 70, 970));
  s.window = 9;
  s.positions = AttnPositions::alibi;
  CHECK(causal_outputs_ignore_future(s, 70, 971));
}

TEST_CASE("flash: padded keys do not influence the output or receive gradient") {
  AttentionSpec s = make_spec(16, 4, 2, false);
  s.type = "flash";
  check_padded_keys_ignored(s, 2, 5, 70, {{0, 64, 65}, {3, 4, 69}}, 975);
}

// ---------------------------------------------------------------------------------------------
// d) attention weights recomputed from the log-sum-exp
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: attention_weights() recomputed from the saved log-sum-exp equal naive's") {
  struct Cfg {
    std::string label;
    int Tq, Tk, Hkv;
    bool causal;
    int window;
    std::string positions;
    std::vector<std::vector<int>> pads;
  };
  const std::vector<Cfg> cfgs = {{"causal GQA", 70, 70, 2, true, 0, "none", {}},
                                 {"cross padding alibi", 33, 80, 4, false, 0, "alibi", {{2, 79}, {0, 1, 2, 3}}},
                                 {"causal Tq>Tk window", 80, 66, 1, true, 7, "rope", {}}};
  const int B = 2, C = 32, H = 4;
  for (const Cfg& c : cfgs) {
    INFO(c.label);
    std::vector<float> w[2];
    for (int k = 0; k < 2; k++) {
      AttentionSpec s = make_spec(C, H, c.Hkv, c.causal);
      s.type = k == 0 ? "scaled_dot_product" : "flash";
      s.impl = AttnImpl::naive;  // ignored by the flash type
      s.window = c.window;
      s.positions = attn_positions(c.positions);
      s.max_len = c.Tk;
      Harness h(s, 980, kEqWeightStd / std::sqrt(float(C)));
      Rng rng(981);
      const std::vector<float> x_q = random_normal(size_t(B) * c.Tq * C, rng);
      const std::vector<float> x_kv = random_normal(size_t(B) * c.Tk * C, rng);
      std::vector<unsigned char> keep = keep_mask(B, c.Tk, c.pads);
      AttnMask mask;
      if (!c.pads.empty()) mask.key_keep = keep.data();
      std::vector<float> out(x_q.size());
      h.attn->keep_weights(true);
      h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, c.Tq, c.Tk, mask, false, nullptr);
      keep.assign(keep.size(), 7);  // the module must have kept its own copy of the mask
      w[k] = h.attn->attention_weights();
      REQUIRE(w[k].size() == size_t(B) * H * c.Tq * c.Tk);
      CHECK(dynamic_cast<ScaledDotProductAttention&>(*h.attn).last_forward_flash() == (k == 1));
    }
    const double d = max_diff_f(w[0], w[1]);
    CHECK(d <= 1e-6);
    // exact zeros where masked, in both
    for (size_t i = 0; i < w[0].size(); i++)
      if (w[0][i] == 0.0f) CHECK(w[1][i] == 0.0f);
    MESSAGE(fmt::format("{}: recomputed weights max |diff| {:.2e}", c.label, d));
  }
}

// ---------------------------------------------------------------------------------------------
// e) impl auto
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: impl auto takes flash for long keys without dropout or kept weights") {
  auto flash_used = [](int Tk, float dropout, bool train, bool keep) {
    AttentionSpec s = make_spec(16, 2, 2, false);
    s.dropout = dropout;
    Harness h(s, 990);
    Rng rng(991), drop(992);
    const int Tq = 3, C = 16;
    const std::vector<float> x_q = random_normal(size_t(Tq) * C, rng);
    const std::vector<float> x_kv = random_normal(size_t(Tk) * C, rng);
    std::vector<float> out(x_q.size());
    h.attn->keep_weights(keep);
    h.attn->forward(out.data(), x_q.data(), x_kv.data(), 1, Tq, Tk, {}, train, &drop);
    return dynamic_cast<ScaledDotProductAttention&>(*h.attn).last_forward_flash();
  };
  CHECK(flash_used(kFlashAutoMinKeys, 0.0f, true, false));
  CHECK_FALSE(flash_used(kFlashAutoMinKeys - 1, 0.0f, true, false));
  CHECK_FALSE(flash_used(kFlashAutoMinKeys, 0.1f, true, false));  // dropout on: naive
  CHECK(flash_used(kFlashAutoMinKeys, 0.1f, false, false));       // evaluation: no dropout, flash
  CHECK_FALSE(flash_used(kFlashAutoMinKeys, 0.0f, false, true));  // weights kept: naive
}

// ---------------------------------------------------------------------------------------------
// f) determinism
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: bitwise identical results for 1 and 2 threads") {
  EqConfig c{"det", 2, 130, 130, 64, 4, 2, true, true, {{}, {5, 6, 100}}};  // large enough to run threaded
  c.positions = "alibi";
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Run one = run_module(spec_of(c, "flash"), c, 995, 0.5f);
  omp_set_num_threads(2);
  const Run two = run_module(spec_of(c, "flash"), c, 995, 0.5f);
  omp_set_num_threads(saved);
  CHECK(one.out == two.out);
  CHECK(one.dx_q == two.dx_q);
  for (size_t i = 0; i < one.grads.size(); i++) CHECK(one.grads[i] == two.grads[i]);
}

// The kernel alone: token-major buffers ([B, T, ld], what the module passes) against head-major
// copies of the same values, and the fused against the split schedule, forward and backward. All must
// agree bit for bit (same arithmetic in the same order); a wrong stride or a missed tile shows
// up as a difference of order 1.
TEST_CASE("flash kernel: token-major layout and both schedules equal head-major, bitwise") {
  struct K {
    int B, Hq, Hkv, Tq, Tk, D;
    bool causal;
    int window;
    bool pad;
  };
  const K cases[] = {{2, 4, 2, 37, 37, 16, true, 0, false}, {2, 4, 2, 70, 70, 24, true, 0, true},
                     {1, 3, 1, 33, 90, 16, false, 0, true},  {3, 2, 2, 65, 65, 32, false, 20, false},
                     {2, 2, 1, 64, 128, 64, true, 0, false}};
  for (const K& c : cases) {
    CAPTURE(c.Tq);
    CAPTURE(c.D);
    Rng rng(uint64_t(c.Tq * 31 + c.D));
    const int ldq = c.Hq * c.D + 3, ldk = c.Hkv * c.D + 5;  // wider rows than the heads: strides matter
    auto fill = [&](size_t n) {
      std::vector<float> v(n);
      for (auto& x : v) x = rng.normal();
      return v;
    };
    // token-major inputs, and head-major copies of them
    const std::vector<float> q = fill(size_t(c.B) * c.Tq * ldq), k = fill(size_t(c.B) * c.Tk * ldk),
                             v = fill(size_t(c.B) * c.Tk * ldk), dout = fill(size_t(c.B) * c.Tq * ldq);
    auto heads = [&](const std::vector<float>& x, int H, int T, int ld) {
      std::vector<float> y(size_t(c.B) * H * T * c.D);
      for (int b = 0; b < c.B; b++)
        for (int h = 0; h < H; h++)
          for (int t = 0; t < T; t++)
            for (int d = 0; d < c.D; d++)
              y[((size_t(b) * H + h) * T + t) * c.D + d] = x[(size_t(b) * T + t) * ld + h * c.D + d];
      return y;
    };
    std::vector<unsigned char> keep(size_t(c.B) * c.Tk, 1);
    if (c.pad)
      for (int j = c.Tk - 7; j < c.Tk; j++) keep[size_t(c.B - 1) * c.Tk + j] = 0;
    FlashOptions o;
    o.scale = 1.0f / std::sqrt(float(c.D));
    o.causal = c.causal;
    o.window = c.window;
    o.key_keep = c.pad ? keep.data() : nullptr;
    const FlashShape hm{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D};
    const FlashShape tm{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D, ldq, ldk};
    FlashWorkspace ws;

    const auto qh = heads(q, c.Hq, c.Tq, ldq), kh = heads(k, c.Hkv, c.Tk, ldk), vh = heads(v, c.Hkv, c.Tk, ldk),
               doh = heads(dout, c.Hq, c.Tq, ldq);
    std::vector<float> oh(qh.size()), lh(size_t(c.B) * c.Hq * c.Tq);
    flash_forward(oh.data(), lh.data(), qh.data(), kh.data(), vh.data(), hm, o, ws);
    std::vector<float> ot(q.size(), 7.0f), lt(lh.size());  // 7: columns outside the heads stay as they were
    flash_forward(ot.data(), lt.data(), q.data(), k.data(), v.data(), tm, o, ws);
    CHECK(heads(ot, c.Hq, c.Tq, ldq) == oh);
    CHECK(lt == lh);
    CHECK(ot[size_t(ldq) - 1] == 7.0f);
    for (FlashSchedule mode : {FlashSchedule::split, FlashSchedule::fused}) {
      FlashOptions om = o;
      om.schedule = mode;
      std::vector<float> o2(qh.size(), 3.0f), l2(lh.size(), 3.0f);
      flash_forward(o2.data(), l2.data(), qh.data(), kh.data(), vh.data(), hm, om, ws);
      CHECK(o2 == oh);
      CHECK(l2 == lh);
    }

    for (FlashSchedule mode : {FlashSchedule::split, FlashSchedule::fused}) {
      o.schedule = mode;
      std::vector<float> dqh(qh.size()), dkh(kh.size()), dvh(vh.size());
      flash_backward(dqh.data(), dkh.data(), dvh.data(), doh.data(), qh.data(), kh.data(), vh.data(), oh.data(),
                     lh.data(), hm, o, ws);
      std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
      flash_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), ot.data(),
                     lt.data(), tm, o, ws);
      CHECK(heads(dq, c.Hq, c.Tq, ldq) == dqh);
      CHECK(heads(dk, c.Hkv, c.Tk, ldk) == dkh);
      CHECK(heads(dv, c.Hkv, c.Tk, ldk) == dvh);
      static std::vector<float> ref_dq, ref_dk, ref_dv;  // the split schedule's, for the fused one
      if (mode == FlashSchedule::split) {
        ref_dq = dqh, ref_dk = dkh, ref_dv = dvh;
        CHECK(max_abs_f(dqh) > 0.0);
      } else {
        CHECK(dqh == ref_dq);
        CHECK(dkh == ref_dk);
        CHECK(dvh == ref_dv);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// g) the kernel's exp
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: the packet exp is within 2 ulp of exp and exactly 0 below FLT_MIN") {
  const int n = 1 << 16;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; i++) x[i] = -87.3f + 87.3f * float(i) / n;  // the kernel's range: s − max ≤ 0
  flash_exp(y.data(), x.data(), n);
  double worst = 0.0;
  for (int i = 0; i < n; i++) {
    const double e = std::exp(double(x[i]));
    const double ulp = std::ldexp(1.0, std::ilogb(e) - 23);
    worst = std::max(worst, std::fabs(y[i] - e) / ulp);
  }
  CHECK(worst <= 2.0);
  MESSAGE(fmt::format("packet exp: max error {:.2f} ulp over [-87.3, 0]", worst));
  std::vector<float> tail = {-std::numeric_limits<float>::infinity(), -1e30f, -200.0f, -88.0f, -87.34f, 0.0f,
                             1.0f, 10.0f, -1.0f, -10.0f, -50.0f, -80.0f, -87.0f, 0.5f, -0.5f, 88.0f};
  std::vector<float> ty(16);
  flash_exp(ty.data(), tail.data(), 16);
  for (int i = 0; i < 5; i++) CHECK(ty[i] == 0.0f);
  CHECK(ty[5] == 1.0f);
  for (int i = 6; i < 16; i++) CHECK(ty[i] == doctest::Approx(std::exp(double(tail[i]))).epsilon(3e-7));
}

// ---------------------------------------------------------------------------------------------
// h) configuration errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("flash: configuration errors (attention dropout, impl values)") {
  const auto message_of = construction_error;
  AttentionSpec s = make_spec(16, 4, 2, true);
  s.type = "flash";
  CHECK(message_of(s).empty());
  CHECK_FALSE(attention_registry().at("flash").info.dropout);
  s.dropout = 0.1f;
  CHECK(check_attention_spec(s).rfind("dropout:", 0) == 0);
  CHECK(message_of(s).find("'flash' attention never stores the attention weights") != std::string::npos);
  s.type = "scaled_dot_product";
  s.impl = AttnImpl::flash;
  CHECK(check_attention_spec(s).rfind("impl:", 0) == 0);
  s.impl = AttnImpl::automatic;
  CHECK(check_attention_spec(s).empty());  // auto falls back to naive while dropout is on
  std::string bad_impl;  // an unknown impl name is refused where it becomes an AttnImpl
  try {
    attn_impl("fast");
  } catch (const UserError& e) {
    bad_impl = e.what();
  }
  CHECK(bad_impl.rfind("impl:", 0) == 0);

  // from a config file: the slot's key is named
  const std::string data = "data: {task: text, path: x.txt}\n";
  auto config_error = [&](const std::string& yaml) -> std::string {
    try {
      load_config_text(yaml, "cfg.yaml");
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(config_error("model: {attention: {type: flash}}\n" + data).empty());
  const std::string e1 = config_error("model: {attention: {type: flash, dropout: 0.1}}\n" + data);
  CHECK(e1.find("key 'model.attention.dropout'") != std::string::npos);
  const std::string e2 = config_error("model: {attention: {impl: flash, dropout: 0.1}}\n" + data);
  CHECK(e2.find("key 'model.attention.impl'") != std::string::npos);
  MESSAGE(e1);
  MESSAGE(e2);
}
