// The CUDA kernels (src/cuda) against a naive CPU reference written here, independently of them:
// head-major attention forward/backward and linear attention forward/backward accumulated in
// double, one query at a time, with no tiling, no online softmax and no prefix sums. The reference
// itself is checked by central finite differences (that test runs on every machine).
//
// Tolerances, max |kernel − reference| / max(max |reference|, 1) per tensor (inputs are O(1)):
//   fp32                                   out, lse: 2e-5     dq, dk, dv: 1e-4
//   bf16 vs the reference on the same      (the kernels accumulate in fp32 on exactly those
//        bf16-rounded inputs               values, so the fp32 tolerances apply)
//   bf16 vs the reference on the original  2e-2 (what rounding the inputs costs a user)
//        fp32 inputs
// Every GPU test prints "SKIPPED ..." and passes when no device is visible or the build has no
// CUDA; tests/CMakeLists.txt turns that line into a CTest skip (label `cuda`).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "cuda/cuda_attention.h"

using namespace attnlab;

namespace {

using Vec = std::vector<double>;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

bool skip_without_gpu(const char* what) {
  if (cuda_available()) return false;
#ifdef ATTNLAB_HAVE_CUDA
  std::printf("SKIPPED %s: no CUDA device visible (%s)\n", what, cuda_device_name().c_str());
#else
  std::printf("SKIPPED %s: built without CUDA (configure with -DATTNLAB_CUDA=ON)\n", what);
#endif
  return true;
}

// round to the nearest bfloat16, ties to even (what __float2bfloat16 does); finite inputs
float round_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  u &= 0xFFFF0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

std::vector<float> random_vec(Rng& rng, std::size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

Vec to_double(const std::vector<float>& v, bool bf16) {
  Vec d(v.size());
  for (std::size_t i = 0; i < v.size(); i++) d[i] = bf16 ? double(round_bf16(v[i])) : double(v[i]);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Reference: softmax attention. Shapes as in cuda_attention.h; keep may be empty (= all kept).
struct Problem {
  int B, Hq, Hkv, Tq, Tk, D;
  double scale;
  bool causal;
  std::vector<unsigned char> keep;  // [B,Tk] or empty
  bool visible(int b, int i, int j) const {
    if (causal && j > Tk - Tq + i) return false;
    return keep.empty() || keep[std::size_t(b) * Tk + j];
  }
  std::size_t qi(int b, int h, int i) const { return ((std::size_t(b) * Hq + h) * Tq + i) * D; }
  std::size_t ki(int b, int g, int j) const { return ((std::size_t(b) * Hkv + g) * Tk + j) * D; }
  std::size_t nq() const { return std::size_t(B) * Hq * Tq * D; }
  std::size_t nkv() const { return std::size_t(B) * Hkv * Tk * D; }
  std::size_t rows() const { return std::size_t(B) * Hq * Tq; }
};

struct Grads {
  Vec out, stat, dq, dk, dv;  // stat: lse (softmax) or den (linear)
};

// out, lse; and dq, dk, dv for dout (when given)
Grads ref_softmax(const Problem& p, const Vec& q, const Vec& k, const Vec& v, const Vec* dout) {
  Grads r;
  r.out.assign(p.nq(), 0.0);
  r.stat.assign(p.rows(), kNegInf);
  r.dq.assign(p.nq(), 0.0);
  r.dk.assign(p.nkv(), 0.0);
  r.dv.assign(p.nkv(), 0.0);
  const int group = p.Hq / p.Hkv;
  std::vector<double> s(p.Tk), dp(p.Tk);
  for (int b = 0; b < p.B; b++)
    for (int h = 0; h < p.Hq; h++) {
      const int g = h / group;
      for (int i = 0; i < p.Tq; i++) {
        const double* qr = &q[p.qi(b, h, i)];
        double mx = kNegInf;
        for (int j = 0; j < p.Tk; j++) {
          s[j] = kNegInf;
          if (!p.visible(b, i, j)) continue;
          double dot = 0.0;
          for (int d = 0; d < p.D; d++) dot += qr[d] * k[p.ki(b, g, j) + d];
          s[j] = p.scale * dot;
          mx = std::max(mx, s[j]);
        }
        if (mx == kNegInf) continue;  // sees no key: out 0, lse −inf, no gradient
        double sum = 0.0;
        for (int j = 0; j < p.Tk; j++) sum += s[j] == kNegInf ? 0.0 : std::exp(s[j] - mx);
        r.stat[(std::size_t(b) * p.Hq + h) * p.Tq + i] = mx + std::log(sum);
        for (int j = 0; j < p.Tk; j++) s[j] = s[j] == kNegInf ? 0.0 : std::exp(s[j] - mx) / sum;  // P
        double* o = &r.out[p.qi(b, h, i)];
        for (int j = 0; j < p.Tk; j++)
          for (int d = 0; d < p.D; d++) o[d] += s[j] * v[p.ki(b, g, j) + d];
        if (!dout) continue;
        const double* dO = &(*dout)[p.qi(b, h, i)];
        double delta = 0.0;  // Σ_j P_j dP_j
        for (int j = 0; j < p.Tk; j++) {
          double dot = 0.0;
          for (int d = 0; d < p.D; d++) dot += dO[d] * v[p.ki(b, g, j) + d];
          dp[j] = dot;
          delta += s[j] * dot;
        }
        for (int j = 0; j < p.Tk; j++) {
          if (s[j] == 0.0) continue;
          const double ds = s[j] * (dp[j] - delta);
          for (int d = 0; d < p.D; d++) {
            r.dq[p.qi(b, h, i) + d] += p.scale * ds * k[p.ki(b, g, j) + d];
            r.dk[p.ki(b, g, j) + d] += p.scale * ds * qr[d];
            r.dv[p.ki(b, g, j) + d] += s[j] * dO[d];
          }
        }
      }
    }
  return r;
}

// Reference: linear attention, o_i = Σ_j a_ij v_j / (Σ_j a_ij + ε), a_ij = φ(q_i)·φ(k_j) over the
// visible keys (the implied-weights form of src/attention/linear.h, not its prefix sums).
double phi(double x) { return x > 0.0 ? x + 1.0 : std::exp(x); }
double dphi(double x) { return x > 0.0 ? 1.0 : std::exp(x); }
constexpr double kLinEps = 1e-6;

Grads ref_linear(const Problem& p, const Vec& q, const Vec& k, const Vec& v, const Vec* dout) {
  Grads r;
  r.out.assign(p.nq(), 0.0);
  r.stat.assign(p.rows(), 0.0);
  r.dq.assign(p.nq(), 0.0);
  r.dk.assign(p.nkv(), 0.0);
  r.dv.assign(p.nkv(), 0.0);
  const int group = p.Hq / p.Hkv;
  std::vector<double> a(p.Tk), u(p.D), f(p.D), du(p.D);
  for (int b = 0; b < p.B; b++)
    for (int h = 0; h < p.Hq; h++) {
      const int g = h / group;
      for (int i = 0; i < p.Tq; i++) {
        for (int d = 0; d < p.D; d++) u[d] = phi(q[p.qi(b, h, i) + d]);
        double den = kLinEps;
        for (int j = 0; j < p.Tk; j++) {
          a[j] = 0.0;
          if (!p.visible(b, i, j)) continue;
          for (int d = 0; d < p.D; d++) a[j] += u[d] * phi(k[p.ki(b, g, j) + d]);
          den += a[j];
        }
        r.stat[(std::size_t(b) * p.Hq + h) * p.Tq + i] = den;
        double* o = &r.out[p.qi(b, h, i)];
        for (int j = 0; j < p.Tk; j++)
          for (int d = 0; d < p.D; d++) o[d] += a[j] * v[p.ki(b, g, j) + d] / den;
        if (!dout) continue;
        const double* dO = &(*dout)[p.qi(b, h, i)];
        // o = n/den: ∂L/∂a_j = (dO·v_j)/den − (dO·o)/den;  a_j = u·f_j
        double dOo = 0.0;
        for (int d = 0; d < p.D; d++) dOo += dO[d] * o[d];
        std::fill(du.begin(), du.end(), 0.0);
        for (int j = 0; j < p.Tk; j++) {
          if (!p.visible(b, i, j)) continue;
          double dOv = 0.0;
          for (int d = 0; d < p.D; d++) dOv += dO[d] * v[p.ki(b, g, j) + d];
          const double da = (dOv - dOo) / den;
          for (int d = 0; d < p.D; d++) {
            const double kd = k[p.ki(b, g, j) + d];
            du[d] += da * phi(kd);
            r.dk[p.ki(b, g, j) + d] += da * u[d] * dphi(kd);
            r.dv[p.ki(b, g, j) + d] += a[j] / den * dO[d];
          }
        }
        for (int d = 0; d < p.D; d++) r.dq[p.qi(b, h, i) + d] = du[d] * dphi(q[p.qi(b, h, i) + d]);
      }
    }
  return r;
}

// ---------------------------------------------------------------------------------------------
// max |a − ref| / max(max |ref|, 1) (entries where ref is −inf must be −inf in a too, and are
// skipped). The floor 1 is the scale of the inputs: some gradients are exactly 0 in exact
// arithmetic (one visible key: dS = P(dP − δ) = 0), and there the kernels' rounding noise must be
// measured against something.
double rel_err(const std::vector<float>& a, const Vec& ref, std::string* why = nullptr) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); i++) {
    if (std::isinf(ref[i])) {
      if (!(std::isinf(a[i]) && a[i] < 0)) {
        if (why) *why = fmt::format("entry {}: expected -inf, got {}", i, a[i]);
        return std::numeric_limits<double>::infinity();
      }
      continue;
    }
    if (!std::isfinite(a[i])) {
      if (why) *why = fmt::format("entry {}: got {}", i, a[i]);
      return std::numeric_limits<double>::infinity();
    }
    num = std::max(num, std::abs(double(a[i]) - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return num / std::max(den, 1.0);
}

enum class Mask { none, causal, padding, causal_padding };
const char* mask_name(Mask m) {
  switch (m) {
    case Mask::none: return "none";
    case Mask::causal: return "causal";
    case Mask::padding: return "padding";
    default: return "causal+padding";
  }
}

struct Case {
  int B, Hq, Hkv, Tq, Tk, D;
  Mask mask;
  CudaDType dtype;
  std::string name() const {
    return fmt::format("B={} Hq={} Hkv={} Tq={} Tk={} D={} mask={} dtype={}", B, Hq, Hkv, Tq, Tk, D,
                       mask_name(mask), dtype == CudaDType::bf16 ? "bf16" : "f32");
  }
};

// Every head dimension × mask, lengths 1 / 63 / 130 / 257 (and Tq ≠ Tk both ways), MHA, GQA with
// Hkv = 2 and MQA (Hkv = 1) in rotation.
std::vector<Case> cases(CudaDType dt) {
  const int lengths[][2] = {{1, 1}, {63, 63}, {130, 130}, {257, 257}, {1, 130}, {63, 257}, {130, 63}};
  const int kv_heads[] = {4, 2, 1};
  std::vector<Case> out;
  int n = 0;
  for (int D : {32, 64, 128})
    for (Mask m : {Mask::none, Mask::causal, Mask::padding, Mask::causal_padding})
      for (int rep = 0; rep < 2; rep++, n++) {
        const auto& L = lengths[n % 7];
        out.push_back({2, 4, kv_heads[n % 3], L[0], L[1], D, m, dt});
      }
  return out;
}

// Batch 0 drops about a quarter of the keys at random; batch 1 drops its first 40 keys, so with a
// causal mask its early queries see no key at all.
std::vector<unsigned char> make_keep(Rng& rng, int B, int Tk) {
  std::vector<unsigned char> keep(std::size_t(B) * Tk, 1);
  for (int j = 0; j < Tk; j++) keep[j] = rng.uniform() < 0.25f ? 0 : 1;
  for (int b = 1; b < B; b++)
    for (int j = 0; j < std::min(Tk, 40); j++) keep[std::size_t(b) * Tk + j] = 0;
  return keep;
}

struct Inputs {
  Problem p;
  std::vector<float> q, k, v, dout;
};

Inputs make_inputs(const Case& c, std::uint64_t seed, bool linear) {
  Rng rng(seed);
  Inputs in;
  in.p = Problem{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D, 1.0 / std::sqrt(double(c.D)),
                 c.mask == Mask::causal || c.mask == Mask::causal_padding, {}};
  if (c.mask == Mask::padding || c.mask == Mask::causal_padding) in.p.keep = make_keep(rng, c.B, c.Tk);
  // softmax: q in [−2, 2) sharpens the weights; linear: φ is exp below 0, so [−2, 2) covers both arms
  in.q = random_vec(rng, in.p.nq(), -2.0f, 2.0f);
  in.k = random_vec(rng, in.p.nkv(), linear ? -2.0f : -1.0f, linear ? 2.0f : 1.0f);
  in.v = random_vec(rng, in.p.nkv(), -1.0f, 1.0f);
  in.dout = random_vec(rng, in.p.nq(), -1.0f, 1.0f);
  return in;
}

struct Tol {
  double value, grad;
};
constexpr Tol kTolF32{2e-5, 1e-4};
constexpr Tol kTolBf16VsF32{2e-2, 2e-2};

// Runs one kernel pair on the GPU and compares it with the reference.
void check_case(const Case& c, bool linear, std::uint64_t seed) {
  const Inputs in = make_inputs(c, seed, linear);
  const Problem& p = in.p;
  const bool bf16 = c.dtype == CudaDType::bf16;
  CudaAttnShape s{p.B, p.Hq, p.Hkv, p.Tq, p.Tk, p.D};
  CudaAttnOptions o;
  o.scale = float(p.scale);
  o.causal = p.causal;
  o.key_keep = p.keep.empty() ? nullptr : p.keep.data();
  o.dtype = c.dtype;

  std::vector<float> out(p.nq()), stat(p.rows()), dq(p.nq()), dk(p.nkv()), dv(p.nkv());
  if (linear) {
    cuda_linear_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data());
    cuda_linear_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data(),
                         in.dout.data(), dq.data(), dk.data(), dv.data());
  } else {
    cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data());
    cuda_flash_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), stat.data(),
                        in.dout.data(), dq.data(), dk.data(), dv.data());
  }

  // the reference on the values the kernels saw (bf16: rounded), then, for bf16, on the originals
  const Vec q = to_double(in.q, bf16), k = to_double(in.k, bf16), v = to_double(in.v, bf16),
            dO = to_double(in.dout, bf16);
  auto run_ref = [&](const Vec& q_, const Vec& k_, const Vec& v_, const Vec& dO_) {
    return linear ? ref_linear(p, q_, k_, v_, &dO_) : ref_softmax(p, q_, k_, v_, &dO_);
  };
  auto compare = [&](const Grads& ref, Tol tol, const char* against) {
    const char* names[] = {"out", linear ? "den" : "lse", "dq", "dk", "dv"};
    const std::vector<float>* got[] = {&out, &stat, &dq, &dk, &dv};
    const Vec* want[] = {&ref.out, &ref.stat, &ref.dq, &ref.dk, &ref.dv};
    for (int t = 0; t < 5; t++) {
      std::string why;
      const double e = rel_err(*got[t], *want[t], &why);
      const double limit = t < 2 ? tol.value : tol.grad;
      INFO(fmt::format("{} {}: {} vs reference on {}: rel err {:.3g} (limit {:.1g}) {}",
                       linear ? "linear" : "flash", c.name(), names[t], against, e, limit, why));
      CHECK(e <= limit);
    }
  };
  compare(run_ref(q, k, v, dO), kTolF32, bf16 ? "bf16-rounded inputs" : "the inputs");
  if (bf16)
    compare(run_ref(to_double(in.q, false), to_double(in.k, false), to_double(in.v, false),
                    to_double(in.dout, false)),
            kTolBf16VsF32, "the original fp32 inputs");
}

// L = Σ out ⊙ w; the reference's dq, dk, dv (with dout = w) against central differences
void check_reference_gradients(bool linear) {
  for (bool causal : {false, true}) {
    Case c{2, 4, 2, 3, 5, 4, causal ? Mask::causal_padding : Mask::padding, CudaDType::f32};
    Inputs in = make_inputs(c, 11, linear);
    in.p.keep[std::size_t(1) * c.Tk + 4] = 1;  // batch 1: keys 0..3 padded, key 4 kept
    const Problem& p = in.p;
    Vec q = to_double(in.q, false), k = to_double(in.k, false), v = to_double(in.v, false);
    const Vec w = to_double(in.dout, false);
    auto loss = [&]() {
      const Grads r = linear ? ref_linear(p, q, k, v, nullptr) : ref_softmax(p, q, k, v, nullptr);
      double L = 0.0;
      for (std::size_t i = 0; i < w.size(); i++) L += r.out[i] * w[i];
      return L;
    };
    const Grads g = linear ? ref_linear(p, q, k, v, &w) : ref_softmax(p, q, k, v, &w);
    double worst = 0.0, scale = 0.0;
    for (auto [x, dx] : {std::pair{&q, &g.dq}, std::pair{&k, &g.dk}, std::pair{&v, &g.dv}})
      for (std::size_t i = 0; i < x->size(); i++) {
        const double h = 1e-5, x0 = (*x)[i];
        (*x)[i] = x0 + h;
        const double lp = loss();
        (*x)[i] = x0 - h;
        const double lm = loss();
        (*x)[i] = x0;
        const double fd = (lp - lm) / (2 * h);
        worst = std::max(worst, std::abs(fd - (*dx)[i]));
        scale = std::max(scale, std::abs(fd));
      }
    INFO(fmt::format("{} reference, causal={}: max |fd − analytic| = {:.3g}, max |grad| = {:.3g}",
                     linear ? "linear" : "softmax", causal, worst, scale));
    CHECK(scale > 1e-3);  // the check compares something
    CHECK(worst <= 1e-7 * std::max(1.0, scale));
  }
}

}  // namespace

// ---- CPU-only checks: run on every machine --------------------------------------------------

TEST_CASE("reference softmax attention gradients match finite differences") {
  check_reference_gradients(false);
}

TEST_CASE("reference linear attention gradients match finite differences") {
  check_reference_gradients(true);
}

TEST_CASE("shape checks name the offending size") {
  CudaAttnShape s{1, 4, 4, 8, 8, 48};
  CHECK_THROWS_WITH_AS(cuda_check_shape(s, true, "flash"), doctest::Contains("head dimension must be 32, 64 or 128"),
                       UserError);
  CHECK_NOTHROW(cuda_check_shape(s, false, "linear"));
  s.D = 64;
  s.Hkv = 3;
  CHECK_THROWS_WITH_AS(cuda_check_shape(s, true, "flash"), doctest::Contains("multiple of n_kv_heads"), UserError);
  s.Hkv = 4;
  s.Tq = 0;
  CHECK_THROWS_AS(cuda_check_shape(s, true, "flash"), UserError);
}

TEST_CASE("without a GPU the kernels refuse with a user error") {
  if (cuda_available()) {
    std::printf("(a CUDA device is visible: nothing to check here)\n");
    return;
  }
  CudaAttnShape s{1, 1, 1, 2, 2, 32};
  std::vector<float> x(64, 0.5f), o(64), l(2);
  CHECK_THROWS_AS(cuda_flash_forward(s, {}, x.data(), x.data(), x.data(), o.data(), l.data()), UserError);
  CHECK_THROWS_AS(cuda_linear_forward(s, {}, x.data(), x.data(), x.data(), o.data(), l.data()), UserError);
}

// ---- GPU checks ------------------------------------------------------------------------------

TEST_CASE("flash attention fp32 matches the reference") {
  if (skip_without_gpu("flash attention fp32")) return;
  std::uint64_t seed = 100;
  for (const Case& c : cases(CudaDType::f32)) check_case(c, false, seed++);
}

TEST_CASE("flash attention bf16 matches the reference") {
  if (skip_without_gpu("flash attention bf16")) return;
  std::uint64_t seed = 200;
  for (const Case& c : cases(CudaDType::bf16)) check_case(c, false, seed++);
}

TEST_CASE("linear attention fp32 matches the reference") {
  if (skip_without_gpu("linear attention fp32")) return;
  std::uint64_t seed = 300;
  for (const Case& c : cases(CudaDType::f32)) check_case(c, true, seed++);
}

TEST_CASE("linear attention bf16 matches the reference") {
  if (skip_without_gpu("linear attention bf16")) return;
  std::uint64_t seed = 400;
  for (const Case& c : cases(CudaDType::bf16)) check_case(c, true, seed++);
}

TEST_CASE("flash backward is deterministic and transfers are counted") {
  if (skip_without_gpu("determinism and transfer counts")) return;
  const Case c{2, 4, 2, 257, 257, 64, Mask::causal_padding, CudaDType::f32};
  const Inputs in = make_inputs(c, 7, false);
  const Problem& p = in.p;
  CudaAttnShape s{p.B, p.Hq, p.Hkv, p.Tq, p.Tk, p.D};
  CudaAttnOptions o;
  o.causal = true;
  o.key_keep = p.keep.data();
  std::vector<float> out(p.nq()), lse(p.rows());
  cuda_reset_transfer_stats();
  cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
  const CudaTransferStats t = cuda_transfer_stats();
  CHECK(t.h2d_bytes == 4 * (p.nq() + 2 * p.nkv()) + p.keep.size());
  CHECK(t.h2d_copies == 4);
  CHECK(t.d2h_bytes == 4 * (p.nq() + p.rows()));
  CHECK(t.d2h_copies == 2);
  std::vector<float> g1(p.nq() + 2 * p.nkv()), g2(g1.size());
  for (auto* g : {&g1, &g2})
    cuda_flash_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(),
                        in.dout.data(), g->data(), g->data() + p.nq(), g->data() + p.nq() + p.nkv());
  CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
}

TEST_CASE("model.device cuda: without a GPU, building the module is a clear user error") {
  if (cuda_available()) return;  // the GPU case is the next test
  AttentionSpec s;
  s.d_model = 64;
  s.n_heads = 2;
  s.device = AttnDevice::cuda;
  ParamStore store;
  Rng rng(1);
  bool threw = false;
  try {
    make_attention(s, store, rng);
  } catch (const UserError& e) {
    threw = std::string(e.what()).find("model.device is cuda") != std::string::npos;
  }
  CHECK(threw);
}

TEST_CASE("model.device cuda: the scaled_dot_product module on the GPU matches its CPU flash path") {
  if (skip_without_gpu("module seam")) return;
  // one causal self-attention module with projections, B=2, T=300, 4 heads × 32 (GQA 2), key
  // padding: forward outputs and all gradients (inputs and parameters) against device: cpu
  const int B = 2, T = 300, C = 128;
  std::vector<float> x(size_t(B) * T * C), dout(x.size());
  Rng data(3);
  for (auto& v : x) v = data.normal();
  for (auto& v : dout) v = data.normal();
  std::vector<unsigned char> keep(size_t(B) * T, 1);
  for (int t = 250; t < T; t++) keep[T + t] = 0;
  struct Run {
    std::vector<float> out, dx;
    std::vector<std::vector<float>> grads;
  };
  auto run = [&](const std::string& device) {
    AttentionSpec s;
    s.d_model = C;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.causal = true;
    s.impl = AttnImpl::flash;
    s.device = attn_device(device);
    ParamStore store;
    Rng rng(9);
    auto a = make_attention(s, store, rng);
    Run r;
    r.out.resize(x.size());
    r.dx.assign(x.size(), 0.0f);
    a->forward(r.out.data(), x.data(), x.data(), B, T, T, AttnMask{keep.data()}, true, nullptr);
    store.zero_grad();
    a->backward(r.dx.data(), r.dx.data(), dout.data());
    for (auto& p : store.all()) r.grads.push_back(p.g);
    return r;
  };
  const Run cpu = run("cpu"), gpu = run("cuda");
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0, scale = 1;
    for (size_t i = 0; i < a.size(); i++) {
      worst = std::max(worst, double(std::fabs(a[i] - b[i])));
      scale = std::max(scale, double(std::fabs(a[i])));
    }
    return worst / scale;
  };
  CHECK(rel(cpu.out, gpu.out) < 2e-5);
  CHECK(rel(cpu.dx, gpu.dx) < 1e-4);
  for (size_t i = 0; i < cpu.grads.size(); i++) CHECK(rel(cpu.grads[i], gpu.grads[i]) < 1e-4);
}
