// Tiled exact attention, forward (FlashAttention: Dao et al. 2022, "FlashAttention: Fast and
// Memory-Efficient Exact Attention with IO-Awareness"; the loop order of FlashAttention-2, Dao 2023):
//
//   s_ij = scale · q_i·k_j        over the keys j that query i sees (causal / key padding)
//   out_i = Σ_j exp(s_ij − lse_i) v_j,     lse_i = log Σ_j exp(s_ij)
//
// without ever storing the Tq×Tk matrix. One thread block owns kRows = 32 queries of one
// (batch, head) and walks the key/value sequence in tiles of Bc keys (64, or 32 at D = 128).
//
//   shared memory : Q tile [32][D+1] (pre-multiplied by scale), K tile [Bc][D+1], V tile [Bc][D],
//                   P tile [32][Bc+1]            (+1 pads rows so the reads below hit distinct banks)
//   registers     : 4 threads per query row; each keeps Bc/4 scores of the current tile and D/4
//                   columns of the running output (columns sl, sl+4, sl+8, ... for sub-lane sl),
//                   and the row's running max m and running sum l (identical in the 4 threads)
//
// Online softmax, per key tile (Milakov & Gimelshein 2018): with the tile's row max t,
//   m' = max(m, t),  α = exp(m − m'),  p_j = exp(s_j − m'),
//   l' = α·l + Σ_j p_j,  acc' = α·acc + Σ_j p_j v_j
// so acc/l always equals the softmax-weighted sum over the keys seen so far. At the end
// out = acc / l and lse = m + log l. A row that has seen no visible key yet has m = −inf and is
// left untouched (α and p are not evaluated: exp(−inf − (−inf)) would be NaN); a row that never
// sees one gets out = 0, lse = −inf.
//
// Causal: query i sits at position Tk − Tq + i; the block stops at the last key its last query
// can see, and keys after a row's own position are masked inside the diagonal tile.
// bf16 inputs are widened to fp32 when a tile is loaded; every product and sum is fp32.
#include "cuda/common.cuh"
#include "cuda/internal.h"

namespace attnlab::cudak {

namespace {

constexpr int kRowThreads = 4;                  // threads sharing one query row
constexpr int kRows = 32;                       // query rows per block
constexpr int kThreads = kRows * kRowThreads;   // 128

template <int D>
__host__ __device__ constexpr int fwd_keys() {  // keys per tile: keeps the registers per thread near 32 + 16
  return D >= 128 ? 32 : 64;
}

template <int D>
constexpr size_t fwd_smem_bytes() {
  constexpr int Bc = fwd_keys<D>();
  return sizeof(float) * (size_t(kRows) * (D + 1) + size_t(Bc) * (D + 1) + size_t(Bc) * D +
                          size_t(kRows) * (Bc + 1));
}

// grid: (⌈Tq/32⌉, B·Hq), block: 128 threads
template <int D, typename T>
__global__ void __launch_bounds__(kThreads)
    flash_fwd_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                     const unsigned char* __restrict__ keep, float* __restrict__ out,
                     float* __restrict__ lse, int Hq, int Hkv, int Tq, int Tk, float scale,
                     bool causal) {
  constexpr int Bc = fwd_keys<D>();
  constexpr int KPT = Bc / kRowThreads;  // scores per thread per tile
  constexpr int CPT = D / kRowThreads;   // output columns per thread
  extern __shared__ float smem[];
  float* Qs = smem;                   // [kRows][D+1]  scale·q
  float* Ks = Qs + kRows * (D + 1);   // [Bc][D+1]
  float* Vs = Ks + Bc * (D + 1);      // [Bc][D]
  float* Ps = Vs + Bc * D;            // [kRows][Bc+1]

  const int bh = blockIdx.y;          // b·Hq + h
  const int b = bh / Hq, h = bh % Hq;
  const int g = h / (Hq / Hkv);       // the kv head of this query head
  const int q0 = blockIdx.x * kRows;
  const int tid = threadIdx.x;
  const int r = tid / kRowThreads;    // this thread's row in the tile
  const int sl = tid % kRowThreads;   // sub-lane within the row
  const int qi = q0 + r;
  const int offset = Tk - Tq;         // query i is at absolute position i + offset
  const int qpos = qi + offset;

  const T* qh = q + size_t(bh) * Tq * D;
  const T* kh = k + (size_t(b) * Hkv + g) * Tk * D;
  const T* vh = v + (size_t(b) * Hkv + g) * Tk * D;
  const unsigned char* keep_b = keep ? keep + size_t(b) * Tk : nullptr;

  for (int idx = tid; idx < kRows * D; idx += kThreads) {
    const int rr = idx / D, d = idx % D;
    Qs[rr * (D + 1) + d] = q0 + rr < Tq ? scale * load_f32(qh, size_t(q0 + rr) * D + d) : 0.0f;
  }

  // keys [0, kv_end) are visible to at least one row of the block (uniform over the block)
  const int q_last = min(Tq, q0 + kRows) - 1;
  const int kv_end = causal ? min(Tk, q_last + offset + 1) : Tk;

  float m = -INFINITY, l = 0.0f;
  float acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; c++) acc[c] = 0.0f;

  for (int k0 = 0; k0 < kv_end; k0 += Bc) {
    __syncthreads();  // the previous tile's readers are done (first pass: Qs is complete)
    for (int idx = tid; idx < Bc * D; idx += kThreads) {
      const int j = idx / D, d = idx % D;
      const bool in = k0 + j < Tk;
      const size_t gi = size_t(k0 + j) * D + d;
      Ks[j * (D + 1) + d] = in ? load_f32(kh, gi) : 0.0f;
      Vs[j * D + d] = in ? load_f32(vh, gi) : 0.0f;
    }
    __syncthreads();

    // scores of this thread's keys sl, sl+4, ...: s = (scale·q_r)·k_j, one fused multiply-add per
    // d in increasing order (flash_backward.cu recomputes them bit for bit the same way)
    float s[KPT];
#pragma unroll
    for (int jj = 0; jj < KPT; jj++) s[jj] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; d++) {
      const float qd = Qs[r * (D + 1) + d];
#pragma unroll
      for (int jj = 0; jj < KPT; jj++) s[jj] = fmaf(qd, Ks[(sl + jj * kRowThreads) * (D + 1) + d], s[jj]);
    }
    float tmax = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < KPT; jj++) {
      const int kj = k0 + sl + jj * kRowThreads;
      const bool vis = kj < Tk && (!causal || kj <= qpos) && (!keep_b || keep_b[kj]);
      s[jj] = vis ? s[jj] : -INFINITY;
      tmax = fmaxf(tmax, s[jj]);
    }
    // the row's 4 threads are lanes 4r'..4r'+3 of one warp: butterfly over lane bits 0 and 1
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
    const float m_new = fmaxf(m, tmax);
    float alpha = 1.0f, psum = 0.0f;
    if (m_new != -INFINITY) {
      alpha = expf(m - m_new);  // 0 when m = −inf (acc and l are 0 then anyway)
#pragma unroll
      for (int jj = 0; jj < KPT; jj++) {
        s[jj] = expf(s[jj] - m_new);  // masked: exp(−inf) = 0
        psum += s[jj];
      }
    } else {
#pragma unroll
      for (int jj = 0; jj < KPT; jj++) s[jj] = 0.0f;
    }
    psum += __shfl_xor_sync(0xffffffffu, psum, 1);
    psum += __shfl_xor_sync(0xffffffffu, psum, 2);
    l = alpha * l + psum;
    m = m_new;
#pragma unroll
    for (int c = 0; c < CPT; c++) acc[c] *= alpha;

    // acc += P·V: every thread needs the whole row of P, so it goes through shared memory
#pragma unroll
    for (int jj = 0; jj < KPT; jj++) Ps[r * (Bc + 1) + sl + jj * kRowThreads] = s[jj];
    __syncwarp();  // a row's P is written and read by the same 4 lanes of one warp
#pragma unroll 4
    for (int j = 0; j < Bc; j++) {
      const float p = Ps[r * (Bc + 1) + j];
#pragma unroll
      for (int c = 0; c < CPT; c++) acc[c] += p * Vs[j * D + sl + c * kRowThreads];
    }
  }

  if (qi < Tq) {
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* o = out + (size_t(bh) * Tq + qi) * D;
#pragma unroll
    for (int c = 0; c < CPT; c++) o[sl + c * kRowThreads] = acc[c] * inv;
    if (sl == 0) lse[size_t(bh) * Tq + qi] = l > 0.0f ? m + logf(l) : -INFINITY;
  }
}

template <int D, typename T>
void launch_fwd(const FlashArgs& a, float* out, float* lse) {
  const size_t smem = fwd_smem_bytes<D>();
  auto kernel = flash_fwd_kernel<D, T>;
  allow_smem(kernel, smem, "flash_fwd_kernel");
  const dim3 grid(ceil_div(a.Tq, kRows), a.B * a.Hq);
  kernel<<<grid, kThreads, smem>>>(static_cast<const T*>(a.q), static_cast<const T*>(a.k),
                                   static_cast<const T*>(a.v), a.key_keep, out, lse, a.Hq, a.Hkv,
                                   a.Tq, a.Tk, a.scale, a.causal);
  check_launch("flash_fwd_kernel", [&] { return describe(a, grid, kThreads, smem); });
}

template <typename T>
void dispatch_fwd(const FlashArgs& a, float* out, float* lse) {
  switch (a.D) {
    case 32: return launch_fwd<32, T>(a, out, lse);
    case 64: return launch_fwd<64, T>(a, out, lse);
    case 128: return launch_fwd<128, T>(a, out, lse);
    default: throw std::logic_error("flash_forward: unsupported head dimension " + std::to_string(a.D));
  }
}

}  // namespace

void flash_forward(const FlashArgs& a, float* out, float* lse) {
  if (a.bf16)
    dispatch_fwd<__nv_bfloat16>(a, out, lse);
  else
    dispatch_fwd<float>(a, out, lse);
}

}  // namespace attnlab::cudak
