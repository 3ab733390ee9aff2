// Core ops, forward and backward. See ops.h for the contracts.
//
// Every backward ADDS into its gradient buffers and skips null ones. Loops
// over independent rows are OpenMP-parallel; reductions over rows (bias and
// layernorm parameter gradients, embedding scatter, the mean loss) run the rows
// in a fixed serial order per column, so their results do not depend on the
// number of threads and no two threads ever write the same float.
#include "ops/ops.h"
#include "ops/attention_core.h"

#include "core/fastmath.h"
#include "core/fastmath_packet.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/gemm.h"
#include "core/rng.h"

namespace attnlab {

namespace {

// Columns handled per task in the column-blocked row reductions below: one
// thread owns a block of columns and walks all rows in order, so it reads
// contiguous runs of each row and the summation order is fixed.
constexpr int kColBlock = 64;

// Parallelize only when there is enough work to pay for waking the threads.
constexpr long kParallelMin = 1 << 14;

}  // namespace

// ---------------------------------------------------------------------------
// linear
//   forward:  out = inp · Wᵀ + b
//   backward: with y = x·Wᵀ + b,  ∂L/∂x = dout · W,  ∂L/∂W = doutᵀ · x,
//             ∂L/∂b[o] = Σ_n dout[n,o]
// ---------------------------------------------------------------------------

void linear_forward(float* out, const float* inp, const float* W, const float* b, int N, int IC,
                    int OC) {
  if (N <= 0 || OC <= 0) return;
  float beta = 0.0f;
  if (b) {
    // prefill every row with the bias, then let the GEMM accumulate onto it
#pragma omp parallel for if ((long)N * OC >= kParallelMin)
    for (int n = 0; n < N; n++) std::copy(b, b + OC, out + (size_t)n * OC);
    beta = 1.0f;
  }
  // out[N,OC] = inp[N,IC] · W[OC,IC]ᵀ
  sgemm(false, true, N, OC, IC, 1.0f, inp, IC, W, IC, beta, out, OC);
}

void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp,
                     const float* W, int N, int IC, int OC, bool add_dinp) {
  if (N <= 0 || OC <= 0) return;
  // dinp[N,IC] (+)= dout[N,OC] · W[OC,IC]
  if (dinp && IC > 0) sgemm(false, false, N, IC, OC, 1.0f, dout, OC, W, IC, add_dinp ? 1.0f : 0.0f, dinp, IC);
  // dW[OC,IC] += dout[N,OC]ᵀ · inp[N,IC]
  if (dW && IC > 0) sgemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dW, IC);
  // db[o] += Σ_n dout[n,o], rows summed in order within each column block
  if (db) {
    const int nblocks = (OC + kColBlock - 1) / kColBlock;
#pragma omp parallel for if ((long)N * OC >= kParallelMin)
    for (int blk = 0; blk < nblocks; blk++) {
      const int o0 = blk * kColBlock;
      const int o1 = std::min(OC, o0 + kColBlock);
      float acc[kColBlock] = {};
      for (int n = 0; n < N; n++) {
        const float* d = dout + (size_t)n * OC;
        for (int o = o0; o < o1; o++) acc[o - o0] += d[o];
      }
      for (int o = o0; o < o1; o++) db[o] += acc[o - o0];
    }
  }
}

// ---------------------------------------------------------------------------
// layernorm
//   forward:  μ = mean(x),  σ² = mean((x-μ)²),  r = 1/√(σ²+eps),
//             x̂ = (x-μ)·r,  y = x̂ ⊙ w + b
//   backward: g = dout ⊙ w  (gradient w.r.t. x̂)
//             ∂L/∂x = r · (g - mean(g) - x̂ · mean(g ⊙ x̂))
//             ∂L/∂w = Σ_n dout ⊙ x̂,   ∂L/∂b = Σ_n dout
// ---------------------------------------------------------------------------

// Σ_{c<C} f(c) in kLanes interleaved float partial sums (term c into lane c mod kLanes), added in
// lane order at the end: a fixed order, so the same bits for any thread count, and a vector of
// sums instead of one serial chain of adds (which was latency-bound, ~4 cycles a term).
template <typename F>
inline float lane_sum(int C, F f) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= C; c += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += f(c + l);
  for (int l = 0; c < C; c++, l++) acc[l] += f(c);
  float s = 0.0f;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int N, int C, float eps) {
#pragma omp parallel for if ((long)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    float* y = out + (size_t)n * C;
    // two passes (mean, then centred variance): no catastrophic cancellation
    const float m = lane_sum(C, [&](int c) { return x[c]; }) / (float)C;
    const float v = lane_sum(C, [&](int c) { return (x[c] - m) * (x[c] - m); }) / (float)C;
    const float r = 1.0f / std::sqrt(v + eps);
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
    mean[n] = m;
    rstd[n] = r;
  }
}

void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  // dinp: independent per row
  if (dinp) {
#pragma omp parallel for if ((long)N * C >= kParallelMin)
    for (int n = 0; n < N; n++) {
      const float* x = inp + (size_t)n * C;
      const float* d = dout + (size_t)n * C;
      float* dx = dinp + (size_t)n * C;
      const float m = mean[n];
      const float r = rstd[n];
      const float g_mean = lane_sum(C, [&](int c) { return d[c] * w[c]; }) / (float)C;  // mean(g)
      const float g_xhat_mean =                                                              // mean(g ⊙ x̂)
          lane_sum(C, [&](int c) { return d[c] * w[c] * ((x[c] - m) * r); }) / (float)C;
      for (int c = 0; c < C; c++) {
        const float xhat = (x[c] - m) * r;
        const float g = d[c] * w[c];
        dx[c] += r * (g - g_mean - xhat * g_xhat_mean);
      }
    }
  }
  // dw, db: reductions over rows, fixed order per column block
  if (dw || db) {
    const int nblocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for if ((long)N * C >= kParallelMin)
    for (int blk = 0; blk < nblocks; blk++) {
      const int c0 = blk * kColBlock;
      const int c1 = std::min(C, c0 + kColBlock);
      float acc_w[kColBlock] = {};
      float acc_b[kColBlock] = {};
      for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* d = dout + (size_t)n * C;
        const float m = mean[n];
        const float r = rstd[n];
        for (int c = c0; c < c1; c++) {
          acc_w[c - c0] += d[c] * ((x[c] - m) * r);
          acc_b[c - c0] += d[c];
        }
      }
      for (int c = c0; c < c1; c++) {
        if (dw) dw[c] += acc_w[c - c0];
        if (db) db[c] += acc_b[c - c0];
      }
    }
  }
}

// ---------------------------------------------------------------------------
// GELU (tanh approximation)
//   forward:  y = ½ x (1 + tanh(u)),  u = k (x + a x³),  k = √(2/π), a = 0.044715
//   backward: dy/dx = ½ (1 + tanh u) + ½ x sech²(u) · k (1 + 3 a x²),
//             sech² u = 1 - tanh² u;   ∂L/∂x = dout · dy/dx
// ---------------------------------------------------------------------------

namespace {
constexpr float kGeluK = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluA = 0.044715f;
}  // namespace

// The tanh's dominate GELU's cost with libm's scalar tanhf (a fifth of a W1 training step), so
// they run through core/fastmath_packet.h's SIMD tanh, inside one pass over the data: each
// packet of x goes to u, tanh(u) and the result in registers. The tail of the buffer is copied
// into a zero-padded packet and takes the same code, so a value's result does not depend on
// where it sits or on the threads (the backward recomputes exactly the forward's tanh).
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // see core/fastmath_packet.h
#endif
namespace {
using fastmath::kPacketSize;
using fastmath::Packet;
namespace ei = Eigen::internal;

// tanh(k (x + a x³)) of a packet of x
inline Packet gelu_tanh(const Packet& x) {
  const Packet x3 = ei::pmul(ei::pmul(x, x), x);
  const Packet u = ei::pmul(ei::pset1<Packet>(kGeluK), ei::padd(x, ei::pmul(ei::pset1<Packet>(kGeluA), x3)));
  return fastmath::ptanh(u);
}
// ½ x (1 + t)
inline Packet gelu_value(const Packet& x, const Packet& t) {
  return ei::pmul(ei::pmul(ei::pset1<Packet>(0.5f), x), ei::padd(ei::pset1<Packet>(1.0f), t));
}
// dy/dx = ½ (1 + t) + ½ x (1 − t²) k (1 + 3 a x²)
inline Packet gelu_slope(const Packet& x, const Packet& t) {
  const Packet one = ei::pset1<Packet>(1.0f), half = ei::pset1<Packet>(0.5f);
  const Packet sech2 = ei::psub(one, ei::pmul(t, t));
  const Packet inner = ei::padd(one, ei::pmul(ei::pset1<Packet>(3.0f * kGeluA), ei::pmul(x, x)));
  return ei::padd(ei::pmul(half, ei::padd(one, t)),
                  ei::pmul(ei::pmul(ei::pmul(half, x), sech2), ei::pmul(ei::pset1<Packet>(kGeluK), inner)));
}

constexpr long kGeluTask = 4096;  // elements per parallel task

// Calls body(i) for every packet start i of [0, n); the tail (n mod kPacketSize) goes
// through `tail`, with its inputs padded by zeros into whole packets.
template <typename Body, typename Tail>
void for_packets(size_t n, Body body, Tail tail) {
  const long full = long(n / kPacketSize) * kPacketSize;
  const long tasks = (full + kGeluTask - 1) / kGeluTask;
#pragma omp parallel for schedule(static) if (n >= (size_t)kParallelMin)
  for (long t = 0; t < tasks; t++) {
    const long end = std::min(full, (t + 1) * kGeluTask);
    for (long i = t * kGeluTask; i < end; i += kPacketSize) body(size_t(i));
  }
  if (size_t(full) < n) tail(size_t(full), int(n - size_t(full)));
}
}  // namespace

void gelu_forward(float* out, const float* inp, size_t n) {
  for_packets(
      n,
      [&](size_t i) {
        const Packet x = ei::ploadu<Packet>(inp + i);
        ei::pstoreu(out + i, gelu_value(x, gelu_tanh(x)));
      },
      [&](size_t i, int m) {
        alignas(64) float xb[kPacketSize] = {}, yb[kPacketSize];
        std::copy_n(inp + i, m, xb);
        const Packet x = ei::pload<Packet>(xb);
        ei::pstore(yb, gelu_value(x, gelu_tanh(x)));
        std::copy_n(yb, m, out + i);
      });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  if (!dinp) return;
  for_packets(
      n,
      [&](size_t i) {
        const Packet x = ei::ploadu<Packet>(inp + i);
        const Packet g = ei::pmul(gelu_slope(x, gelu_tanh(x)), ei::ploadu<Packet>(dout + i));
        ei::pstoreu(dinp + i, ei::padd(ei::ploadu<Packet>(dinp + i), g));
      },
      [&](size_t i, int m) {
        alignas(64) float xb[kPacketSize] = {}, gb[kPacketSize];
        std::copy_n(inp + i, m, xb);
        const Packet x = ei::pload<Packet>(xb);
        ei::pstore(gb, gelu_slope(x, gelu_tanh(x)));
        for (int k = 0; k < m; k++) dinp[i + k] += gb[k] * dout[i + k];
      });
}

void gelu_backward_inplace(float* d, const float* x_, size_t n) {
  for_packets(
      n,
      [&](size_t i) {
        const Packet x = ei::ploadu<Packet>(x_ + i);
        ei::pstoreu(d + i, ei::pmul(gelu_slope(x, gelu_tanh(x)), ei::ploadu<Packet>(d + i)));
      },
      [&](size_t i, int m) {
        alignas(64) float xb[kPacketSize] = {}, gb[kPacketSize];
        std::copy_n(x_ + i, m, xb);
        const Packet x = ei::pload<Packet>(xb);
        ei::pstore(gb, gelu_slope(x, gelu_tanh(x)));
        for (int k = 0; k < m; k++) d[i + k] = gb[k] * d[i + k];
      });
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// ---------------------------------------------------------------------------
// GELU (exact, with erf: PyTorch's nn.GELU() default, nanoGPT)
//   forward:  y = x Φ(x),  Φ(x) = ½ (1 + erf(x/√2))
//   backward: dy/dx = Φ(x) + x φ(x),  φ(x) = exp(−x²/2) / √(2π);   ∂L/∂x = dout · dy/dx
// Scalar libm erf/exp: only models that ask for it (imported ones) pay for them.
// ---------------------------------------------------------------------------

namespace {
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
inline float gelu_erf_value(float x) { return float(0.5 * double(x) * (1.0 + std::erf(double(x) * kInvSqrt2))); }
inline float gelu_erf_slope(float x) {
  const double xd = x;
  return float(0.5 * (1.0 + std::erf(xd * kInvSqrt2)) + xd * kInvSqrt2Pi * std::exp(-0.5 * xd * xd));
}
}  // namespace

void gelu_erf_forward(float* out, const float* inp, size_t n) {
#pragma omp parallel for schedule(static) if (n >= (size_t)kParallelMin)
  for (long i = 0; i < long(n); i++) out[i] = gelu_erf_value(inp[i]);
}

void gelu_erf_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  if (!dinp) return;
#pragma omp parallel for schedule(static) if (n >= (size_t)kParallelMin)
  for (long i = 0; i < long(n); i++) dinp[i] += gelu_erf_slope(inp[i]) * dout[i];
}

void gelu_erf_backward_inplace(float* d, const float* x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= (size_t)kParallelMin)
  for (long i = 0; i < long(n); i++) d[i] = gelu_erf_slope(x[i]) * d[i];
}

// ---------------------------------------------------------------------------
// softmax over the last dim
//   forward:  p = exp(x - max x) / Σ exp(x - max x)   (attention_core's masked row, unmasked)
//   backward: ∂p_i/∂x_j = p_i (δ_ij - p_j)  ⇒  ∂L/∂x = p ⊙ (dout - Σ_c dout_c p_c)
// ---------------------------------------------------------------------------

void softmax_forward(float* out, const float* inp, int N, int C) {
#pragma omp parallel for if ((long)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    float* p = out + (size_t)n * C;
    std::copy_n(inp + (size_t)n * C, C, p);
    masked_softmax_row(p, C, KeyBand{0, C}, nullptr, 0, 0.0f);  // every key visible, no bias
  }
}

void softmax_backward(float* dinp, const float* out, const float* dout, int N, int C) {
  if (!dinp) return;
#pragma omp parallel for if ((long)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* p = out + (size_t)n * C;
    const float* d = dout + (size_t)n * C;
    float* dx = dinp + (size_t)n * C;
    float dot = 0.0f;
    for (int c = 0; c < C; c++) dot += d[c] * p[c];
    for (int c = 0; c < C; c++) dx[c] += p[c] * (d[c] - dot);
  }
}

// ---------------------------------------------------------------------------
// embedding
//   forward:  out[n,:] = table[ids[n],:]
//   backward: ∂L/∂table[v,:] = Σ_{n: ids[n]=v} dout[n,:]  (a scatter-add; repeated ids
//             accumulate). Parallel over column blocks, rows in order: no races, fixed order.
// ---------------------------------------------------------------------------

void embedding_forward(float* out, const int* ids, const float* table, int N, int C) {
#pragma omp parallel for if ((long)N * C >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* row = table + (size_t)ids[n] * C;
    std::copy(row, row + C, out + (size_t)n * C);
  }
}

void embedding_backward(float* dtable, const int* ids, const float* dout, int N, int C) {
  if (!dtable || N <= 0 || C <= 0) return;
  const int nblocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for if ((long)N * C >= kParallelMin)
  for (int blk = 0; blk < nblocks; blk++) {
    const int c0 = blk * kColBlock;
    const int c1 = std::min(C, c0 + kColBlock);
    for (int n = 0; n < N; n++) {
      float* dst = dtable + (size_t)ids[n] * C;
      const float* src = dout + (size_t)n * C;
      for (int c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
}

// ---------------------------------------------------------------------------
// cross-entropy fused with softmax, ignore index, label smoothing ε
//   forward:  lse = max + log Σ_v exp(l_v - max),  log p_v = l_v - lse
//             loss = -(1-ε) log p_t - (ε/V) Σ_v log p_v
//                  = lse - (1-ε) l_t - (ε/V) Σ_v l_v
//   backward: with q = (1-ε) onehot(t) + ε/V (Σ_v q_v = 1), loss = -Σ_v q_v log p_v, and
//             ∂loss/∂l_v = p_v Σ_u q_u - q_v = p_v - q_v.   Scaled by `scale`.
// ---------------------------------------------------------------------------

float cross_entropy_forward(float* probs, float* losses, const float* logits, const int* targets,
                            int N, int V, int ignore_index, float smoothing, int* count) {
  ATTNLAB_CHECK(V > 0);
  ATTNLAB_CHECK(smoothing >= 0.0f && smoothing <= 1.0f);
  // validate targets up front: throwing inside a parallel region would terminate
  int valid = 0;
  for (int n = 0; n < N; n++) {
    const int t = targets[n];
    if (t == ignore_index) continue;
    ATTNLAB_CHECK(t >= 0 && t < V);
    valid++;
  }
#pragma omp parallel for if ((long)N * V >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* l = logits + (size_t)n * V;
    float* p = probs + (size_t)n * V;
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = std::max(mx, l[v]);
    float sum = 0.0f;
    float lsum = 0.0f;  // Σ_v (l_v - max), only needed with smoothing
    for (int v = 0; v < V; v++) {
      p[v] = std::exp(l[v] - mx);
      sum += p[v];
      lsum += l[v] - mx;
    }
    const float inv = 1.0f / sum;
    for (int v = 0; v < V; v++) p[v] *= inv;
    const int t = targets[n];
    if (t == ignore_index) {
      losses[n] = 0.0f;
      continue;
    }
    // everything relative to max: log p_v = (l_v - max) - log(sum)
    const float log_sum = std::log(sum);
    const float nll = log_sum - (l[t] - mx);             // -log p_t
    const float smooth = log_sum - lsum / (float)V;      // -(1/V) Σ_v log p_v
    losses[n] = (1.0f - smoothing) * nll + smoothing * smooth;
  }
  if (count) *count = valid;
  if (valid == 0) return 0.0f;
  double total = 0.0;  // fixed serial order, double accumulation
  for (int n = 0; n < N; n++) total += losses[n];
  return (float)(total / valid);
}

void cross_entropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V,
                            int ignore_index, float smoothing, float scale) {
  if (!dlogits) return;
  const float eps_over_v = smoothing / (float)V;
#pragma omp parallel for if ((long)N * V >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const int t = targets[n];
    if (t == ignore_index) continue;
    const float* p = probs + (size_t)n * V;
    float* dl = dlogits + (size_t)n * V;
    for (int v = 0; v < V; v++) dl[v] += scale * (p[v] - eps_over_v);
    dl[t] -= scale * (1.0f - smoothing);
  }
}

// ---------------------------------------------------------------------------
// dropout (inverted)
//   forward:  m_i ∈ {0, 1/(1-p)},  y = x ⊙ m
//   backward: ∂L/∂x = dout ⊙ m
// ---------------------------------------------------------------------------

void dropout_forward(float* out, float* mask, const float* inp, size_t n, float p, Rng& rng) {
  ATTNLAB_CHECK(p >= 0.0f && p < 1.0f);
  if (p == 0.0f) {
    std::fill(mask, mask + n, 1.0f);
  } else {
    // sequential draws: the mask is the same whatever the thread count
    const float keep_scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) mask[i] = rng.uniform() < p ? 0.0f : keep_scale;
  }
#pragma omp parallel for if (n >= (size_t)kParallelMin)
  for (size_t i = 0; i < n; i++) out[i] = inp[i] * mask[i];
}

void dropout_backward(float* dinp, const float* mask, const float* dout, size_t n) {
  if (!dinp) return;
#pragma omp parallel for if (n >= (size_t)kParallelMin)
  for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}

// ---------------------------------------------------------------------------
// residual add
//   forward:  y = a + b
//   backward: ∂L/∂a = ∂L/∂b = dout
// ---------------------------------------------------------------------------

void residual_forward(float* out, const float* a, const float* b, size_t n) {
#pragma omp parallel for if (n >= (size_t)kParallelMin)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
  if (da) {
#pragma omp parallel for if (n >= (size_t)kParallelMin)
    for (size_t i = 0; i < n; i++) da[i] += dout[i];
  }
  if (db) {
#pragma omp parallel for if (n >= (size_t)kParallelMin)
    for (size_t i = 0; i < n; i++) db[i] += dout[i];
  }
}

}  // namespace attnlab
