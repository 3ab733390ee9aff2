// model.init: the statistics of every tensor under each scheme (docs/attention.md,
// "Initialisation"), the head bias, and the gradients with the head bias on.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "config/config.h"
#include "model/model.h"
#include "model_checks.h"

using namespace attnlab;

namespace {

struct Stats {
  double mean = 0, sd = 0, lo = 0, hi = 0;
};
Stats stats_of(const Param& p) {
  Stats s;
  s.lo = *std::min_element(p.w.begin(), p.w.end());
  s.hi = *std::max_element(p.w.begin(), p.w.end());
  for (float x : p.w) s.mean += x;
  s.mean /= double(p.numel());
  for (float x : p.w) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = std::sqrt(s.sd / double(p.numel()));
  return s;
}

// big enough that a tensor's sample std is within a few percent of the scheme's
ModelConfig config(const std::string& kind, const std::string& init) {
  ModelConfig m = test::tiny_config(kind, 64, 256, 32);
  m.n_layers = 3;
  m.n_heads = 4;
  m.init = test::option<ModelConfig::Init>(init);
  m.tie_embeddings = false;
  m.head_bias = true;
  return m;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// the input width of a linear layer's weight [out, in] or of its bias (the weight's in)
int fan_in_of(const Model& model, const Param& p) {
  if (p.shape.size() == 2) return p.shape[1];
  std::string w = p.name;
  const size_t dot = w.rfind('.');
  std::string leaf = w.substr(dot + 1);
  leaf[0] = 'w';  // b_q -> w_q, b -> w
  w = w.substr(0, dot + 1) + leaf;
  for (const auto& q : model.params().all())
    if (q.name == w) return q.shape[1];
  FAIL("no weight for bias " << p.name);
  return 0;
}

void check_scheme(const std::string& kind, const std::string& init, double init_std = 0.02) {
  ModelConfig mc = config(kind, init);
  mc.init_std = init_std;
  Model model(mc, 97, 5, kind == "encoder" ? 0 : 0);
  const double resid = init_std / std::sqrt(2.0 * mc.n_layers);
  int weights = 0, biases = 0;
  for (const auto& p : model.params().all()) {
    const Stats s = stats_of(p);
    INFO(init << " " << p.name << ": mean " << s.mean << " std " << s.sd << " in [" << s.lo << ", " << s.hi << "]");
    if (p.kind == ParamKind::embedding) {  // N(0, 0.02²) under both schemes
      CHECK(std::fabs(s.mean) < 4.0 * 0.02 / std::sqrt(double(p.numel())));
      CHECK(s.sd == doctest::Approx(0.02).epsilon(0.06));
      continue;
    }
    if (p.kind == ParamKind::norm) {  // layernorms (1, 0)
      const bool scale = ends_with(p.name, ".w");
      CHECK(s.lo == (scale ? 1.0 : 0.0));
      CHECK(s.hi == (scale ? 1.0 : 0.0));
      continue;
    }
    const bool is_bias = p.kind == ParamKind::bias;
    if (init == "gpt2") {
      if (is_bias) {
        CHECK(s.lo == 0.0);
        CHECK(s.hi == 0.0);
        biases++;
        continue;
      }
      const bool into_residual = ends_with(p.name, ".w_o") || ends_with(p.name, ".mlp.proj.w");
      CHECK(std::fabs(s.mean) < 4.0 * (into_residual ? resid : init_std) / std::sqrt(double(p.numel())));  // 4 s.e.
      CHECK(s.sd == doctest::Approx(into_residual ? resid : init_std).epsilon(0.06));
      weights++;
    } else {
      // U(−a, a), a = 1/√fan_in: within the bounds, std a/√3, mean 0, and reaching near both ends
      const double a = 1.0 / std::sqrt(double(fan_in_of(model, p)));
      CHECK(s.lo >= -a);
      CHECK(s.hi <= a);
      if (p.numel() >= 64) {
        CHECK(s.sd == doctest::Approx(a / std::sqrt(3.0)).epsilon(p.numel() >= 4096 ? 0.04 : 0.15));
        CHECK(std::fabs(s.mean) < 4.0 * a / std::sqrt(3.0 * double(p.numel())));  // 4 standard errors
        CHECK(s.hi > 0.8 * a);
        CHECK(s.lo < -0.8 * a);
      }
      (is_bias ? biases : weights)++;
    }
  }
  // 3 layers × (4 projections + 2 MLP) + the head
  CHECK(weights == 3 * 6 * (kind == "encoder_decoder" ? 2 : 1) + (kind == "encoder_decoder" ? 3 * 4 : 0) + 1);
  CHECK(biases > 0);
}

}  // namespace

TEST_CASE("model.init gpt2: weights N(0, 0.02), residual projections N(0, 0.02/√(2L)), biases 0") {
  check_scheme("decoder", "gpt2");
  check_scheme("encoder_decoder", "gpt2");
}

TEST_CASE("model.init_std scales gpt2's weights (residual projections init_std/√(2L)); embeddings stay N(0, 0.02)") {
  check_scheme("decoder", "gpt2", 0.07);
  check_scheme("encoder_decoder", "gpt2", 0.005);
}

TEST_CASE("model.init torch_default: weights and biases U(±1/√fan_in), embeddings N(0, 0.02)") {
  check_scheme("decoder", "torch_default");
  check_scheme("encoder_decoder", "torch_default");
}

TEST_CASE("model.init gpt2 is the initialisation of a config that does not name a scheme") {
  ModelConfig named = config("decoder", "gpt2"), unnamed = named;
  unnamed.init = ModelConfig{}.init;
  Model a(named, 31, 9), b(unnamed, 31, 9);
  REQUIRE(a.params().all().size() == b.params().all().size());
  for (size_t i = 0; i < a.params().all().size(); i++) CHECK(a.params().all()[i].w == b.params().all()[i].w);
}

TEST_CASE("model.head_bias: head.b is a parameter of the logits, with gradients, tied and untied") {
  for (bool tied : {true, false}) {
    ModelConfig mc = test::tiny_config("decoder", 8, 12, 6);
    mc.tie_embeddings = tied;
    mc.head_bias = true;
    mc.init = ModelConfig::Init::torch_default;
    const int V = 7, B = 2, T = 5;
    Model model(mc, V, 42);
    const Param* hb = nullptr;
    for (const auto& p : model.params().all())
      if (p.name == "head.b") hb = &p;
    REQUIRE(hb != nullptr);
    CHECK(hb->numel() == size_t(V));
    CHECK(std::any_of(hb->w.begin(), hb->w.end(), [](float x) { return x != 0.0f; }));  // torch_default draws it
    Rng rng(7);
    test::perturb(model, rng);
    std::vector<int> ids(B * T), tg(B * T);
    for (auto& i : ids) i = int(rng.below(V));
    for (auto& t : tg) t = int(rng.below(V));
    model.params().zero_grad();
    model.forward(ids.data(), tg.data(), B, T, true, &rng);
    model.backward();
    auto loss = [&]() { return double(model.forward(ids.data(), tg.data(), B, T, false, nullptr)); };
    INFO("tied " << tied);
    CHECK(test::check_param_directions(model, loss) == int(model.params().all().size()));
  }
}
