// The decoder model end to end: gradients of the whole network by finite
// differences, causality of the logits, determinism.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/gemm_bf16.h"
#include "model/model.h"
#include "model/generate.h"
#include "model_checks.h"
#include "ops/gradcheck.h"

using namespace attnlab;

namespace {

ModelConfig tiny(const std::string& positions = "learned", bool tied = true, int n_kv_heads = 0) {
  ModelConfig m;
  m.n_layers = 2;
  m.d_model = 8;
  m.n_heads = 2;
  m.d_ff = 12;
  m.block_size = 6;
  m.positions = test::option<ModelConfig::Positions>(positions);
  m.tie_embeddings = tied;
  m.attention.n_kv_heads = n_kv_heads;
  return m;
}

void check_model_gradients(const ModelConfig& mc, float smoothing) {
  const int V = 7, B = 2, T = 5;
  Model model(mc, V, 42);
  Rng rng(7);
  test::perturb(model, rng);
  std::vector<int> ids(B * T), tg(B * T);
  for (auto& i : ids) i = int(rng.below(V));
  for (auto& t : tg) t = int(rng.below(V));
  tg[3] = -1;  // an ignored position
  model.params().zero_grad();
  model.forward(ids.data(), tg.data(), B, T, true, &rng, smoothing);
  model.backward();
  auto loss = [&]() { return double(model.forward(ids.data(), tg.data(), B, T, false, nullptr, smoothing)); };
  test::check_param_directions(model, loss);
}

}  // namespace

TEST_CASE("decoder: finite-difference gradients of every parameter (learned positions, tied head)") {
  check_model_gradients(tiny(), 0.0f);
}

TEST_CASE("decoder: gradients with sinusoidal positions, untied head, GQA and label smoothing") {
  check_model_gradients(tiny("sinusoidal", false, 1), 0.1f);
}

// train.precision: bf16 through the whole network (embeddings, attention, MLP, tied head, loss):
// the loss and every parameter's gradient against float32's. Each GEMM's inputs are rounded
// to bf16 (u = 2^-8): a product term moves by at most 2u of itself, and with random-sign data
// the terms' errors add in quadrature, so one GEMM moves its result by about u relative. The
// gradient of a parameter passes through at most G = 28 GEMMs here (2 layers x (q/k/v and
// output projections, two attention products, two MLP layers) forward and back, and the head);
// if their errors added in quadrature it would move by about sqrt(G)·u. The bound is
// 3·2u·sqrt(G) = 0.12 relative (Frobenius norm per tensor): rounding cannot reach it, a wrong
// packing or a missing term (relative errors of order 1) cannot stay below it, and at least one
// tensor must move by more than float32 rounding could (1e-5), or bf16 was not in effect. (b_k
// is measured against w_k's gradient: its own is 0 up to rounding.)
TEST_CASE("decoder in bf16: the loss and every gradient within the bf16 error estimate of float32's, each kernel") {
  ModelConfig mc = tiny();
  mc.d_model = 32;
  mc.n_heads = 4;
  mc.d_ff = 64;
  mc.block_size = 16;
  const int V = 20, B = 4, T = 16;
  std::vector<std::string> names;
  auto run = [&](Bf16Kernel k) {
    const GemmBf16Scope products(k);
    Model model(mc, V, 42);
    Rng rng(7);
    test::perturb(model, rng, 0.05f);
    std::vector<int> ids(B * T), tg(B * T);
    for (auto& i : ids) i = int(rng.below(V));
    for (auto& t : tg) t = int(rng.below(V));
    model.params().zero_grad();
    const float loss = model.forward(ids.data(), tg.data(), B, T, true, &rng);
    model.backward();
    std::vector<std::vector<float>> g{{loss}};
    for (auto& p : model.params().all()) g.push_back(p.g);
    if (names.empty()) {
      names.push_back("loss");
      for (auto& p : model.params().all()) names.push_back(p.name);
    }
    return g;
  };
  const auto ref = run(Bf16Kernel::none);
  const double bound = 3 * 2 * 0x1p-8 * std::sqrt(28.0);
  const std::vector<Bf16Kernel> kernels = bf16_kernels_supported();
  for (Bf16Kernel k : kernels) {
    const auto got = run(k);
    REQUIRE(got.size() == ref.size());
    double worst = 0, largest = 0;
    for (size_t t = 0; t < ref.size(); t++) {
      double d2 = 0, r2 = 0;
      for (size_t i = 0; i < ref[t].size(); i++) d2 += (double(got[t][i]) - ref[t][i]) * (double(got[t][i]) - ref[t][i]);
      // b_k's gradient is 0 in exact arithmetic (the softmax ignores the per-row shift q·b_k), and
      // what both runs compute is rounding: it is measured against the scale of w_k's gradient
      std::string scale_of = names[t];
      if (const size_t at = scale_of.rfind("attn.b_k"); at != std::string::npos && at + 8 == scale_of.size())
        scale_of.replace(at, 8, "attn.w_k");
      const size_t st = size_t(std::find(names.begin(), names.end(), scale_of) - names.begin());
      REQUIRE(st < ref.size());
      for (float r : ref[st]) r2 += double(r) * r;
      const double rel = std::sqrt(d2 / std::max(r2, 1e-300));
      INFO("kernel " << std::string(bf16_kernel_name(k)) << ", " << names[t] << ": " << rel);
      CHECK(rel <= bound);
      worst = std::max(worst, rel);
      largest = std::max(largest, rel);
    }
    CHECK(largest > 1e-5);
    MESSAGE("bf16 (" << std::string(bf16_kernel_name(k)) << "): worst relative gradient error " << worst
                     << " (bound " << bound << ", u = 2^-8 = 0.0039)");
  }
  if (kernels.empty()) MESSAGE("SKIPPED: this machine has no bf16 kernel (AMX-BF16 or AVX512-BF16)");
}

TEST_CASE("decoder: logits at position i do not depend on tokens after i") {
  const int V = 9, T = 6;
  ModelConfig mc = tiny();
  Model model(mc, V, 3);
  Rng rng(11);
  test::perturb(model, rng);
  std::vector<int> ids = {1, 4, 2, 8, 0, 5};
  model.forward(ids.data(), nullptr, 1, T, false, nullptr);
  const std::vector<float> base(model.logits(), model.logits() + T * V);
  for (int j = 0; j < T; j++) {
    std::vector<int> changed = ids;
    changed[j] = (changed[j] + 3) % V;
    model.forward(changed.data(), nullptr, 1, T, false, nullptr);
    for (int i = 0; i < T; i++) {
      bool same = true;
      for (int v = 0; v < V; v++) same &= model.logits()[i * V + v] == base[i * V + v];
      INFO("changed token " << j << ", position " << i);
      CHECK(same == (i < j));
    }
  }
}

TEST_CASE("decoder: the same seed gives bitwise identical initialisation, losses and gradients") {
  ModelConfig mc = tiny();
  mc.dropout = 0.2;
  mc.attention.dropout = 0.1;
  auto run = [&](uint64_t seed) {
    Model model(mc, 7, seed);
    Rng rng(5);
    std::vector<int> ids = {1, 2, 3, 4, 5, 6, 0, 1, 2, 3}, tg = {2, 3, 4, 5, 6, 0, 1, 2, 3, 4};
    model.params().zero_grad();
    const float loss = model.forward(ids.data(), tg.data(), 2, 5, true, &rng);
    model.backward();
    std::vector<float> all;
    for (auto& p : model.params().all()) all.insert(all.end(), p.g.begin(), p.g.end());
    all.push_back(loss);
    return all;
  };
  const auto a = run(1), b = run(1), c = run(2);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("decoder: a sequence longer than block_size is a user error") {
  Model model(tiny(), 5, 1);
  std::vector<int> ids(7, 0);
  CHECK_THROWS_AS(model.forward(ids.data(), nullptr, 1, 7, false, nullptr), UserError);
  ids[0] = 5;
  CHECK_THROWS_AS(model.forward(ids.data(), nullptr, 1, 3, false, nullptr), UserError);
}

TEST_CASE("generate: greedy is the argmax of the full forward, and top-k 1 equals greedy") {
  Model model(tiny(), 7, 9);
  Rng init(2);
  test::perturb(model, init);
  Rng rng(1);
  SampleOptions greedy;
  greedy.max_new_tokens = 8;  // runs past block_size: the context window slides
  greedy.temperature = 0.0f;
  const auto out = generate(model, {1, 2}, greedy, rng);
  REQUIRE(out.size() == 8);
  std::vector<int> seq = {1, 2};
  for (int t : out) {
    const int T = std::min<int>(int(seq.size()), 6);
    model.forward(seq.data() + seq.size() - T, nullptr, 1, T, false, nullptr);
    const float* l = model.logits() + (T - 1) * 7;
    CHECK(t == int(std::max_element(l, l + 7) - l));
    seq.push_back(t);
  }
  SampleOptions top1 = greedy;
  top1.temperature = 1.0f;
  top1.top_k = 1;
  CHECK(generate(model, {1, 2}, top1, rng) == out);
}

TEST_CASE("sample_logits: temperature sampling follows the softmax") {
  const float logits[3] = {0.0f, std::log(2.0f), std::log(7.0f)};  // p = 0.1, 0.2, 0.7
  Rng rng(3);
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; i++) counts[sample_logits(logits, 3, 1.0f, 0, rng)]++;
  CHECK(counts[0] / double(n) == doctest::Approx(0.1).epsilon(0.1));
  CHECK(counts[1] / double(n) == doctest::Approx(0.2).epsilon(0.1));
  CHECK(counts[2] / double(n) == doctest::Approx(0.7).epsilon(0.05));
  for (int i = 0; i < 200; i++) CHECK(sample_logits(logits, 3, 1.0f, 2, rng) != 0);  // top-2 drops id 0
}

TEST_CASE("decoder: incremental decoding through the caches equals the full forward") {
  for (const char* positions : {"learned", "sinusoidal", "rope", "alibi"}) {
    for (int kv : {0, 1}) {
      ModelConfig mc = tiny(positions, true, kv);
      mc.block_size = 9;
      Model model(mc, 7, 4);
      Rng rng(8);
      test::perturb(model, rng);
      std::vector<int> ids = {1, 5, 2, 6, 0, 3, 3, 4, 1};
      const int T = int(ids.size()), V = 7;
      model.forward(ids.data(), nullptr, 1, T, false, nullptr);
      const std::vector<float> full(model.logits(), model.logits() + T * V);
      model.cache_reset(1, T);
      // a prompt of 4 tokens in one step, then one token at a time
      const float* l = model.forward_cached(ids.data(), 1, 4);
      std::vector<float> got(l, l + 4 * V);
      for (int t = 4; t < T; t++) {
        l = model.forward_cached(&ids[t], 1, 1);
        got.insert(got.end(), l, l + V);
      }
      double m = 0.0;
      for (int i = 0; i < T * V; i++) m = std::max(m, double(std::fabs(full[i] - got[i])));
      INFO("positions " << positions << ", n_kv_heads " << kv << ": max |cached - full| = " << m);
      CHECK(m < 1e-5);
      CHECK_THROWS_AS(model.forward_cached(ids.data(), 1, 1), UserError);  // the cache is full
    }
  }
}

TEST_CASE("generate: greedy decoding with the KV cache equals decoding without it, token for token") {
  ModelConfig mc = tiny("learned", true, 1);
  Model model(mc, 7, 21);
  Rng init(4);
  test::perturb(model, init);
  SampleOptions opt;
  opt.max_new_tokens = 12;  // crosses block_size (6): the window slides at the end
  opt.temperature = 0.0f;
  Rng r1(1), r2(1);
  const auto with = generate(model, {3, 1}, opt, r1);
  opt.use_cache = false;
  const auto without = generate(model, {3, 1}, opt, r2);
  CHECK(with == without);
  CHECK(with.size() == 12);
}
