// Experiment E1's checks (`run: invariants`, definitions in kinds.h): the variance of
// random dot products and of the attention logits, the tiled (flash) attention against the naive
// one through the real module, and RoPE scores under a common position shift. Each figure is
// computed from the project's own code (attention_scale, ScaledDotProductAttention with impl naive
// and impl flash, rope_rotate); only the random inputs are made here.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/positions.h"
#include "attention/scaled_dot_product.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "experiment/kinds.h"

namespace attnlab {

namespace {

long long as_int(const std::map<std::string, std::string>& p, const std::string& k) {
  return std::strtoll(p.at(k).c_str(), nullptr, 10);
}
double as_num(const std::map<std::string, std::string>& p, const std::string& k) {
  return std::strtod(p.at(k).c_str(), nullptr);
}

// ---- variance: Var(q·k) = d_k for independent unit-variance entries (Vaswani et al. 3.2.1) ----
void variance_check(const std::map<std::string, std::string>& p, CellFigures& f) {
  const int d = int(as_int(p, "d_k"));
  const long long N = as_int(p, "samples");
  AttentionSpec spec;
  spec.scale = p.at("scale");
  const float s = attention_scale(spec, d);  // the factor the attention modules apply to q·k
  Rng rng(uint64_t(as_int(p, "seed")));
  std::vector<float> q(static_cast<size_t>(d)), k(static_cast<size_t>(d));
  // Welford's running mean and sum of squared deviations, in double
  double m_dot = 0.0, q_dot = 0.0, m_log = 0.0, q_log = 0.0;
  for (long long i = 0; i < N; i++) {
    for (float& e : q) e = rng.normal();
    for (float& e : k) e = rng.normal();
    float dot = 0.0f;  // float accumulation, as the score GEMM does
    for (int j = 0; j < d; j++) dot += q[size_t(j)] * k[size_t(j)];
    const float logit = s * dot;
    const double n = double(i + 1);
    double delta = dot - m_dot;
    m_dot += delta / n;
    q_dot += delta * (dot - m_dot);
    delta = logit - m_log;
    m_log += delta / n;
    q_log += delta * (logit - m_log);
  }
  const double var_dot = q_dot / double(N - 1), var_logit = q_log / double(N - 1);
  const double ratio = var_dot / d;
  const double tol = as_num(p, "tol");
  f.values["var_ratio"] = ratio;
  f.values["logit_var"] = var_logit;
  f.values["pass"] = std::fabs(ratio - 1.0) <= tol && std::fabs(var_logit - 1.0) <= tol ? 1.0 : 0.0;
  f.notes.push_back(fmt::format("{} pairs, d_k {}, scale {} = {:.6g}: Var(q.k) = {:.5g}, mean(q.k) = {:.3g}", N, d,
                                spec.scale, s, var_dot, m_dot));
}

// ---- flash: impl flash against impl naive on the same module weights and inputs ----
struct ModuleRun {
  std::vector<float> out, dq, dk, dv;
  bool flash = false;
};

ModuleRun run_module(const AttentionSpec& spec, int B, int n, const std::vector<float>& x,
                     const std::vector<float>& dout, const unsigned char* keep, uint64_t seed) {
  ParamStore store;
  Rng rng(seed);
  std::unique_ptr<Attention> a = make_attention(spec, store, rng);
  // Weights N(0, 1/C): unit-variance projections, so the scores have std ~1 and the softmax is
  // neither uniform (the default std-0.02 init would be) nor saturated.
  Rng wr(seed + 1);
  const float std_w = 1.0f / std::sqrt(float(spec.d_model));
  for (Param& prm : store.all())
    for (float& w : prm.w) w = std_w * wr.normal();
  AttnMask mask;
  mask.key_keep = keep;
  ModuleRun r;
  r.out.assign(x.size(), 0.0f);
  a->forward(r.out.data(), x.data(), x.data(), B, n, n, mask, false, nullptr);
  std::vector<float> dx(x.size(), 0.0f);
  a->backward(dx.data(), dx.data(), dout.data());
  auto* sdp = dynamic_cast<ScaledDotProductAttention*>(a.get());
  ATTNLAB_CHECK(sdp != nullptr);
  r.flash = sdp->last_forward_flash();
  r.dq = sdp->grad_q();
  r.dk = sdp->grad_k();
  r.dv = sdp->grad_v();
  return r;
}

// max |a − b|, and max |b|
std::pair<double, double> max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  ATTNLAB_CHECK(a.size() == b.size());
  double d = 0.0, m = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    d = std::max(d, double(std::fabs(a[i] - b[i])));
    m = std::max(m, double(std::fabs(b[i])));
  }
  return {d, m};
}
// max |a − b| / max(1, max |b|): absolute for values up to 1, relative to the largest beyond
double scaled_diff(const std::vector<float>& a, const std::vector<float>& b) {
  const auto [d, m] = max_diff(a, b);
  return d / std::max(1.0, m);
}

void flash_check(const std::map<std::string, std::string>& p, CellFigures& f) {
  const int B = int(as_int(p, "batch")), n = int(as_int(p, "n")), H = int(as_int(p, "heads")),
            D = int(as_int(p, "d_k"));
  const int Hkv = as_int(p, "kv_heads") > 0 ? int(as_int(p, "kv_heads")) : H;
  const std::string mask = p.at("mask");
  const uint64_t seed = uint64_t(as_int(p, "seed"));
  AttentionSpec spec;
  spec.type = "scaled_dot_product";
  spec.name = "e1";
  spec.d_model = H * D;
  spec.n_heads = H;
  spec.n_kv_heads = Hkv;
  spec.causal = mask == "causal" || mask == "causal_padding";
  spec.dropout = 0.0f;
  spec.max_len = n;
  const size_t NC = size_t(B) * n * spec.d_model;
  Rng rng(seed + 2);
  std::vector<float> x(NC), dout(NC);
  for (float& e : x) e = rng.normal();
  for (float& e : dout) e = rng.normal();
  std::vector<unsigned char> keep;
  int padded = 0;
  if (mask == "padding" || mask == "causal_padding") {
    // odd rows: the last third of the keys padded; every row: about a tenth of the keys at random
    keep.assign(size_t(B) * n, 1);
    for (int b = 0; b < B; b++) {
      unsigned char* row = keep.data() + size_t(b) * n;
      if (b % 2 == 1)
        for (int j = n - n / 3; j < n; j++) row[j] = 0;
      for (int h = 0; h < std::max(1, n / 10); h++) row[rng.below(uint64_t(n))] = 0;
    }
    for (unsigned char c : keep) padded += c == 0;
  }
  spec.impl = AttnImpl::naive;
  const ModuleRun naive = run_module(spec, B, n, x, dout, keep.empty() ? nullptr : keep.data(), seed);
  spec.impl = AttnImpl::flash;
  const ModuleRun flash = run_module(spec, B, n, x, dout, keep.empty() ? nullptr : keep.data(), seed);
  const double out = scaled_diff(flash.out, naive.out), dq = scaled_diff(flash.dq, naive.dq),
               dk = scaled_diff(flash.dk, naive.dk), dv = scaled_diff(flash.dv, naive.dv);
  const double grad = std::max({dq, dk, dv});
  f.values["out_abs"] = max_diff(flash.out, naive.out).first;
  f.values["grad_abs"] = std::max({max_diff(flash.dq, naive.dq).first, max_diff(flash.dk, naive.dk).first,
                                   max_diff(flash.dv, naive.dv).first});
  f.values["out_diff"] = out;
  f.values["dq_diff"] = dq;
  f.values["dk_diff"] = dk;
  f.values["dv_diff"] = dv;
  f.values["grad_diff"] = grad;
  const bool paths = flash.flash && !naive.flash;
  if (!paths) f.notes.push_back("the modules did not take the naive and the flash path as asked");
  f.values["pass"] = paths && out <= as_num(p, "tol_out") && grad <= as_num(p, "tol_grad") ? 1.0 : 0.0;
  f.notes.push_back(fmt::format("B {}, n {}, heads {} (kv {}), d_k {}, mask {} ({} padded keys), tile {}x{}", B, n, H,
                                Hkv, D, mask, padded, kFlashBlockQ, kFlashBlockK));
  f.notes.push_back(fmt::format("naive max |out| {:.3g}, |dQ| {:.3g}, |dK| {:.3g}, |dV| {:.3g} (the *_diff figures "
                                "are divided by max(1, these))",
                                max_diff(naive.out, naive.out).second, max_diff(naive.dq, naive.dq).second,
                                max_diff(naive.dk, naive.dk).second, max_diff(naive.dv, naive.dv).second));
}

// ---- rope: (R_{m+s} q)·(R_{n+s} k) = (R_m q)·(R_n k) (Su et al. 2021) ----
void rope_check(const std::map<std::string, std::string>& p, CellFigures& f) {
  const int D = int(as_int(p, "d_k"));
  const long long N = as_int(p, "samples");
  const int max_pos = int(as_int(p, "max_pos")), shift = int(as_int(p, "shift"));
  const float base = float(as_num(p, "base"));
  Rng rng(uint64_t(as_int(p, "seed")));
  std::vector<float> q(static_cast<size_t>(D)), k(static_cast<size_t>(D));
  auto rotated = [&](const std::vector<float>& v, int pos) {
    std::vector<float> y = v;
    rope_rotate(y.data(), 1, 1, 1, D, D, pos, base);
    return y;
  };
  auto score = [&](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0.0;
    for (int j = 0; j < D; j++) s += double(a[size_t(j)]) * b[size_t(j)];
    return s / std::sqrt(double(D));
  };
  double worst = 0.0, change = 0.0;
  for (long long i = 0; i < N; i++) {
    for (float& e : q) e = rng.normal();
    for (float& e : k) e = rng.normal();
    const int m = int(rng.below(uint64_t(max_pos))), n = int(rng.below(uint64_t(max_pos)));
    const double s0 = score(rotated(q, m), rotated(k, n));
    const double s1 = score(rotated(q, m + shift), rotated(k, n + shift));
    const double s2 = score(rotated(q, m + shift), rotated(k, n));
    worst = std::max(worst, std::fabs(s1 - s0));
    change += std::fabs(s2 - s0);
  }
  change /= double(N);
  f.values["rope_diff"] = worst;
  f.values["rope_change"] = change;
  f.values["pass"] = worst <= as_num(p, "tol") && change >= 1e-3 ? 1.0 : 0.0;
  f.notes.push_back(fmt::format("{} pairs, d_k {}, positions below {}, shift {}, base {}", N, D, max_pos, shift, base));
}

}  // namespace

CellFigures compute_invariants(const std::map<std::string, std::string>& params) {
  CellFigures f;
  for (const auto& k : find_cell_kind("invariants")->figures) f.values[k] = std::nullopt;
  const std::string check = params.at("check");
  if (check == "variance") variance_check(params, f);
  else if (check == "flash") flash_check(params, f);
  else if (check == "rope") rope_check(params, f);
  else throw std::logic_error("invariants: unknown check " + check);
  return f;
}

}  // namespace attnlab
