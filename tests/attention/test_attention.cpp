// Tests of the scaled_dot_product attention module (src/attention/scaled_dot_product.cpp):
//   a) forward and backward against PyTorch float64 references (tests/fixtures/attention,
//      written by scripts/make_attention_fixtures.py);
//   b) finite-difference gradient checks of every input and parameter;
//   c) causality, d) key padding and fully masked rows, e) configuration errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "attention/attention.h"
#include "core/error.h"
#include "core/gemm_bf16.h"
#include "core/npy.h"
#include "core/param.h"
#include "core/rng.h"
#include "ops/gradcheck.h"
#include "attention/harness.h"

namespace fs = std::filesystem;
using namespace attnlab;
using attnlab::test::dot_double;
using attnlab::test::random_normal;
using namespace attnlab::test;


// ---------------------------------------------------------------------------------------------
// a) PyTorch fixtures
// ---------------------------------------------------------------------------------------------

// Error budget: an a-priori model of float32 rounding, not a sample of it. The references are
// float64 autograd results from the same float32 inputs. scripts/fixture_error_model.py runs
// each reference computation, forward and backward, once more in float64 with an error estimate
// carried beside every value, and meta.json records for every reference tensor T
//     fp32_err_model.coef[T] = max over T's entries of that estimate, in units of u = 2^-24.
// The model (first order; Higham & Mary 2019, "A new approach to probabilistic rounding error
// analysis", SIAM J. Sci. Comput. 41(5)): every float32 operation rounds with a relative error
// of at most u, the rounding errors of different operations are independent and mean zero, so
// they add in quadrature, and
//   - a sum of n terms t_i (a reduction, an entry of a matrix product, softmax's denominator)
//     contributes sqrt(n) · u · Σ|t_i|, whatever the summation order (sequential, blocked,
//     pairwise, with or without FMA): each of its <= n roundings is at most u times a partial
//     sum, and every partial sum of any order is at most Σ|t_i|;
//   - the errors already in the terms pass through with the derivative (|a|·err(b) + err(a)·|b|
//     for a product, P_j (err(x_j) - Σ_k P_k err(x_k)) through softmax, ...);
//   - exp, tanh, sqrt, rsqrt: k_func = 4 ulps of their result; constants the implementation
//     computes itself (RoPE cos/sin, ALiBi bias, an inexact scale): k_const (1 + |value|) ulps.
// It depends only on the magnitudes of the terms of every sum, not on the order any
// implementation sums in: a tensor that is 0 in exact arithmetic (grad_b_k: the softmax is
// invariant to the per-row shift q·b_k) gets the estimate of the cancelling sums that produce
// it, so its float32 noise (torch's or ours) is covered however lucky or unlucky the order is.
// The check is
//     max |ours - ref| <= kModelC · u · coef[T].
// kModelC = 3: the estimate is a standard deviation-like scale whose sums use Σ|t_i| for every
// partial sum (an upper bound, so it over-states random rounding); a 3x margin covers the tail
// of the max over a tensor's entries and an implementation that associates the same sums
// differently (prefix sums in linear attention, a fused softmax backward). Measured over the
// 498 reference tensors, for PyTorch's own float32 run and for ours with OpenBLAS (both
// kernels) and Eigen GEMMs: max|error| / (u · coef) is at most 0.66 (grad_b_o of
// differential_gqa_causal, a plain column sum, where ours and torch's agree), median 0.05.
// The worst-case model (n · u · Σ|t_i| added linearly) was tried and is ~1000x above the errors
// seen, too loose to tell a 1e-3 relative bug from rounding.
// Sensitivity: the loop below also mutates every reference tensor that is not 0 within rounding
// (max|ref| > bound) by kMutation · max|ref| at its largest entry, and requires our unmodified
// output to FAIL against the mutated copy; the summary reports the smallest ratio of that
// mutation to the bound (a real bug -- a wrong mask, scale, head mapping or a missing gradient
// term -- is O(0.1) relative, two orders above a 1e-3 mutation).
constexpr double kUnitRoundoff = 5.9604644775390625e-08;  // 2^-24, float32 unit roundoff
constexpr double kBf16UnitRoundoff = 0.00390625;  // 2^-8, bfloat16 unit roundoff (8 significant bits)
constexpr double kModelC = 3.0;
constexpr double kMutation = 1e-3;

// Every case directory under tests/fixtures/attention is checked here, whatever its variant:
// meta.json names the type and options, the module's parameters come from <name>.npy and the
// references are out, dx_q, dx_kv (cross-attention) and grad_<name> for every parameter.
namespace {
// bf16 = none: the float32 check. Otherwise every GEMM takes bf16 inputs, as in train.precision:
// bf16 with kernel `bf16`, and the bound is the same first-order model with bf16's unit roundoff
// u = 2^-8 in place of 2^-24 for every rounding. That over-states the error (only the GEMMs'
// inputs are rounded to bf16; everything else is float32), and it covers them: a product term
// a·b of rounded inputs is off by at most 2u|a·b|, and the model allots kModelC·sqrt(n)·u·Σ|t|
// to a sum of n terms, at least 2u·Σ|t| for every n >= 1; their errors then travel through the
// same derivatives. With a bound 2^16 times looser, the mutation check is skipped, and instead
// at least one tensor must be farther from the reference than the float32 bound allows (or bf16
// was not in effect).
// impl flash: only the scaled_dot_product cases, every one through the flash kernel (in bf16, its
// tile products take bf16 inputs: flash_bf16.cpp), whatever their length.
void check_fixtures(Bf16Kernel bf16, AttnImpl impl = AttnImpl::automatic) {
  const GemmBf16Scope products(bf16);
  const double u = bf16 == Bf16Kernel::none ? kUnitRoundoff : kBf16UnitRoundoff;
  int beyond_fp32 = 0;  // tensors whose error exceeds the float32 bound
  int ran = 0;          // cases checked
  const fs::path root = fs::path(ATTNLAB_FIXTURE_DIR) / "attention";
  REQUIRE_MESSAGE(fs::is_directory(root), "missing " << root.string()
                                                     << " (run scripts/make_attention_fixtures.py)");
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  REQUIRE(cases.size() >= 8);

  std::string summary = fmt::format(
      "max abs error vs the fp64 reference (bound = {} u coef):\n{:<26} {:<14} {:>10} {:>10} {:>10} "
      "{:>6} {:>8} {:>9}\n",
      kModelC, "case", "tensor", "ours", "torch_fp32", "bound", "ratio", "max|ref|", "bnd/|ref|");
  double worst_ratio = 0.0, worst_torch_ratio = 0.0, worst_rel_bound = 0.0;
  double min_mutation_margin = 1e300;
  std::string worst_at, loosest_at, mutation_at;
  int mutated = 0, zero_tensors = 0;
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    INFO("fixture case: " << name);
    std::ifstream mf(dir / "meta.json");
    REQUIRE(mf.good());
    const nlohmann::json meta = nlohmann::json::parse(mf);
    REQUIRE_MESSAGE(meta.contains("fp32_err_model"),
                    "meta.json has no fp32_err_model: run the case's scripts/make_*_fixtures.py "
                    "--error-model-only");
    const int B = meta.at("B"), Tq = meta.at("Tq"), Tk = meta.at("Tk"), C = meta.at("C");
    const int H = meta.at("H"), Hkv = meta.at("Hkv");
    const bool self_attn = meta.at("self_attention");
    auto load = [&](const std::string& f) { return read_npy((dir / (f + ".npy")).string()); };

    // the spec: shapes and mask, plus any variant option the case sets (type, window, ...)
    AttentionSpec spec = make_spec(C, H, Hkv, meta.at("causal").get<bool>(), meta.at("scale").get<std::string>());
    spec.bias = meta.at("bias").get<bool>();
    spec.type = meta.value("type", std::string("scaled_dot_product"));
    if (impl == AttnImpl::flash && spec.type != "scaled_dot_product") continue;
    spec.impl = impl;
    ++ran;
    spec.window = meta.value("window", 0);
    spec.positions = attn_positions(meta.value("positions", std::string("none")));
    spec.rope_base = meta.value("rope_base", 10000.0f);
    spec.score = attn_score(meta.value("score", std::string("general")));
    spec.layer_index = meta.value("layer_index", 0);
    spec.max_len = std::max(Tq, Tk);
    Harness h(spec, 1, /*weight_std=*/0.0f);
    // every parameter the module registers is overwritten from "<name>.npy" (name without "attn.")
    std::vector<std::string> pnames;
    for (const Param& p : h.store.all()) pnames.push_back(p.name.substr(5));
    for (const std::string& pn : pnames) {
      Param& p = h.param(pn);
      const NpyArray a = load(pn);
      REQUIRE(a.shape == std::vector<int64_t>(p.shape.begin(), p.shape.end()));
      p.w = a.to_float();
    }

    const NpyArray xq_a = load("x_q");
    REQUIRE(xq_a.shape == std::vector<int64_t>{B, Tq, C});
    const std::vector<float> x_q = xq_a.to_float();
    std::vector<float> x_kv;
    if (!self_attn) {
      const NpyArray a = load("x_kv");
      REQUIRE(a.shape == std::vector<int64_t>{B, Tk, C});
      x_kv = a.to_float();
    }
    const std::vector<float> dout = load("dout").to_float();
    REQUIRE(dout.size() == size_t(B) * Tq * C);
    std::vector<unsigned char> keep;
    AttnMask mask;
    if (meta.at("key_padding").get<bool>()) {
      const NpyArray k = load("key_keep");
      REQUIRE(k.shape == std::vector<int64_t>{B, Tk});
      for (double v : k.data) keep.push_back(v != 0.0 ? 1 : 0);
      mask.key_keep = keep.data();
    }

    std::vector<float> out(size_t(B) * Tq * C, 0.0f);
    h.attn->forward(out.data(), x_q.data(), self_attn ? x_q.data() : x_kv.data(), B, Tq, Tk, mask,
                    /*train=*/false, nullptr);
    h.store.zero_grad();
    std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
    // self-attention: one buffer for both paths, as the model passes it
    h.attn->backward(dx_q.data(), self_attn ? dx_q.data() : dx_kv.data(), dout.data());

    std::vector<std::pair<std::string, const std::vector<float>*>> ours = {{"out", &out},
                                                                           {"dx_q", &dx_q}};
    if (!self_attn) ours.push_back({"dx_kv", &dx_kv});
    for (const std::string& pn : pnames) ours.push_back({"grad_" + pn, &h.param(pn).g});
    REQUIRE(meta.at("tensors").size() == ours.size());

    for (const auto& [tname, ptr] : ours) {
      INFO("tensor: " << tname);
      const NpyArray ref = load(tname);
      REQUIRE(ref.numel() == ptr->size());
      const double err = max_abs_diff(*ptr, ref.data);
      const double torch_err = meta.at("torch_fp32_err").at(tname).get<double>();
      const double coef = meta.at("fp32_err_model").at("coef").at(tname).get<double>();
      const double ref_max = max_abs(ref.data);
      const double bound = kModelC * u * coef;
      beyond_fp32 += err > kModelC * kUnitRoundoff * coef;
      summary += fmt::format("{:<26} {:<14} {:>10.3e} {:>10.3e} {:>10.3e} {:>6.3f} {:>8.3g} {:>9.2e}\n",
                             name, tname, err, torch_err, bound, err / bound, ref_max,
                             bound / std::max(ref_max, 1e-300));
      if (err / bound > worst_ratio) {
        worst_ratio = err / bound;
        worst_at = name + " " + tname;
      }
      worst_torch_ratio = std::max(worst_torch_ratio, torch_err / bound);
      CHECK_MESSAGE(err <= bound, fmt::format("{} {}: max abs error {:.3e} > bound {:.3e} "
                                              "({} u x coef {}; torch fp32 error {:.3e})",
                                              name, tname, err, bound, kModelC, coef, torch_err));
      // sensitivity: the same comparison against a reference moved by kMutation of its scale
      if (bf16 == Bf16Kernel::none && ref_max > bound) {
        std::vector<double> moved = ref.data;
        const size_t at = size_t(std::max_element(moved.begin(), moved.end(),
                                                  [](double x, double y) { return std::abs(x) < std::abs(y); }) -
                                 moved.begin());
        moved[at] += kMutation * ref_max;
        const double err_moved = max_abs_diff(*ptr, moved);
        CHECK_MESSAGE(err_moved > bound,
                      fmt::format("{} {}: a {} relative change of the reference goes unnoticed "
                                  "(error {:.3e} <= bound {:.3e})", name, tname, kMutation, err_moved, bound));
        ++mutated;
        if (kMutation * ref_max / bound < min_mutation_margin) {
          min_mutation_margin = kMutation * ref_max / bound;
          mutation_at = name + " " + tname;
        }
        if (bound / ref_max > worst_rel_bound) {
          worst_rel_bound = bound / ref_max;
          loosest_at = name + " " + tname;
        }
      } else if (ref_max <= bound) {
        ++zero_tensors;
      }
    }
  }
  summary += fmt::format(
      "worst error / bound = {:.3f} ({}); torch fp32's worst = {:.3f}\n"
      "loosest bound / max|ref| = {:.2e} ({})\n"
      "mutation check: {} tensors moved by {} x max|ref|, all caught; smallest mutation / bound = "
      "{:.2f} ({}); {} tensors are 0 within rounding (max|ref| <= bound) and not mutated",
      worst_ratio, worst_at, worst_torch_ratio, worst_rel_bound, loosest_at, mutated, kMutation,
      min_mutation_margin, mutation_at, zero_tensors);
  REQUIRE_MESSAGE(ran >= 8, "only " << ran << " fixture cases ran");
  if (bf16 != Bf16Kernel::none) {
    summary += fmt::format("\nbf16 GEMM inputs ({} kernel): {} tensors are farther from the reference than the "
                           "float32 bound", bf16_kernel_name(bf16), beyond_fp32);
    CHECK_MESSAGE(beyond_fp32 > 0, "no tensor moved beyond the float32 bound: bf16 products not in effect?");
  }
  MESSAGE(summary);
}
}  // namespace

TEST_CASE("attention fixtures: forward/backward match PyTorch fp64 references, every variant") {
  check_fixtures(Bf16Kernel::none);
}

// train.precision: bf16: every variant's forward and backward (every input and parameter
// gradient) within the bf16 error model, with each bf16 kernel this machine has
TEST_CASE("attention fixtures in bf16: every variant within the bf16 error model, each kernel") {
  const std::vector<Bf16Kernel> kernels = bf16_kernels_supported();
  for (Bf16Kernel k : kernels) {
    INFO("bf16 kernel " << std::string(bf16_kernel_name(k)));
    check_fixtures(k);
  }
  if (kernels.empty()) MESSAGE("SKIPPED: this machine has no bf16 kernel (AMX-BF16 or AVX512-BF16)");
}

// The scaled_dot_product cases through the flash kernel: fp32 within the float32 model (with its
// mutation check), and with each bf16 kernel (the kernel's own bf16 tile products) within the
// bf16 one
TEST_CASE("attention fixtures through the flash kernel: fp32 and each bf16 kernel within their error models") {
  check_fixtures(Bf16Kernel::none, AttnImpl::flash);
  for (Bf16Kernel k : bf16_kernels_supported()) {
    INFO("bf16 kernel " << std::string(bf16_kernel_name(k)));
    check_fixtures(k, AttnImpl::flash);
  }
}

// ---------------------------------------------------------------------------------------------
// b) finite-difference gradient checks
// ---------------------------------------------------------------------------------------------


TEST_CASE("scaled_dot_product: gradcheck, causal/no mask x MHA/GQA/MQA x self/cross") {
  // small shapes: C = 8, H = 4 (head dim 2); MHA Hkv = 4, GQA Hkv = 2, MQA Hkv = 1
  double worst = 0.0;
  uint64_t seed = 100;
  for (bool causal : {true, false})
    for (int Hkv : {4, 2, 1})
      for (bool self_attn : {true, false}) {
        GcConfig c;
        c.label = fmt::format("{} {} {}", causal ? "causal" : "nomask",
                              Hkv == 4 ? "MHA" : Hkv == 2 ? "GQA" : "MQA", self_attn ? "self" : "cross");
        c.B = 2;
        c.Tq = self_attn ? 4 : 3;
        c.Tk = self_attn ? 4 : 5;  // cross + causal: a prefix continuation (query i sees j <= i+2)
        c.C = 8;
        c.H = 4;
        c.Hkv = Hkv;
        c.causal = causal;
        c.self_attn = self_attn;
        worst = std::max(worst, run_gradcheck(c, seed++));
      }
  MESSAGE(fmt::format("gradcheck worst max rel error over the 12 configurations: {:.3e}", worst));
}

TEST_CASE("scaled_dot_product: gradcheck with key padding, fully masked rows, scale, dropout, no bias") {
  std::vector<GcConfig> cs;
  // key padding: row 0 none, row 1 the last 2 keys
  cs.push_back({"padding self MHA", 2, 4, 4, 8, 4, 4, false, true, {{}, {2, 3}}});
  cs.push_back({"padding+causal cross GQA", 2, 3, 5, 8, 4, 2, true, false, {{1}, {3, 4}}});
  // fully masked query rows: causal with Tq > Tk (queries 0, 1 see no key) and a batch row whose
  // keys are all padding; their output is b_o and they pass no gradient to the attention
  cs.push_back({"causal Tq>Tk (empty rows) cross MHA", 2, 4, 2, 8, 4, 4, true, false, {}});
  cs.push_back({"all keys padded in row 1, cross MQA", 2, 3, 4, 8, 4, 1, false, false, {{0}, {0, 1, 2, 3}}});
  GcConfig none{"scale none causal self MHA", 2, 4, 4, 8, 2, 2, true, true, {}};
  none.scale = "none";
  cs.push_back(none);
  GcConfig num{"scale 0.3 nomask cross GQA", 2, 3, 4, 8, 4, 2, false, false, {}};
  num.scale = "0.3";
  cs.push_back(num);
  GcConfig drop{"dropout 0.3 causal self GQA", 2, 4, 4, 8, 4, 2, true, true, {}};
  drop.dropout = 0.3f;
  cs.push_back(drop);
  GcConfig nob{"no bias causal cross MHA", 2, 3, 4, 8, 4, 4, true, false, {}};
  nob.bias = false;
  cs.push_back(nob);
  double worst = 0.0;
  uint64_t seed = 200;
  for (const auto& c : cs) worst = std::max(worst, run_gradcheck(c, seed++));
  MESSAGE(fmt::format("gradcheck worst max rel error over the special configurations: {:.3e}", worst));
}

// ---------------------------------------------------------------------------------------------
// c) causality
// ---------------------------------------------------------------------------------------------

TEST_CASE("scaled_dot_product: causal self-attention ignores the future, exactly") {
  const int B = 2, T = 6, C = 8;
  for (int Hkv : {2, 1}) {
    INFO("n_kv_heads = " << Hkv);
    Harness h(make_spec(C, 2, Hkv, true), 7);
    Rng rng(8);
    const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
    std::vector<float> base(x.size()), out(x.size());
    h.attn->forward(base.data(), x.data(), x.data(), B, T, T, {}, false, nullptr);
    for (int j = 0; j < T; j++) {
      INFO("changed position j = " << j);
      std::vector<float> x2 = x;
      for (int c = 0; c < C; c++) x2[(size_t(1) * T + j) * C + c] += 0.7f * rng.normal() + 0.3f;
      h.attn->forward(out.data(), x2.data(), x2.data(), B, T, T, {}, false, nullptr);
      for (int i = 0; i < T; i++) {
        INFO("position i = " << i);
        // batch row 0 was not touched at all
        CHECK(rows_equal(&out[size_t(i) * C], &base[size_t(i) * C], C));
        const float* o1 = &out[(size_t(1) * T + i) * C];
        const float* b1 = &base[(size_t(1) * T + i) * C];
        if (i < j) CHECK(rows_equal(o1, b1, C));  // the past does not see position j
        else CHECK(row_diff(o1, b1, C) > 1e-5);    // position j and later do
      }
    }
  }
}

TEST_CASE("scaled_dot_product: causal prefix continuation (Tq < Tk) aligns the mask to the end") {
  // 3 queries over 6 keys: query i is position i+3 and sees keys j <= i+3
  const int B = 1, Tq = 3, Tk = 6, C = 8;
  Harness h(make_spec(C, 4, 2, true), 11);
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
  // the attention weights say the same: zero exactly where masked, rows summing to 1
  h.attn->keep_weights(true);
  h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, {}, false, nullptr);
  const std::vector<float> w = h.attn->attention_weights();
  REQUIRE(w.size() == size_t(B) * 4 * Tq * Tk);
  for (int hd = 0; hd < 4; hd++)
    for (int i = 0; i < Tq; i++) {
      double sum = 0.0;
      for (int j = 0; j < Tk; j++) {
        const float p = w[(size_t(hd) * Tq + i) * Tk + j];
        if (j > i + (Tk - Tq)) CHECK(p == 0.0f);
        else CHECK(p > 0.0f);
        sum += p;
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("scaled_dot_product: the registry's causal and bidirectional types force the mask") {
  ParamStore store;
  Rng rng(1);
  AttentionSpec s = make_spec(8, 2, 0, false);
  s.type = "causal";
  CHECK(make_attention(s, store, rng)->spec().causal);
  ParamStore store2;
  s.type = "bidirectional";
  s.causal = true;
  CHECK_FALSE(make_attention(s, store2, rng)->spec().causal);
}

// ---------------------------------------------------------------------------------------------
// d) key padding and fully masked rows
// ---------------------------------------------------------------------------------------------

TEST_CASE("scaled_dot_product: padded keys do not influence the output or receive gradient") {
  const int B = 3, Tq = 4, Tk = 6, C = 8;
  const std::vector<std::vector<int>> pads = {{}, {3, 4, 5}, {0, 2}};
  const std::vector<unsigned char> keep = keep_mask(B, Tk, pads);
  AttnMask mask;
  mask.key_keep = keep.data();
  for (bool causal : {false, true}) {
    INFO("causal = " << causal);
    Harness h(make_spec(C, 4, 2, causal), 21);
    Rng rng(22);
    const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
    std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
    std::vector<float> base(x_q.size()), out(x_q.size());
    h.attn->forward(base.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);

    // cross-attention: new values at every padded key change nothing, bit for bit
    std::vector<float> x2 = x_kv;
    for (int b = 0; b < B; b++)
      for (int j : pads[b])
        for (int c = 0; c < C; c++) x2[(size_t(b) * Tk + j) * C + c] = 5.0f * rng.normal();
    h.attn->forward(out.data(), x_q.data(), x2.data(), B, Tq, Tk, mask, false, nullptr);
    CHECK(out == base);

    // ... and they get exactly zero gradient, while kept keys get some
    h.store.zero_grad();
    std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
    const std::vector<float> U = random_normal(out.size(), rng);
    h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
    for (int b = 0; b < B; b++)
      for (int j = 0; j < Tk; j++) {
        INFO("b = " << b << ", key j = " << j);
        const float* g = &dx_kv[(size_t(b) * Tk + j) * C];
        const bool padded = keep[size_t(b) * Tk + j] == 0;
        const bool seen = !causal || j <= (Tq - 1) + (Tk - Tq);  // the last query sees every key
        if (padded) CHECK(std::all_of(g, g + C, [](float v) { return v == 0.0f; }));
        else if (seen) CHECK(std::any_of(g, g + C, [](float v) { return v != 0.0f; }));
      }

    // weights: exactly zero at padded keys
    h.attn->keep_weights(true);
    h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, mask, false, nullptr);
    const std::vector<float> w = h.attn->attention_weights();
    REQUIRE(w.size() == size_t(B) * 4 * Tq * Tk);
    for (int b = 0; b < B; b++)
      for (int hd = 0; hd < 4; hd++)
        for (int i = 0; i < Tq; i++)
          for (int j : pads[b]) CHECK(w[((size_t(b) * 4 + hd) * Tq + i) * Tk + j] == 0.0f);
  }
}

TEST_CASE("scaled_dot_product: self-attention with key padding: a padded position only affects itself") {
  const int B = 2, T = 5, C = 8;
  const std::vector<std::vector<int>> pads = {{}, {2, 3, 4}};  // last 3 keys of row 1 padded
  const std::vector<unsigned char> keep = keep_mask(B, T, pads);
  AttnMask mask;
  mask.key_keep = keep.data();
  Harness h(make_spec(C, 2, 2, false), 31);
  Rng rng(32);
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
  std::vector<float> base(x.size()), out(x.size());
  h.attn->forward(base.data(), x.data(), x.data(), B, T, T, mask, false, nullptr);
  for (int j : pads[1]) {
    INFO("changed padded position j = " << j);
    std::vector<float> x2 = x;
    for (int c = 0; c < C; c++) x2[(size_t(1) * T + j) * C + c] += 1.0f + rng.normal();
    h.attn->forward(out.data(), x2.data(), x2.data(), B, T, T, mask, false, nullptr);
    for (int b = 0; b < B; b++)
      for (int i = 0; i < T; i++) {
        INFO("b = " << b << ", i = " << i);
        const float* o = &out[(size_t(b) * T + i) * C];
        const float* r = &base[(size_t(b) * T + i) * C];
        if (b == 1 && i == j) CHECK(row_diff(o, r, C) > 1e-5);  // its own query changed
        else CHECK(rows_equal(o, r, C));
      }
  }
}

TEST_CASE("scaled_dot_product: a query with no visible key outputs exactly b_o") {
  // causal with Tq > Tk: query i sees keys j <= i - 2, so queries 0 and 1 see nothing;
  // batch row 1 additionally has every key padded
  const int B = 2, Tq = 4, Tk = 2, C = 8;
  const std::vector<unsigned char> keep = keep_mask(B, Tk, {{}, {0, 1}});
  AttnMask mask;
  mask.key_keep = keep.data();
  Harness h(make_spec(C, 4, 4, true), 41);
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
      for (int c = 0; c < C; c++) CHECK(std::isfinite(o[c]));
      const bool empty = b == 1 || i < 2;
      if (empty) CHECK(rows_equal(o, b_o.data(), C));
      else CHECK(row_diff(o, b_o.data(), C) > 1e-5);
    }
  // the backward stays finite, and the empty rows send nothing to the queries' projections
  h.store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  const std::vector<float> U = random_normal(out.size(), rng);
  h.attn->backward(dx_q.data(), dx_kv.data(), U.data());
  for (float v : dx_q) REQUIRE(std::isfinite(v));
  for (float v : dx_kv) REQUIRE(std::isfinite(v));
  for (int i = 0; i < Tq; i++) {
    const float* g = &dx_q[size_t(i) * C];  // batch row 0
    if (i < 2) CHECK(std::all_of(g, g + C, [](float v) { return v == 0.0f; }));
    const float* g1 = &dx_q[(size_t(1) * Tq + i) * C];  // batch row 1: all keys padded
    CHECK(std::all_of(g1, g1 + C, [](float v) { return v == 0.0f; }));
  }
}

// ---------------------------------------------------------------------------------------------
// parameters and the backward contract
// ---------------------------------------------------------------------------------------------

TEST_CASE("scaled_dot_product: parameters are registered under the spec's name with GQA shapes") {
  ParamStore store;
  Rng rng(3);
  AttentionSpec s = make_spec(12, 6, 2, true);  // head dim 2, K/V width 4
  s.name = "blocks.3.attn";
  make_attention(s, store, rng);
  const std::vector<std::pair<std::string, std::vector<int>>> expect = {
      {"blocks.3.attn.w_q", {12, 12}}, {"blocks.3.attn.w_k", {4, 12}}, {"blocks.3.attn.w_v", {4, 12}},
      {"blocks.3.attn.w_o", {12, 12}}, {"blocks.3.attn.b_q", {12}},    {"blocks.3.attn.b_k", {4}},
      {"blocks.3.attn.b_v", {4}},      {"blocks.3.attn.b_o", {12}}};
  REQUIRE(store.all().size() == expect.size());
  for (const auto& [name, shape] : expect) {
    INFO(name);
    Param* p = store.find(name);
    REQUIRE(p != nullptr);
    CHECK(p->shape == shape);
  }
  CHECK_FALSE(store.find("blocks.3.attn.w_q")->w == std::vector<float>(144, 0.0f));  // initialised

  ParamStore store2;
  s.bias = false;
  make_attention(s, store2, rng);
  CHECK(store2.all().size() == 4);
  CHECK(store2.find("blocks.3.attn.b_q") == nullptr);
}

TEST_CASE("scaled_dot_product: backward adds into dx and parameter gradients") {
  const int B = 2, Tq = 3, Tk = 4, C = 8;
  Harness h(make_spec(C, 4, 2, true), 51);
  Rng rng(52);
  const std::vector<float> x_q = random_normal(size_t(B) * Tq * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(B) * Tk * C, rng);
  const std::vector<float> U = random_normal(x_q.size(), rng);
  std::vector<float> out(x_q.size());
  h.attn->forward(out.data(), x_q.data(), x_kv.data(), B, Tq, Tk, {}, false, nullptr);
  h.store.zero_grad();
  std::vector<float> dq1(x_q.size(), 0.0f), dkv1(x_kv.size(), 0.0f);
  h.attn->backward(dq1.data(), dkv1.data(), U.data());
  const std::vector<float> gq1 = h.param("w_q").g, gk1 = h.param("b_k").g;
  // a second backward on top of a pre-filled buffer adds the same amounts again
  std::vector<float> dq2(x_q.size(), 1.0f), dkv2(x_kv.size(), -2.0f);
  h.attn->backward(dq2.data(), dkv2.data(), U.data());
  for (size_t i = 0; i < dq1.size(); i++) CHECK(dq2[i] == doctest::Approx(1.0f + dq1[i]).epsilon(1e-5));
  for (size_t i = 0; i < dkv1.size(); i++)
    CHECK(dkv2[i] == doctest::Approx(-2.0f + dkv1[i]).epsilon(1e-5));
  const std::vector<float>& gq2 = h.param("w_q").g;
  for (size_t i = 0; i < gq1.size(); i++) CHECK(gq2[i] == doctest::Approx(2.0f * gq1[i]).epsilon(1e-5));
  const std::vector<float>& gk2 = h.param("b_k").g;
  for (size_t i = 0; i < gk1.size(); i++)
    CHECK(gk2[i] == doctest::Approx(2.0f * gk1[i]).epsilon(1e-5).scale(1e-6));
}

// ---------------------------------------------------------------------------------------------
// e) configuration errors
// ---------------------------------------------------------------------------------------------

TEST_CASE("scaled_dot_product: configuration errors are UserErrors") {
  auto build = [](AttentionSpec s) {
    ParamStore store;
    Rng rng(1);
    make_attention(s, store, rng);
  };
  auto message_of = [&](const AttentionSpec& s) -> std::string {
    try {
      build(s);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };

  AttentionSpec s = make_spec(16, 4, 0, true);
  CHECK_NOTHROW(build(s));

  SUBCASE("unknown attention type names the known ones") {
    s.type = "no_such_attention";
    CHECK_THROWS_AS(build(s), UserError);
    const std::string msg = message_of(s);
    CHECK(msg.find("no_such_attention") != std::string::npos);
    CHECK(msg.find("scaled_dot_product") != std::string::npos);
  }
  SUBCASE("n_heads must divide d_model") {
    s.n_heads = 3;
    CHECK_THROWS_AS(build(s), UserError);
    s.n_heads = 0;
    CHECK_THROWS_AS(build(s), UserError);
    s.n_heads = 4;
    s.d_model = 0;
    CHECK_THROWS_AS(build(s), UserError);
  }
  SUBCASE("GQA: n_kv_heads must divide n_heads") {
    s.n_kv_heads = 3;
    CHECK_THROWS_AS(build(s), UserError);
    s.n_kv_heads = 8;  // more KV heads than query heads
    CHECK_THROWS_AS(build(s), UserError);
    s.n_kv_heads = 2;
    CHECK_NOTHROW(build(s));
    s.n_kv_heads = 1;
    CHECK_NOTHROW(build(s));
  }
  SUBCASE("bad scale") {
    for (const char* bad : {"abc", "-1", "0", "1.5x", "", "inf", "nan"}) {
      INFO("scale = '" << bad << "'");
      s.scale = bad;
      CHECK_THROWS_AS(build(s), UserError);
    }
    s.scale = "0.25";
    CHECK_NOTHROW(build(s));
    CHECK(attention_scale(s, 4) == 0.25f);
    s.scale = "none";
    CHECK(attention_scale(s, 4) == 1.0f);
    s.scale = "inv_sqrt_dk";
    CHECK(attention_scale(s, 4) == 0.5f);
  }
}

// ---------------------------------------------------------------------------------------------
// f) options of the attention zoo on scaled_dot_product: sliding window, RoPE, ALiBi, KV cache
// ---------------------------------------------------------------------------------------------

TEST_CASE("scaled_dot_product options: gradcheck, window/rope/alibi x causal/no mask x MHA/GQA") {
  // C = 8, H = 2 (head dim 4: two RoPE pairs), MHA Hkv = 2, GQA Hkv = 1; T = 5 with window 2
  double worst = 0.0;
  uint64_t seed = 300;
  for (const std::string opt : {"window", "rope", "alibi"})
    for (bool causal : {true, false})
      for (int Hkv : {2, 1}) {
        GcConfig c;
        c.label = fmt::format("{} {} {} self", opt, causal ? "causal" : "nomask", Hkv == 2 ? "MHA" : "GQA");
        c.B = 2;
        c.Tq = c.Tk = 5;
        c.C = 8;
        c.H = 2;
        c.Hkv = Hkv;
        c.causal = causal;
        c.self_attn = true;
        if (opt == "window") c.window = 2;
        else c.positions = opt;
        worst = std::max(worst, run_gradcheck(c, seed++));
      }
  // combinations, padding, and a cross-attention prefix continuation (Tq < Tk)
  std::vector<GcConfig> cs;
  GcConfig a{"window 3 + padding nomask self GQA", 2, 5, 5, 8, 2, 1, false, true, {{}, {1, 4}}};
  a.window = 3;
  cs.push_back(a);
  GcConfig b{"rope + window 2 causal cross prefix GQA", 2, 3, 5, 8, 2, 1, true, false, {}};
  b.window = 2;
  b.positions = "rope";
  cs.push_back(b);
  GcConfig d{"alibi + window 3 + padding causal cross prefix MHA", 2, 3, 5, 8, 2, 2, true, false, {{0}, {}}};
  d.window = 3;
  d.positions = "alibi";
  cs.push_back(d);
  for (const auto& c : cs) worst = std::max(worst, run_gradcheck(c, seed++));
  MESSAGE(fmt::format("gradcheck worst max rel error over the window/rope/alibi configurations: {:.3e}", worst));
}

TEST_CASE("scaled_dot_product options: the KV cache reproduces the full forward") {
  struct Cfg {
    std::string label;
    int Hkv, window;
    std::string positions;
  };
  const std::vector<Cfg> cfgs = {{"plain MHA", 4, 0, "none"},      {"GQA", 2, 0, "none"},
                                 {"MQA", 1, 0, "none"},            {"window 3", 4, 3, "none"},
                                 {"rope", 4, 0, "rope"},           {"rope GQA window 4", 2, 4, "rope"},
                                 {"alibi", 4, 0, "alibi"},         {"alibi GQA window 2", 2, 2, "alibi"}};
  double worst = 0.0;
  std::string line = "cache vs full forward, max |diff|:";
  uint64_t seed = 400;
  for (const Cfg& c : cfgs) {
    INFO(c.label);
    AttentionSpec s = make_spec(16, 4, c.Hkv, true);
    s.window = c.window;
    s.positions = attn_positions(c.positions);
    s.max_len = 11;
    const double d = cache_vs_full(s, 2, 11, seed++);
    line += fmt::format(" {} {:.1e};", c.label, d);
    worst = std::max(worst, d);
    CHECK(d <= 1e-5);
  }
  MESSAGE(line);
  MESSAGE(fmt::format("cache vs full: worst {:.2e}", worst));
}

TEST_CASE("scaled_dot_product options: the KV cache checks its use and reports cached weights") {
  AttentionSpec s = make_spec(8, 2, 1, true);
  s.positions = AttnPositions::rope;
  Harness h(s, 61);
  Rng rng(62);
  const int B = 2, T = 5, C = 8;
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
  std::vector<float> out(x.size());
  // forward_cached before cache_reset
  CHECK_THROWS_AS(h.attn->forward_cached(out.data(), x.data(), B, 1), UserError);
  h.attn->cache_reset(B, 3);
  CHECK(h.attn->cache_len() == 0);
  // a different batch than the cache was reset for
  CHECK_THROWS_AS(h.attn->forward_cached(out.data(), x.data(), 1, 1), UserError);
  CHECK_THROWS_AS(h.attn->forward_cached(out.data(), x.data(), B, 4), UserError);  // over capacity
  // one token, then two: 3 = capacity
  std::vector<float> step(size_t(B) * 2 * C), o(step.size());
  for (int b = 0; b < B; b++) std::copy_n(&x[size_t(b) * T * C], C, &step[size_t(b) * C]);
  h.attn->keep_weights(true);
  h.attn->forward_cached(o.data(), step.data(), B, 1);
  std::vector<float> w = h.attn->attention_weights();
  REQUIRE(w.size() == size_t(B) * 2 * 1 * 1);  // [B,H,Tn=1,L=1]: the first token sees itself
  for (float v : w) CHECK(v == 1.0f);
  for (int b = 0; b < B; b++) std::copy_n(&x[(size_t(b) * T + 1) * C], 2 * C, &step[size_t(b) * 2 * C]);
  h.attn->forward_cached(o.data(), step.data(), B, 2);
  CHECK(h.attn->cache_len() == 3);
  w = h.attn->attention_weights();
  REQUIRE(w.size() == size_t(B) * 2 * 2 * 3);  // [B,H,Tn=2,L=3]
  for (int bh = 0; bh < B * 2; bh++) {
    CHECK(w[size_t(bh) * 6 + 2] == 0.0f);  // position 1 does not see position 2
    CHECK(w[size_t(bh) * 6 + 0] + w[size_t(bh) * 6 + 1] == doctest::Approx(1.0f));
  }
  CHECK_THROWS_AS(h.attn->forward_cached(o.data(), step.data(), B, 1), UserError);  // full
  const std::string msg = [&] {
    try {
      h.attn->forward_cached(o.data(), step.data(), B, 1);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  CHECK(msg.find("capacity") != std::string::npos);
  // a reset empties it
  h.attn->cache_reset(B, 3);
  CHECK(h.attn->cache_len() == 0);
  CHECK_NOTHROW(h.attn->forward_cached(o.data(), step.data(), B, 2));
  // a non-causal slot has no incremental decoding
  Harness nc(make_spec(8, 2, 1, false), 63);
  CHECK_THROWS_AS(nc.attn->cache_reset(B, 3), UserError);
}

TEST_CASE("scaled_dot_product options: causal window/rope/alibi self-attention ignores the future") {
  for (const auto& [window, positions] : std::vector<std::pair<int, std::string>>{
           {3, "none"}, {0, "rope"}, {0, "alibi"}, {2, "rope"}, {4, "alibi"}}) {
    INFO("window " << window << ", positions " << positions);
    for (int Hkv : {4, 2}) {
      AttentionSpec s = make_spec(16, 4, Hkv, true);
      s.window = window;
      s.positions = attn_positions(positions);
      CHECK(causal_outputs_ignore_future(s, 7, 70 + Hkv));
    }
  }
}

TEST_CASE("scaled_dot_product options: keys outside the sliding window get exactly zero weight") {
  const int B = 2, T = 9, C = 16, H = 4, w = 3;
  Rng rng(81);
  const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
  for (bool causal : {true, false}) {
    for (const std::string positions : {"none", "alibi"}) {
      INFO((causal ? "causal" : "not causal") << ", positions " << positions);
      AttentionSpec s = make_spec(C, H, 2, causal);
      s.window = w;
      s.positions = attn_positions(positions);
      Harness h(s, 82);
      h.attn->keep_weights(true);
      std::vector<float> base(x.size());
      h.attn->forward(base.data(), x.data(), x.data(), B, T, T, {}, false, nullptr);
      const std::vector<float> wt = h.attn->attention_weights();
      REQUIRE(wt.size() == size_t(B) * H * T * T);
      for (int b = 0; b < B; b++)
        for (int hd = 0; hd < H; hd++)
          for (int i = 0; i < T; i++) {
            double sum = 0.0;
            for (int j = 0; j < T; j++) {
              const bool in = causal ? (i - w < j && j <= i) : std::abs(i - j) < w;
              const float p = wt[((size_t(b) * H + hd) * T + i) * T + j];
              if (in) CHECK(p > 0.0f);
              else CHECK(p == 0.0f);
              sum += p;
            }
            CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
          }
      // and the input at a position outside a query's window leaves its output bit-identical
      std::vector<float> out(x.size());
      for (int j : {0, 4, 8}) {
        std::vector<float> x2 = x;
        for (int c = 0; c < C; c++) x2[(size_t(1) * T + j) * C + c] += 1.0f;
        h.attn->forward(out.data(), x2.data(), x2.data(), B, T, T, {}, false, nullptr);
        for (int i = 0; i < T; i++) {
          INFO("changed j = " << j << ", query i = " << i);
          const bool sees = causal ? (i - w < j && j <= i) : std::abs(i - j) < w;
          const float* o = &out[(size_t(1) * T + i) * C];
          const float* r = &base[(size_t(1) * T + i) * C];
          if (sees || i == j) CHECK(row_diff(o, r, C) > 1e-6);
          else CHECK(rows_equal(o, r, C));
        }
      }
    }
  }
}

TEST_CASE("scaled_dot_product options: RoPE and ALiBi outputs depend only on relative positions") {
  // Queries over 5 keys, non-causal, vs the same queries and keys moved 6 positions later behind
  // 6 padded keys: with relative positions only (RoPE, ALiBi) the outputs agree to rounding;
  // positions = none trivially too. With RoPE, a model that used absolute positions would differ.
  const int B = 1, T = 5, P = 6, C = 16;
  Rng rng(91);
  const std::vector<float> x_q = random_normal(size_t(T) * C, rng);
  const std::vector<float> x_kv = random_normal(size_t(T) * C, rng);
  std::vector<float> x_kv_long = random_normal(size_t(P + T) * C, rng, 3.0f);  // junk prefix
  std::copy(x_kv.begin(), x_kv.end(), x_kv_long.begin() + size_t(P) * C);
  std::vector<unsigned char> keep(P + T, 1);
  for (int j = 0; j < P; j++) keep[j] = 0;
  AttnMask mask;
  mask.key_keep = keep.data();
  for (const std::string positions : {"rope", "alibi"}) {
    INFO("positions " << positions);
    AttentionSpec s = make_spec(C, 4, 2, false);
    s.positions = attn_positions(positions);
    Harness h(s, 92);
    std::vector<float> a(x_q.size()), b(x_q.size());
    h.attn->forward(a.data(), x_q.data(), x_kv.data(), B, T, T, {}, false, nullptr);
    h.attn->forward(b.data(), x_q.data(), x_kv_long.data(), B, T, P + T, mask, false, nullptr);
    const double d = row_diff(a.data(), b.data(), int(a.size()));
    MESSAGE(fmt::format("{}: outputs at positions 0..4 vs 6..10: max |diff| {:.2e}", positions, d));
    CHECK(d < 1e-5);
  }
}

TEST_CASE("scaled_dot_product options: cached steps report the full forward's weights, window included") {
  const int B = 2, T = 7, C = 16, H = 4;
  for (int window : {0, 2, 3}) {
    INFO("window " << window);
    AttentionSpec s = make_spec(C, H, 2, true);
    s.window = window;
    s.positions = AttnPositions::alibi;
    Harness h(s, 95);
    Rng rng(96);
    const std::vector<float> x = random_normal(size_t(B) * T * C, rng);
    std::vector<float> full(x.size());
    h.attn->keep_weights(true);
    h.attn->forward(full.data(), x.data(), x.data(), B, T, T, {}, false, nullptr);
    const std::vector<float> wf = h.attn->attention_weights();
    h.attn->cache_reset(B, T);
    std::vector<float> step(size_t(B) * C), out(step.size());
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < B; b++) std::copy_n(&x[(size_t(b) * T + t) * C], C, &step[size_t(b) * C]);
      h.attn->forward_cached(out.data(), step.data(), B, 1);
      const std::vector<float> wc = h.attn->attention_weights();
      REQUIRE(wc.size() == size_t(B) * H * (t + 1));  // [B,H,1,t+1]
      for (int bh = 0; bh < B * H; bh++)
        for (int j = 0; j <= t; j++) {
          INFO("step t = " << t << ", (b,h) = " << bh << ", key j = " << j);
          CHECK(wc[size_t(bh) * (t + 1) + j] == doctest::Approx(wf[(size_t(bh) * T + t) * T + j]).epsilon(1e-6));
          if (window > 0 && j <= t - window) CHECK(wc[size_t(bh) * (t + 1) + j] == 0.0f);
        }
    }
  }
}
