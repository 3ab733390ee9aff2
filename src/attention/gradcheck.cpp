#include "attention/gradcheck.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/param.h"
#include "core/rng.h"
#include "ops/finite_difference.h"

namespace attnlab {

std::vector<GradcheckCase> gradcheck_cases(const std::string& type) {
  const AttentionInfo& info = attention_registry().at(type).info;
  std::vector<GradcheckCase> out;
  struct Heads {
    const char* name;
    int H, Hkv;
  };
  std::vector<Heads> heads = {{"MHA", 2, 2}};
  if (info.gqa) heads.push_back({"GQA", 4, 2}), heads.push_back({"MQA", 2, 1});
  for (const char* mask : {"causal", "none", "padding"}) {
    if (info.force_causal == 1 && std::string(mask) != "causal") continue;
    if (info.force_causal == 0 && std::string(mask) == "causal") continue;
    if (std::string(mask) == "padding" && !info.key_padding) continue;
    for (const Heads& h : heads)
      for (bool self : {true, false}) {
        if (std::string(mask) == "causal" && !self) continue;  // causal cross-attention is not a slot
        GradcheckCase c;
        c.label = fmt::format("{} {} {}", mask, h.name, self ? "self" : "cross");
        c.spec.type = type;
        c.spec.name = "attn";
        c.spec.d_model = 4 * h.H * info.head_split;  // head width 4 (differential: two halves of 4)
        c.spec.n_heads = h.H;
        c.spec.n_kv_heads = h.Hkv;
        c.spec.causal = std::string(mask) == "causal";
        c.spec.n_layers = 1;
        c.self_attention = self;
        c.Tq = 5;
        c.Tk = self ? 5 : 6;
        c.spec.max_len = std::max(c.Tq, c.Tk);
        c.key_padding = std::string(mask) == "padding";
        out.push_back(c);
      }
  }
  return out;
}

std::vector<GradcheckTensor> gradcheck_attention(const GradcheckCase& c, uint64_t seed) {
  ParamStore store;
  Rng rng(seed);
  auto attn = make_attention(c.spec, store, rng);
  // Weights N(0, 0.4²) so the softmax is far from uniform. Differential attention's λ vectors
  // keep their init scale N(0, 0.1²): λ then stays near λ_init, away from λ ≈ 1 where the two
  // maps cancel and the headwise RMSNorm of nearly-zero rows makes finite differences useless.
  for (auto& p : store.all()) {
    const bool lambda = p.name.find(".lambda_") != std::string::npos;
    for (auto& w : p.w) w = (lambda ? 0.1f : 0.4f) * rng.normal();
  }
  const int C = c.spec.d_model;
  auto randn = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = rng.normal();
    return v;
  };
  std::vector<float> x_q = randn(size_t(c.B) * c.Tq * C);
  std::vector<float> x_kv = c.self_attention ? std::vector<float>{} : randn(size_t(c.B) * c.Tk * C);
  const std::vector<float> U = randn(size_t(c.B) * c.Tq * C);
  std::vector<unsigned char> keep(size_t(c.B) * c.Tk, 1);
  AttnMask mask;
  if (c.key_padding) {
    keep[size_t(1) * c.Tk + c.Tk - 1] = keep[size_t(1) * c.Tk + c.Tk - 2] = 0;
    mask.key_keep = keep.data();
  }
  std::vector<float> out(U.size());
  auto loss = [&]() {
    Rng drop(1234);
    attn->forward(out.data(), x_q.data(), c.self_attention ? x_q.data() : x_kv.data(), c.B, c.Tq, c.Tk, mask,
                  c.spec.dropout > 0.0f, &drop);
    double s = 0.0;
    for (size_t i = 0; i < out.size(); i++) s += double(out[i]) * double(U[i]);
    return s;
  };
  loss();
  // The loss is recomputed in float32: each term out_i·U_i carries rounding error of a few ulps,
  // independent from term to term, so a loss difference carries noise of about
  // 8·ε₃₂·‖out ⊙ U‖₂, a central difference that over 2h, and the Richardson combination about
  // 1.5× that over h. Errors up to this noise are not counted (linear attention's query
  // gradients, for one, sit close to it).
  double loss_l2 = 0.0;
  for (size_t i = 0; i < out.size(); i++) loss_l2 += double(out[i]) * double(U[i]) * double(out[i]) * double(U[i]);
  loss_l2 = std::sqrt(loss_l2);
  store.zero_grad();
  std::vector<float> dx_q(x_q.size(), 0.0f), dx_kv(x_kv.size(), 0.0f);
  attn->backward(dx_q.data(), c.self_attention ? dx_q.data() : dx_kv.data(), U.data());

  // the largest analytic gradient of the module, the scale of its rounding noise
  double grad_scale = 0.0;
  for (float v : dx_q) grad_scale = std::max(grad_scale, double(std::fabs(v)));
  for (float v : dx_kv) grad_scale = std::max(grad_scale, double(std::fabs(v)));
  for (const auto& p : store.all())
    for (float v : p.g) grad_scale = std::max(grad_scale, double(std::fabs(v)));
  // One tensor at one step h (Richardson pair h, h/2).
  auto measure = [&](const std::string& name, std::vector<float>& x, const std::vector<float>& g, float h) {
    GradCheckOptions opt;
    opt.h = h;
    opt.richardson = true;
    opt.noise = 1.5 * 8.0 * 1.1920929e-7 * loss_l2 / h;
    const GradCheckResult r = gradcheck(x, g, loss, opt);
    double amax = 0.0;
    for (float v : g) amax = std::max(amax, double(std::fabs(v)));
    GradcheckTensor t;
    t.name = name;
    t.elements = x.size();
    t.max_abs = r.max_abs;
    t.max_rel = r.max_rel;
    t.max_rel_beyond_noise = r.max_rel_beyond_noise;
    // an identically zero gradient (e.g. b_k of softmax attention): both sides are rounding noise,
    // of the size of the module's other gradients' rounding
    t.zero = amax < 1e-5 * std::max(1.0, grad_scale);
    t.ok = t.zero ? t.max_abs < 1e-3 : t.max_rel_beyond_noise < kGradcheckTolerance;
    return t;
  };
  // h = 0.04 first; a tensor that misses is measured again at 0.01 (less curvature error) and
  // 0.16 (less rounding noise), then 0.004 (steps that cross a kink such as elu+1's at 0), and
  // the best counts: a wrong gradient misses at every step.
  auto check = [&](const std::string& name, std::vector<float>& x, const std::vector<float>& g) {
    GradcheckTensor best = measure(name, x, g, 0.04f);
    for (float h : {0.01f, 0.16f, 0.004f}) {
      if (best.ok) break;
      GradcheckTensor t = measure(name, x, g, h);
      if (t.max_rel_beyond_noise < best.max_rel_beyond_noise) best = t;
    }
    return best;
  };
  std::vector<GradcheckTensor> res;
  res.push_back(check("x_q", x_q, dx_q));
  if (!c.self_attention) res.push_back(check("x_kv", x_kv, dx_kv));
  for (auto& p : store.all()) {
    const std::vector<float> g = p.g;
    res.push_back(check(p.name.substr(p.name.find('.') + 1), p.w, g));
  }
  return res;
}

}  // namespace attnlab
