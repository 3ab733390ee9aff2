// Helpers shared by the model tests: pushing a tiny network away from its init, and the
// directional finite-difference check of every parameter tensor.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/model.h"
#include "ops/gradcheck.h"

namespace attnlab::test {

// A closed-set model option from its config spelling (the tests name kinds and positions so).
template <class E>
E option(const std::string& name) {
  E value{};
  REQUIRE(option_from_name(name, value));
  return value;
}

// A tiny model of `kind`: 2 layers, 2 heads.
inline ModelConfig tiny_config(const std::string& kind, int d_model, int d_ff, int block_size) {
  ModelConfig m;
  m.kind = option<ModelConfig::Kind>(kind);
  m.n_layers = 2;
  m.d_model = d_model;
  m.n_heads = 2;
  m.d_ff = d_ff;
  m.block_size = block_size;
  return m;
}

// Scale the initial weights up so the tiny network is far from its init's near-linear regime
// and every path carries a gradient a finite difference can resolve.
inline void perturb(Model& model, Rng& rng, float scale = 0.3f) {
  for (auto& p : model.params().all())
    for (auto& w : p.w) w += scale * rng.normal();
}

// The gradients in the parameters' .g (from one backward) against finite differences of `loss`.
// A whole float32 network has loss noise of ~1e-7 relative, too much to resolve single small
// weights (per-element checks live with each op and attention module). Here every tensor is
// checked along a random direction d: (L(w + h·d) − L(w − h·d)) / 2h must equal g·d. The
// directional derivative sums ~numel gradient entries, so it stands far above the noise, and a
// missing or wrong path through the network changes it. Returns the number of tensors checked.
// h: the step; a smaller one for a network whose loss curves strongly along some direction (the
// absolute tolerance grows as 1/h with the rounding noise of the difference).
inline int check_param_directions(Model& model, const std::function<double()>& loss, float h = 3e-3f) {
  Rng dir_rng(99);
  int checked = 0;
  for (auto& p : model.params().all()) {
    const std::vector<float> w0 = p.w;
    const std::vector<float> d = random_normal(p.numel(), dir_rng);
    const double analytic = dot_double(p.g, d);
    auto at = [&](float s) {
      for (size_t i = 0; i < p.numel(); i++) p.w[i] = w0[i] + s * d[i];
      return loss();
    };
    const double numeric = (at(h) - at(-h)) / (2.0 * h);
    p.w = w0;
    // tolerance: 0.3% relative, plus 1e-4 absolute for the rounding noise of the difference
    // (~4 ulp of a loss ≈ 2, divided by 2h). b_k's gradient is exactly 0 (softmax ignores a
    // shift shared by all keys), which only the absolute term can accept.
    INFO(p.name << ": analytic " << analytic << " numeric " << numeric);
    CHECK(std::fabs(analytic - numeric) <=
          3e-3 * std::max(std::fabs(analytic), std::fabs(numeric)) + 1e-4 * (3e-3 / double(h)));
    checked++;
  }
  return checked;
}

}  // namespace attnlab::test
