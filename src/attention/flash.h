// FlashAttention on the CPU: exact softmax attention computed tile by tile, never holding the
// Tq×Tk score matrix (Dao et al. 2022, "FlashAttention: Fast and Memory-Efficient Exact
// Attention with IO-Awareness"). From FlashAttention-2 (Dao 2023) come the forward's loop order
// and the backward's D_i = rowsum(dO ∘ O); the backward's work split is attnlab's own: no atomic
// adds for dQ, but one task per output (FlashSchedule below), so results are bitwise the same
// for any thread count. These are free functions over plain buffers (head-major or token-major),
// so that another backend (CUDA) can stand in for them behind the same signature.
//
// Per batch b and query head h (kv head g = h / (Hq/Hkv)), with S = s·Q_h K_gᵀ + A_h + M:
//   forward   O_h = softmax_rows(S) V_g        L_h[i] = log Σ_j exp(S[i,j])   (the log-sum-exp)
//   backward  P = exp(S − L)   (recomputed tile by tile from the saved L)
//             D_i = rowsum(dO_h ∘ O_h)
//             dV_g += Pᵀ dO_h ;  dP = dO_h V_gᵀ ;  dS = P ∘ (dP − D)
//             dQ_h = s · dS K_g ;  dK_g += s · dSᵀ Q_h
//   A_h[i,j] = −m_h·|p_i − j| (ALiBi, optional), M = −inf where masked.
// Positions and masks are the naive module's (scaled_dot_product.h): query i sits at absolute
// position p_i = i + (Tk − Tq), key j at j; query i sees key j iff
//   causal: j ≤ p_i (and p_i − w < j with a window w > 0);  not causal: |p_i − j| < w if w > 0,
// and key_keep[b, j] != 0. A row that sees no key outputs 0, has L = −inf and gets no gradient.
//
// Tiles: blocks of kFlashBlockQ queries against blocks of kFlashBlockK keys. The forward keeps,
// per query row, the running max m and sum l of exp(S − m) and rescales the output accumulator
// by exp(m_old − m_new) when the max grows (the online softmax); tiles outside every row's band
// (above the causal diagonal, outside the window) are skipped. Memory: besides the outputs, the
// fused schedule needs one (b, kv head)'s keys and a few tiles per thread, O(Tk·D) a thread; the
// split schedule packs every (b, kv head)'s keys, O(B·Hkv·Tk·D); no buffer is Tq×Tk.
//
// Determinism: every output element is computed by one task in a fixed order (see
// FlashSchedule; both schedules sum every element in the same order), so results are bitwise
// the same for any thread count and schedule.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "core/gemm_bf16.h"

namespace attnlab {

// Tile sizes (rows of Q × rows of K/V). With D = 64 a tile of each operand is 16 KB, so the
// working set of one tile step (Q, Kᵀ, V, S/P, O tiles, ~80 KB) sits in L2 and the
// micro-kernels' streamed operand in L1 (48 KB here). On the W3 shapes (8 heads × 64, causal,
// n = 4096, fwd+bwd, 2 threads) 64×64, 64×128 and 128×128 were within 3% of each other (best of 3,
// ~350-365 ms on a shared machine) and 128×64 and 32×64 were no faster.
constexpr int kFlashBlockQ = 64;
constexpr int kFlashBlockK = 64;

// How the work is split over threads. Both give bitwise the same results (every sum runs in the
// same order); automatic takes fused when B·Hkv is a multiple of the threads or at least 8 per
// thread (then every task costs the same), else split; the others are for tests.
//   fused  one task per (b, kv head). Forward: the task packs that pair's Kᵀ (and padded V) into
//          the thread's own tiles, then runs the group's query blocks. Backward: each key block
//          once, its Kᵀ, Vᵀ transposed into the thread's tiles, dK/dV/dQ from the same recomputed P
//          (5 tile products per tile); dQ accumulates in dq itself (or a per-thread buffer
//          when D is not a multiple of 16).
//   split  every pair's keys packed up front. Forward: one task per (b, h, query block).
//          Backward: dK/dV per (b, kv head, key block), then dQ per (b, h, query block), P
//          recomputed in each (7 tile products per tile). For few (b, kv head) pairs on many threads.
enum class FlashSchedule { automatic, fused, split };

struct FlashOptions {
  float scale = 1.0f;                         // s
  bool causal = false;
  int window = 0;                             // 0 = off
  const unsigned char* key_keep = nullptr;    // [B,Tk], 1 = attend; null = every key valid
  const float* alibi_slopes = nullptr;        // [Hq] slopes m_h, or null (no ALiBi)
  FlashSchedule schedule = FlashSchedule::automatic;
  // none: fp32 tile products. amx or avx512bf16 (the module passes gemm_bf16_kernel(), which
  // train.precision: bf16 sets): every tile product takes bf16 inputs with fp32 accumulation
  // (flash_bf16.cpp, docs/attention.md); the schedule is then always one task per (b, kv head).
  Bf16Kernel bf16 = Bf16Kernel::none;
};

// Shapes and layouts. With ldq = 0 (ldk = 0) q, out, dout, dq (k, v, dk, dv) are head-major,
// [B, H, T, D]. With ldq > 0 they are token-major, [B, T, ldq] with head h in columns
// h·D .. h·D+D−1 — the projections' own layout (ldq = Hq·D for a plain Q), read and written in
// place without a transposing copy; likewise ldk for the key side.
struct FlashShape {
  int B = 0, Hq = 0, Hkv = 0, Tq = 0, Tk = 0, D = 0;
  int ldq = 0, ldk = 0;
};

// Scratch the kernels reuse from call to call (packed copies of K, V, Q, dO padded to a
// multiple of 16 columns, and per-thread tiles); grows to the largest call, O((Tq+Tk)·D·B·H).
struct FlashWorkspace {
  std::vector<float> kt, vt, kp, vp, qp, dop, delta;
  // per thread, on cache lines (core/aligned.h): the bf16 kernel's tile loads and stores need it
  std::vector<aligned_vector<float>> thread_tiles;
  std::vector<aligned_vector<uint16_t>> thread_bf16;  // the bf16 kernel's packed tiles
};

// q [B,Hq,Tq,D], k, v [B,Hkv,Tk,D]  ->  out [B,Hq,Tq,D], lse [B,Hq,Tq] (−inf for empty rows)
// (or token-major, see FlashShape; lse is always [B,Hq,Tq]).
void flash_forward(float* out, float* lse, const float* q, const float* k, const float* v, const FlashShape& shape,
                   const FlashOptions& opt, FlashWorkspace& ws);

// dout, out [B,Hq,Tq,D], lse [B,Hq,Tq] from flash_forward  ->  dq [B,Hq,Tq,D], dk, dv [B,Hkv,Tk,D]
// (written, not added; dk/dv summed over the query heads of each group).
void flash_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* out, const float* lse, const FlashShape& shape,
                    const FlashOptions& opt, FlashWorkspace& ws);

// The attention weights P [B,Hq,Tq,Tk] = softmax of the scores recomputed from q and k, each row
// normalised by its own max and sum; the saved lse only marks the rows that see no key (−inf:
// all 0). For inspection only: this one materialises Tq×Tk per head.
void flash_weights(float* P, const float* q, const float* k, const float* lse, const FlashShape& shape,
                   const FlashOptions& opt);

// exp(x) over 16-float packets, as the kernels compute it (for tests): within 2 ulp of the
// exact value for x ≥ −87.3, and exactly 0 below (−inf included). n a multiple of 16.
void flash_exp(float* y, const float* x, int n);

}  // namespace attnlab
