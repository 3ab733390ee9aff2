// Tests of the bf16 flash kernel (src/attention/flash_bf16.cpp: FlashOptions::bf16), with each
// bf16 kernel this machine has (skipped, saying so, where it has none):
//   a) against the fp32 kernel on the same inputs, already bf16 values, so that the only roundings
//      the bf16 kernel adds are those of P and dS before the products that read them (the
//      products of two bf16 values are exact in fp32). To first order each adds at most u = 2^-8
//      of one term, so elementwise
//         |O16 − O32|   ≤ 2u · Σ_j P_ij |V_jd|
//         |dV16 − dV32| ≤ 2u · Σ_i P_ij |dO_id|
//         |dQ16 − dQ32| ≤ 2u · s Σ_j P_ij (|dP_ij| + |D_i|) |K_jd|   (|dS| ≤ P (|dP| + |D|))
//         |dK16 − dK32| ≤ 2u · s Σ_i P_ij (|dP_ij| + |D_i|) |Q_id|
//      (a factor 2 over the first-order estimate), plus a float32 allowance of 1e-5 (1 + max s|q||k|)
//      times the same sums for the two kernels' different summation orders; the log-sum-exp
//      sees no bf16 rounding at all (fp32 scores of exact products). P, dP and D come from a
//      float64 reference. At least one tensor must differ by more than the float32 allowance, or
//      the bf16 products were not in effect. The backward runs on the fp32 forward's O and L, so
//      that its own roundings are measured alone;
//   b) the same bits for 1, 2 and 3 threads, and for token-major and head-major buffers;
//   c) a batch row whose keys are all padded: O = 0, L = −inf, no gradient.
#include <doctest/doctest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"

using namespace attnlab;

namespace {

constexpr double kU = 0x1p-8;  // bf16's unit roundoff (8 significant bits)

struct Case {
  int B, Hq, Hkv, Tq, Tk, D;
  bool causal;
  int window;
  bool pad;    // last batch row: its last 9 keys padded
  bool alibi;
  bool empty;  // first batch row: every key padded
};

// visibility of key j to query i (flash.h's rules)
bool sees(const Case& c, const std::vector<unsigned char>& keep, int b, int i, int j) {
  const int p = i + c.Tk - c.Tq;
  bool ok = c.causal ? (j <= p && (c.window <= 0 || p - c.window < j)) : (c.window <= 0 || std::abs(p - j) < c.window);
  return ok && keep[size_t(b) * c.Tk + j];
}

struct Tensors {
  std::vector<float> o, l, dq, dk, dv;
};

// the kernel's forward and backward on head-major buffers; the backward on (o_in, l_in) when given
Tensors run(const Case& c, const FlashOptions& opt, const std::vector<float>& q, const std::vector<float>& k,
            const std::vector<float>& v, const std::vector<float>& dout, const Tensors* fwd_in = nullptr) {
  const FlashShape sh{c.B, c.Hq, c.Hkv, c.Tq, c.Tk, c.D};
  FlashWorkspace ws;
  Tensors t;
  t.o.assign(q.size(), 5.0f);
  t.l.assign(size_t(c.B) * c.Hq * c.Tq, 5.0f);
  flash_forward(t.o.data(), t.l.data(), q.data(), k.data(), v.data(), sh, opt, ws);
  const std::vector<float>& o = fwd_in ? fwd_in->o : t.o;
  const std::vector<float>& l = fwd_in ? fwd_in->l : t.l;
  t.dq.assign(q.size(), 5.0f);
  t.dk.assign(k.size(), 5.0f);
  t.dv.assign(v.size(), 5.0f);
  flash_backward(t.dq.data(), t.dk.data(), t.dv.data(), dout.data(), q.data(), k.data(), v.data(), o.data(),
                 l.data(), sh, opt, ws);
  return t;
}

// The coefficients of the bound (see the top), float64, head-major like the tensors.
struct Coefs {
  std::vector<double> o, dq, dk, dv;
  double smax = 0.0;  // max s Σ_d |q_id k_jd|
};

Coefs coefficients(const Case& c, const FlashOptions& opt, const std::vector<float>& q, const std::vector<float>& k,
                   const std::vector<float>& v, const std::vector<float>& dout,
                   const std::vector<unsigned char>& keep) {
  const int D = c.D, group = c.Hq / c.Hkv;
  Coefs r;
  r.o.assign(q.size(), 0.0), r.dq.assign(q.size(), 0.0), r.dk.assign(k.size(), 0.0), r.dv.assign(v.size(), 0.0);
  std::vector<double> P(c.Tk), dP(c.Tk);
  for (int b = 0; b < c.B; b++)
    for (int h = 0; h < c.Hq; h++) {
      const int g = h / group;
      const double slope = c.alibi ? opt.alibi_slopes[h] : 0.0;
      const size_t qo = (size_t(b) * c.Hq + h) * c.Tq * D, ko = (size_t(b) * c.Hkv + g) * c.Tk * D;
      for (int i = 0; i < c.Tq; i++) {
        const float* qi = &q[qo + size_t(i) * D];
        const float* di = &dout[qo + size_t(i) * D];
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < c.Tk; j++) {
          P[j] = -std::numeric_limits<double>::infinity();
          if (!sees(c, keep, b, i, j)) continue;
          double s = 0.0, sa = 0.0;
          for (int d = 0; d < D; d++) {
            s += double(qi[d]) * k[ko + size_t(j) * D + d];
            sa += std::fabs(double(qi[d]) * k[ko + size_t(j) * D + d]);
          }
          r.smax = std::max(r.smax, sa * opt.scale);
          P[j] = s * opt.scale - slope * std::abs(i + c.Tk - c.Tq - j);
          mx = std::max(mx, P[j]);
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // sees no key
        double sum = 0.0;
        for (int j = 0; j < c.Tk; j++) sum += P[j] = std::exp(P[j] - mx);
        double Di = 0.0;
        for (int j = 0; j < c.Tk; j++) {
          P[j] /= sum;
          dP[j] = 0.0;
          for (int d = 0; d < D; d++) dP[j] += double(di[d]) * v[ko + size_t(j) * D + d];
          Di += P[j] * dP[j];  // D_i = rowsum(dO ∘ O) = Σ_j P_ij dP_ij
        }
        for (int j = 0; j < c.Tk; j++) {
          if (P[j] == 0.0) continue;
          const double w = opt.scale * P[j] * (std::fabs(dP[j]) + std::fabs(Di));
          for (int d = 0; d < D; d++) {
            const size_t kj = ko + size_t(j) * D + d, qd = qo + size_t(i) * D + d;
            r.o[qd] += P[j] * std::fabs(v[kj]);
            r.dv[kj] += P[j] * std::fabs(di[d]);
            r.dq[qd] += w * std::fabs(k[kj]);
            r.dk[kj] += w * std::fabs(qi[d]);
          }
        }
      }
    }
  return r;
}

std::vector<float> bf16_normal(size_t n, Rng& rng) {
  std::vector<float> x(n);
  for (float& e : x) e = from_bf16(to_bf16(rng.normal()));
  return x;
}

// head-major [B, H, T, D] -> token-major [B, T, H·D]
std::vector<float> tokens(const std::vector<float>& x, int B, int H, int T, int D) {
  std::vector<float> y(x.size());
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++)
          y[(size_t(b) * T + t) * H * D + size_t(h) * D + d] = x[((size_t(b) * H + h) * T + t) * D + d];
  return y;
}

const Case kCases[] = {
    {2, 4, 2, 100, 100, 64, true, 0, false, false, false},  // GQA, lengths not a multiple of the tile
    {2, 2, 2, 70, 130, 24, false, 0, true, false, true},    // cross-length, D not a multiple of 32, padding
    {1, 3, 1, 96, 96, 40, true, 33, false, true, false},    // MQA, window, ALiBi
    {2, 2, 2, 64, 64, 64, true, 0, false, false, false},    // whole tiles
    {1, 2, 1, 33, 200, 16, true, 0, true, false, false},    // queries at the end of a longer prefix
    {1, 2, 2, 80, 80, 128, true, 0, false, false, false},   // wide heads: four K tiles along D
};

}  // namespace

TEST_CASE("flash bf16: within the bf16 rounding model of the fp32 kernel, each bf16 kernel") {
  const std::vector<Bf16Kernel> kernels = bf16_kernels_supported();
  if (kernels.empty()) {
    MESSAGE("SKIPPED: this machine has no bf16 kernel (AMX-BF16 or AVX512-BF16)");
    return;
  }
  for (Bf16Kernel kk : kernels)
    for (const Case& c : kCases) {
      INFO("kernel " << std::string(bf16_kernel_name(kk)) << ", Tq " << c.Tq << ", Tk " << c.Tk << ", D " << c.D);
      Rng rng(uint64_t(c.Tq * 131 + c.D));
      const std::vector<float> q = bf16_normal(size_t(c.B) * c.Hq * c.Tq * c.D, rng),
                               k = bf16_normal(size_t(c.B) * c.Hkv * c.Tk * c.D, rng),
                               v = bf16_normal(size_t(c.B) * c.Hkv * c.Tk * c.D, rng),
                               dout = bf16_normal(size_t(c.B) * c.Hq * c.Tq * c.D, rng);
      std::vector<unsigned char> keep(size_t(c.B) * c.Tk, 1);
      if (c.pad) std::fill(keep.end() - 9, keep.end(), 0);
      if (c.empty) std::fill(keep.begin(), keep.begin() + c.Tk, 0);
      std::vector<float> slopes(c.Hq);
      for (int h = 0; h < c.Hq; h++) slopes[h] = std::pow(2.0f, -float(h + 1));
      FlashOptions opt;
      opt.scale = 1.0f / std::sqrt(float(c.D));
      opt.causal = c.causal;
      opt.window = c.window;
      opt.key_keep = keep.data();
      opt.alibi_slopes = c.alibi ? slopes.data() : nullptr;
      const Tensors f32 = run(c, opt, q, k, v, dout);
      opt.bf16 = kk;
      const Tensors b16 = run(c, opt, q, k, v, dout, &f32);
      const Coefs cf = coefficients(c, opt, q, k, v, dout, keep);
      const double noise = 1e-5 * (1.0 + cf.smax);
      int beyond_noise = 0;
      auto check = [&](const char* name, const std::vector<float>& x16, const std::vector<float>& x32,
                       const std::vector<double>& coef) {
        double worst = 0.0, worst_noise = 0.0;
        for (size_t e = 0; e < x16.size(); e++) {
          const double err = std::fabs(double(x16[e]) - x32[e]);
          worst = std::max(worst, err / ((2 * kU + noise) * coef[e] + 1e-30));
          worst_noise = std::max(worst_noise, err / (noise * coef[e] + 1e-30));
        }
        INFO(std::string(name) << ": max error / bound = " << worst);
        CHECK(worst <= 1.0);
        beyond_noise += worst_noise > 1.0;
      };
      check("O", b16.o, f32.o, cf.o);
      check("dQ", b16.dq, f32.dq, cf.dq);
      check("dK", b16.dk, f32.dk, cf.dk);
      check("dV", b16.dv, f32.dv, cf.dv);
      CHECK_MESSAGE(beyond_noise > 0, "no tensor beyond the fp32 allowance: bf16 products not in effect?");
      for (size_t e = 0; e < b16.l.size(); e++) {
        if (f32.l[e] == -std::numeric_limits<float>::infinity()) {
          CHECK(b16.l[e] == f32.l[e]);
          continue;
        }
        CHECK(std::fabs(b16.l[e] - f32.l[e]) <= noise * (1.0 + std::fabs(f32.l[e])));
      }
      if (c.empty) {  // batch row 0 sees nothing
        const size_t rows = size_t(c.Hq) * c.Tq;
        CHECK(std::all_of(b16.o.begin(), b16.o.begin() + rows * c.D, [](float x) { return x == 0.0f; }));
        CHECK(std::all_of(b16.l.begin(), b16.l.begin() + rows,
                          [](float x) { return x == -std::numeric_limits<float>::infinity(); }));
        CHECK(std::all_of(b16.dq.begin(), b16.dq.begin() + rows * c.D, [](float x) { return x == 0.0f; }));
        CHECK(std::all_of(b16.dk.begin(), b16.dk.begin() + size_t(c.Hkv) * c.Tk * c.D,
                          [](float x) { return x == 0.0f; }));
      }
    }
}

TEST_CASE("flash bf16: the same bits for 1, 2 and 3 threads and for token-major buffers") {
  const std::vector<Bf16Kernel> kernels = bf16_kernels_supported();
  if (kernels.empty()) {
    MESSAGE("SKIPPED: this machine has no bf16 kernel (AMX-BF16 or AVX512-BF16)");
    return;
  }
  const int saved = omp_get_max_threads();
  for (Bf16Kernel kk : kernels)
    for (const Case& c : kCases) {
      INFO("kernel " << std::string(bf16_kernel_name(kk)) << ", Tq " << c.Tq << ", D " << c.D);
      Rng rng(uint64_t(c.Tk * 7 + c.D));
      auto normal = [&](size_t n) {
        std::vector<float> x(n);
        for (float& e : x) e = rng.normal();
        return x;
      };
      // large enough to run in parallel: several times the kernel's single-thread threshold
      const Case big{c.B, c.Hq, c.Hkv, c.Tq * 4, c.Tk * 4, c.D, c.causal, c.window, false, c.alibi, false};
      const std::vector<float> q = normal(size_t(big.B) * big.Hq * big.Tq * big.D),
                               k = normal(size_t(big.B) * big.Hkv * big.Tk * big.D),
                               v = normal(size_t(big.B) * big.Hkv * big.Tk * big.D),
                               dout = normal(size_t(big.B) * big.Hq * big.Tq * big.D);
      std::vector<float> slopes(big.Hq, 0.25f);
      FlashOptions opt;
      opt.scale = 1.0f / std::sqrt(float(big.D));
      opt.causal = big.causal;
      opt.window = big.window;
      opt.alibi_slopes = big.alibi ? slopes.data() : nullptr;
      opt.bf16 = kk;
      omp_set_num_threads(1);
      const Tensors one = run(big, opt, q, k, v, dout);
      for (int threads : {2, 3}) {
        omp_set_num_threads(threads);
        const Tensors t = run(big, opt, q, k, v, dout);
        CHECK(t.o == one.o);
        CHECK(t.l == one.l);
        CHECK(t.dq == one.dq);
        CHECK(t.dk == one.dk);
        CHECK(t.dv == one.dv);
      }
      // token-major: [B, T, H·D] buffers, read and written in place
      omp_set_num_threads(2);
      const FlashShape tm{big.B, big.Hq, big.Hkv, big.Tq, big.Tk, big.D, big.Hq * big.D, big.Hkv * big.D};
      const std::vector<float> qt = tokens(q, big.B, big.Hq, big.Tq, big.D), kt = tokens(k, big.B, big.Hkv, big.Tk, big.D),
                               vt = tokens(v, big.B, big.Hkv, big.Tk, big.D),
                               dt = tokens(dout, big.B, big.Hq, big.Tq, big.D);
      FlashWorkspace ws;
      std::vector<float> o(qt.size()), l(one.l.size()), dq(qt.size()), dk(kt.size()), dv(vt.size());
      flash_forward(o.data(), l.data(), qt.data(), kt.data(), vt.data(), tm, opt, ws);
      flash_backward(dq.data(), dk.data(), dv.data(), dt.data(), qt.data(), kt.data(), vt.data(), o.data(), l.data(),
                     tm, opt, ws);
      CHECK(o == tokens(one.o, big.B, big.Hq, big.Tq, big.D));
      CHECK(l == one.l);
      CHECK(dq == tokens(one.dq, big.B, big.Hq, big.Tq, big.D));
      CHECK(dk == tokens(one.dk, big.B, big.Hkv, big.Tk, big.D));
      CHECK(dv == tokens(one.dv, big.B, big.Hkv, big.Tk, big.D));
    }
  omp_set_num_threads(saved);
}
