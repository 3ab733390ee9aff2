// Tiled exact attention, backward (FlashAttention-2, Dao 2023, algorithm 2), deterministic.
//
// Given the forward's out O and lse, and dO, with P_ij = exp(s_ij − lse_i) recomputed per tile
// (s = scale·q·kᵀ, masked entries P = 0):
//   δ_i   = Σ_c dO_ic O_ic              (= Σ_j P_ij dP_ij; a pre-pass, delta_kernel)
//   dP_ij = dO_i·v_j
//   dS_ij = P_ij (dP_ij − δ_i)
//   dV_j  = Σ_i P_ij dO_i       dK_j = scale · Σ_i dS_ij q_i       dQ_i = scale · Σ_j dS_ij k_j
// GQA: dK and dV of kv head g sum over the query heads g·G .. g·G + G − 1 (G = Hq/Hkv).
//
// The scores are recomputed from scale·q exactly as the forward computes them, and δ and dP are
// summed in the same order (delta_kernel), so a one-hot row gives exactly zero dS (see there).
// Two kernels instead of atomics, so the result does not depend on scheduling:
//   dkdv_kernel: one block owns 32 keys of one (batch, kv head) and loops over the group's query
//                heads and the query tiles (64 rows, 32 at D = 128) that can see them; dK, dV stay
//                in registers (4 threads per key, D/4 columns each) and are written once.
//                shared: K, V tiles [32][D+1]; Q, dO tiles [Br][D+1]; P and dS [32][Br+1];
//                        lse and δ of the query tile
//   dq_kernel  : one block owns 32 queries of one (batch, head) and loops over the key tiles
//                (64 keys, 32 at D = 128), as in the forward; dQ in registers (4 threads per row).
//                shared: Q, dO tiles [32][D+1]; K, V tiles [Bc][D+1]; dS [32][Bc+1]
// Both recompute P and dP (7 tile GEMMs in all instead of 5 with an atomic dQ): the price of
// determinism. bf16 inputs (q, k, v, dO) are widened to fp32 when loaded; all sums are fp32.
#include "cuda/common.cuh"
#include "cuda/internal.h"

namespace attnlab::cudak {

namespace {

constexpr int kLanes = 4;                // threads per key (dkdv) or per query row (dq)
constexpr int kOwn = 32;                 // keys (dkdv) or queries (dq) owned by one block
constexpr int kThreads = kOwn * kLanes;  // 128

template <int D>
__host__ __device__ constexpr int dkdv_rows() {  // query rows per inner tile of dkdv_kernel
  return D >= 128 ? 32 : 64;
}
template <int D>
__host__ __device__ constexpr int dq_keys() {    // keys per inner tile of dq_kernel
  return D >= 128 ? 32 : 64;
}

template <int D>
constexpr size_t dkdv_smem_bytes() {
  constexpr int Br = dkdv_rows<D>();
  return sizeof(float) * (2 * size_t(kOwn) * (D + 1) + 2 * size_t(Br) * (D + 1) +
                          2 * size_t(kOwn) * (Br + 1) + 2 * size_t(Br));
}
template <int D>
constexpr size_t dq_smem_bytes() {
  constexpr int Bc = dq_keys<D>();
  return sizeof(float) * (2 * size_t(kOwn) * (D + 1) + 2 * size_t(Bc) * (D + 1) +
                          size_t(kOwn) * (Bc + 1));
}

// δ = rowsum(dO ∘ O), one thread per row, summed over d = 0 … D−1 with one fused multiply-add per
// step: the same order and rounding as dP_ij = dO_i·v_j in dkdv_kernel and dq_kernel. Why that
// matters: where a row of P is one-hot (a query that sees one key, or scores so far apart that
// the others underflow), O_i is exactly v_j, so dP_ij − δ_i must be exactly 0 and so must dS, dQ
// and dK. A δ summed in another order (a warp-shuffle tree, say) differs from dP_ij by an ulp,
// and scale·ulp·k_j then appears as a gradient that should not exist (the CPU flash backward
// had the same flaw; docs/cuda.md). Rows are strided by D, so the loads are not coalesced: this
// pre-pass reads each of dO and O once and is small next to the two main kernels.
constexpr int kDeltaThreads = 128;
template <typename T>
__global__ void delta_kernel(const T* __restrict__ dout, const float* __restrict__ out,
                             float* __restrict__ delta, size_t rows, int D) {
  const size_t row = size_t(blockIdx.x) * kDeltaThreads + threadIdx.x;
  if (row >= rows) return;
  float s = 0.0f;
  for (int d = 0; d < D; d++) s = fmaf(load_f32(dout, row * D + d), out[row * D + d], s);
  delta[row] = s;
}

// grid: (⌈Tk/32⌉, B·Hkv), block: 128 threads
template <int D, typename T>
__global__ void __launch_bounds__(kThreads)
    dkdv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                const unsigned char* __restrict__ keep, const T* __restrict__ dout,
                const float* __restrict__ lse, const float* __restrict__ delta,
                float* __restrict__ dk, float* __restrict__ dv, int Hq, int Hkv, int Tq, int Tk,
                float scale, bool causal) {
  constexpr int Br = dkdv_rows<D>();
  constexpr int QPT = Br / kLanes;  // scores per thread per query tile
  constexpr int CPT = D / kLanes;   // dK/dV columns per thread
  extern __shared__ float smem[];
  float* Ks = smem;                   // [32][D+1]
  float* Vs = Ks + kOwn * (D + 1);    // [32][D+1]
  float* Qs = Vs + kOwn * (D + 1);    // [Br][D+1]
  float* dOs = Qs + Br * (D + 1);     // [Br][D+1]
  float* Ps = dOs + Br * (D + 1);     // [32][Br+1]  P transposed: row = key
  float* dSs = Ps + kOwn * (Br + 1);  // [32][Br+1]
  float* lse_s = dSs + kOwn * (Br + 1);  // [Br]
  float* dl_s = lse_s + Br;              // [Br]

  const int bg = blockIdx.y;  // b·Hkv + g
  const int b = bg / Hkv, g = bg % Hkv;
  const int group = Hq / Hkv;
  const int k0 = blockIdx.x * kOwn;
  const int tid = threadIdx.x;
  const int j = tid / kLanes;   // this thread's key in the block
  const int sl = tid % kLanes;
  const int kj = k0 + j;
  const int offset = Tk - Tq;
  const unsigned char* keep_b = keep ? keep + size_t(b) * Tk : nullptr;
  const bool key_ok = kj < Tk && (!keep_b || keep_b[kj]);

  const T* kh = k + size_t(bg) * Tk * D;
  const T* vh = v + size_t(bg) * Tk * D;
  for (int idx = tid; idx < kOwn * D; idx += kThreads) {
    const int jj = idx / D, d = idx % D;
    const bool in = k0 + jj < Tk;
    const size_t gi = size_t(k0 + jj) * D + d;
    Ks[jj * (D + 1) + d] = in ? load_f32(kh, gi) : 0.0f;
    Vs[jj * (D + 1) + d] = in ? load_f32(vh, gi) : 0.0f;
  }

  float dk_acc[CPT], dv_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; c++) dk_acc[c] = dv_acc[c] = 0.0f;

  // causal: query i sees key k0 only if i + offset ≥ k0; earlier queries see none of this tile
  const int q_begin = causal ? max(0, k0 - offset) : 0;

  for (int hh = 0; hh < group; hh++) {
    const int bh = b * Hq + g * group + hh;
    const T* qh = q + size_t(bh) * Tq * D;
    const T* doh = dout + size_t(bh) * Tq * D;
    for (int q0 = q_begin; q0 < Tq; q0 += Br) {
      __syncthreads();  // the previous tile's readers are done (first pass: K, V are complete)
      for (int idx = tid; idx < Br * D; idx += kThreads) {
        const int i = idx / D, d = idx % D;
        const bool in = q0 + i < Tq;
        const size_t gi = size_t(q0 + i) * D + d;
        Qs[i * (D + 1) + d] = in ? scale * load_f32(qh, gi) : 0.0f;
        dOs[i * (D + 1) + d] = in ? load_f32(doh, gi) : 0.0f;
      }
      for (int i = tid; i < Br; i += kThreads) {
        const bool in = q0 + i < Tq;
        lse_s[i] = in ? lse[size_t(bh) * Tq + q0 + i] : 0.0f;
        dl_s[i] = in ? delta[size_t(bh) * Tq + q0 + i] : 0.0f;
      }
      __syncthreads();

      // s_ij = (scale·q_i)·k_j and dP_ij = dO_i·v_j for this thread's key j and queries sl, sl+4,
      // ...: the scores in the forward's order and rounding (flash_forward.cu), so a one-hot row
      // recomputes p = exp(s − lse) = 1 exactly
      float s[QPT], dp[QPT];
#pragma unroll
      for (int ii = 0; ii < QPT; ii++) s[ii] = dp[ii] = 0.0f;
#pragma unroll 4
      for (int d = 0; d < D; d++) {
        const float kd = Ks[j * (D + 1) + d], vd = Vs[j * (D + 1) + d];
#pragma unroll
        for (int ii = 0; ii < QPT; ii++) {
          const int i = sl + ii * kLanes;
          s[ii] = fmaf(Qs[i * (D + 1) + d], kd, s[ii]);
          dp[ii] = fmaf(dOs[i * (D + 1) + d], vd, dp[ii]);
        }
      }
#pragma unroll
      for (int ii = 0; ii < QPT; ii++) {
        const int i = sl + ii * kLanes;
        const int qi = q0 + i;
        const bool vis = key_ok && qi < Tq && (!causal || kj <= qi + offset);
        const float p = vis ? expf(s[ii] - lse_s[i]) : 0.0f;
        Ps[j * (Br + 1) + i] = p;
        dSs[j * (Br + 1) + i] = p * (dp[ii] - dl_s[i]);
      }
      __syncwarp();  // key j's row of P / dS is written and read by the same 4 lanes of one warp

      // dV_j += Σ_i P_ij dO_i,  dK_j += Σ_i dS_ij q_i  (columns sl, sl+4, ...)
#pragma unroll 4
      for (int i = 0; i < Br; i++) {
        const float p = Ps[j * (Br + 1) + i], ds = dSs[j * (Br + 1) + i];
#pragma unroll
        for (int c = 0; c < CPT; c++) {
          dv_acc[c] += p * dOs[i * (D + 1) + sl + c * kLanes];
          dk_acc[c] += ds * Qs[i * (D + 1) + sl + c * kLanes];
        }
      }
    }
  }

  if (kj < Tk) {
    float* dkr = dk + (size_t(bg) * Tk + kj) * D;
    float* dvr = dv + (size_t(bg) * Tk + kj) * D;
#pragma unroll
    for (int c = 0; c < CPT; c++) {
      dkr[sl + c * kLanes] = dk_acc[c];  // Qs held scale·q: dK = Σ_i dS_ij (scale·q_i)
      dvr[sl + c * kLanes] = dv_acc[c];
    }
  }
}

// grid: (⌈Tq/32⌉, B·Hq), block: 128 threads
template <int D, typename T>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
              const unsigned char* __restrict__ keep, const T* __restrict__ dout,
              const float* __restrict__ lse, const float* __restrict__ delta,
              float* __restrict__ dq, int Hq, int Hkv, int Tq, int Tk, float scale, bool causal) {
  constexpr int Bc = dq_keys<D>();
  constexpr int KPT = Bc / kLanes;
  constexpr int CPT = D / kLanes;
  extern __shared__ float smem[];
  float* Qs = smem;                   // [32][D+1]
  float* dOs = Qs + kOwn * (D + 1);   // [32][D+1]
  float* Ks = dOs + kOwn * (D + 1);   // [Bc][D+1]
  float* Vs = Ks + Bc * (D + 1);      // [Bc][D+1]
  float* dSs = Vs + Bc * (D + 1);     // [32][Bc+1]

  const int bh = blockIdx.y;
  const int b = bh / Hq, h = bh % Hq;
  const int g = h / (Hq / Hkv);
  const int q0 = blockIdx.x * kOwn;
  const int tid = threadIdx.x;
  const int r = tid / kLanes;
  const int sl = tid % kLanes;
  const int qi = q0 + r;
  const int offset = Tk - Tq;
  const int qpos = qi + offset;

  const T* qh = q + size_t(bh) * Tq * D;
  const T* doh = dout + size_t(bh) * Tq * D;
  const T* kh = k + (size_t(b) * Hkv + g) * Tk * D;
  const T* vh = v + (size_t(b) * Hkv + g) * Tk * D;
  const unsigned char* keep_b = keep ? keep + size_t(b) * Tk : nullptr;

  for (int idx = tid; idx < kOwn * D; idx += kThreads) {
    const int i = idx / D, d = idx % D;
    const bool in = q0 + i < Tq;
    const size_t gi = size_t(q0 + i) * D + d;
    Qs[i * (D + 1) + d] = in ? scale * load_f32(qh, gi) : 0.0f;  // scores as in the forward
    dOs[i * (D + 1) + d] = in ? load_f32(doh, gi) : 0.0f;
  }
  const float lse_r = qi < Tq ? lse[size_t(bh) * Tq + qi] : 0.0f;
  const float dl_r = qi < Tq ? delta[size_t(bh) * Tq + qi] : 0.0f;

  const int q_last = min(Tq, q0 + kOwn) - 1;
  const int kv_end = causal ? min(Tk, q_last + offset + 1) : Tk;

  float dq_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; c++) dq_acc[c] = 0.0f;

  for (int k0 = 0; k0 < kv_end; k0 += Bc) {
    __syncthreads();
    for (int idx = tid; idx < Bc * D; idx += kThreads) {
      const int j = idx / D, d = idx % D;
      const bool in = k0 + j < Tk;
      const size_t gi = size_t(k0 + j) * D + d;
      Ks[j * (D + 1) + d] = in ? load_f32(kh, gi) : 0.0f;
      Vs[j * (D + 1) + d] = in ? load_f32(vh, gi) : 0.0f;
    }
    __syncthreads();

    float s[KPT], dp[KPT];
#pragma unroll
    for (int jj = 0; jj < KPT; jj++) s[jj] = dp[jj] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; d++) {
      const float qd = Qs[r * (D + 1) + d], dod = dOs[r * (D + 1) + d];
#pragma unroll
      for (int jj = 0; jj < KPT; jj++) {
        const int j = sl + jj * kLanes;
        s[jj] = fmaf(qd, Ks[j * (D + 1) + d], s[jj]);
        dp[jj] = fmaf(dod, Vs[j * (D + 1) + d], dp[jj]);
      }
    }
#pragma unroll
    for (int jj = 0; jj < KPT; jj++) {
      const int j = sl + jj * kLanes;
      const int kj = k0 + j;
      const bool vis = qi < Tq && kj < Tk && (!causal || kj <= qpos) && (!keep_b || keep_b[kj]);
      const float p = vis ? expf(s[jj] - lse_r) : 0.0f;
      dSs[r * (Bc + 1) + j] = p * (dp[jj] - dl_r);
    }
    __syncwarp();

    // dQ_i += Σ_j dS_ij k_j  (columns sl, sl+4, ...)
#pragma unroll 4
    for (int j = 0; j < Bc; j++) {
      const float ds = dSs[r * (Bc + 1) + j];
#pragma unroll
      for (int c = 0; c < CPT; c++) dq_acc[c] += ds * Ks[j * (D + 1) + sl + c * kLanes];
    }
  }

  if (qi < Tq) {
    float* dqr = dq + (size_t(bh) * Tq + qi) * D;
#pragma unroll
    for (int c = 0; c < CPT; c++) dqr[sl + c * kLanes] = scale * dq_acc[c];
  }
}

template <int D, typename T>
void launch_bwd(const FlashArgs& a, const float* lse, const void* dout, const float* delta,
                float* dq, float* dk, float* dv) {
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);
  const T* dO = static_cast<const T*>(dout);

  const size_t smem1 = dkdv_smem_bytes<D>();
  auto k1 = dkdv_kernel<D, T>;
  allow_smem(k1, smem1, "dkdv_kernel");
  const dim3 grid1(ceil_div(a.Tk, kOwn), a.B * a.Hkv);
  k1<<<grid1, kThreads, smem1>>>(q, k, v, a.key_keep, dO, lse, delta, dk, dv, a.Hq, a.Hkv, a.Tq,
                                 a.Tk, a.scale, a.causal);
  check_launch("dkdv_kernel", [&] { return describe(a, grid1, kThreads, smem1); });

  const size_t smem2 = dq_smem_bytes<D>();
  auto k2 = dq_kernel<D, T>;
  allow_smem(k2, smem2, "dq_kernel");
  const dim3 grid2(ceil_div(a.Tq, kOwn), a.B * a.Hq);
  k2<<<grid2, kThreads, smem2>>>(q, k, v, a.key_keep, dO, lse, delta, dq, a.Hq, a.Hkv, a.Tq, a.Tk,
                                 a.scale, a.causal);
  check_launch("dq_kernel", [&] { return describe(a, grid2, kThreads, smem2); });
}

template <typename T>
void dispatch_bwd(const FlashArgs& a, const float* out, const float* lse, const void* dout,
                  float* delta, float* dq, float* dk, float* dv) {
  const size_t rows = size_t(a.B) * a.Hq * a.Tq;
  const dim3 grid(unsigned((rows + kDeltaThreads - 1) / kDeltaThreads));
  delta_kernel<T><<<grid, kDeltaThreads>>>(static_cast<const T*>(dout), out, delta, rows, a.D);
  check_launch("delta_kernel", [&] { return describe(a, grid, kDeltaThreads, 0); });
  switch (a.D) {
    case 32: return launch_bwd<32, T>(a, lse, dout, delta, dq, dk, dv);
    case 64: return launch_bwd<64, T>(a, lse, dout, delta, dq, dk, dv);
    case 128: return launch_bwd<128, T>(a, lse, dout, delta, dq, dk, dv);
    default: throw std::logic_error("flash_backward: unsupported head dimension " + std::to_string(a.D));
  }
}

}  // namespace

void flash_backward(const FlashArgs& a, const float* out, const float* lse, const void* dout,
                    float* delta, float* dq, float* dk, float* dv) {
  if (a.bf16)
    dispatch_bwd<__nv_bfloat16>(a, out, lse, dout, delta, dq, dk, dv);
  else
    dispatch_bwd<float>(a, out, lse, dout, delta, dq, dk, dv);
}

}  // namespace attnlab::cudak
