// Linear attention on the GPU (Katharopoulos et al. 2020, "Transformers are RNNs"), with the
// same formulas as src/attention/linear.h, φ(x) = elu(x) + 1, ε = 1e-6:
//
//   o_i = S_iᵀ u_i / (u_iᵀ z_i + ε),   u_i = φ(q_i),   S_i = Σ_{j<lim_i} f_j v_jᵀ,  z_i = Σ_{j<lim_i} f_j,
//   f_j = φ(k_j) (0 for a padded key),  lim_i = min(Tk, i + Tk − Tq + 1) when causal, else Tk.
//
// Chunked prefix sums. One block walks one (batch, head) sequentially in chunks of C queries
// (C = 32, or 16 when D > 64; smaller
// when the device's shared memory per block is too small for that: linear_chunk in internal.h). The state (S [D,D], z [D]) in
// shared memory holds the keys before the chunk's first limit L0 = lim_{i0}; the keys a query of
// the chunk sees beyond that, [L0, lim_i), number fewer than C (lim grows by at most one per query),
// so they are handled as a small masked C×C block:
//   A_ij = u_i·f_j [j < lim_i]              o_i = (Sᵀu_i + Σ_j A_ij v_j) / (u_i·z + Σ_j A_ij + ε)
// and then added to the state. Without a causal mask every lim_i = Tk: the whole key sequence goes
// into the state first and the C×C block is empty.
//
// Backward (linear.h's formulas; dn_i = do_i / d_i, dd_i = −(do_i·o_i)/d_i):
//   pass 1 (queries in order, the forward's chunks):   du_i = S_i dn_i + z_i dd_i
//       = S dn_i + z dd_i + Σ_j B_ij f_j,  B_ij = [j < lim_i](v_j·dn_i + dd_i);   dq = du ⊙ φ'(q)
//   pass 2 (keys in reverse, chunks of C keys): the state (G [D,D], y [D]) holds the queries that
//   see the whole chunk, i ≥ F(last key) (F(j) = the first query that sees key j); the fewer than C
//   queries [F(j0), F(last)) form the masked block:
//       df_j = G v_j + y + Σ_i B_ij u_i          dv_j = Gᵀ f_j + Σ_i A_ij dn_i
//       dk_j = df_j ⊙ φ'(k_j)  (0 for a padded key)
// One block per (batch, kv head) runs both passes for each query head of its GQA group, so dk and
// dv are summed over the group in a fixed order: deterministic, no atomics.
//
// Shared-memory rows are padded to D+1 floats so both row- and column-wise walks avoid bank
// conflicts. Parallelism is one block per (batch, head): fine for training-sized batches, thin for
// B·H below the number of SMs (a split over chunks with a scan of the states would fix that).
#include "cuda/common.cuh"
#include "cuda/internal.h"

namespace attnlab::cudak {

namespace {

constexpr int kThreads = 256;
constexpr float kEps = 1e-6f;  // LinearAttention::kEps

__device__ __forceinline__ float phi(float x) { return x > 0.0f ? x + 1.0f : expf(x); }
__device__ __forceinline__ float dphi(float x) { return x > 0.0f ? 1.0f : expf(x); }

std::string describe(const LinearArgs& a, dim3 grid, size_t smem) {
  return cudak::describe(a.B, a.Hq, a.Hkv, a.Tq, a.Tk, a.D, a.causal, false, grid, kThreads, smem) +
         " C=" + std::to_string(a.C);
}

struct Geom {
  int Tq, Tk;
  bool causal;
  // keys [0, lim(i)) are visible to query i (before padding)
  __device__ int lim(int i) const { return causal ? min(max(i + Tk - Tq + 1, 0), Tk) : Tk; }
  // the first query that sees key j (Tq when none does)
  __device__ int first_query(int j) const { return causal ? min(max(j - (Tk - Tq), 0), Tq) : 0; }
};

// Shared-memory layout (floats), rows padded to P = D+1.
struct Smem {
  float* S;    // [D][P]  S or G
  float* z;    // [D]     z or y
  float* U;    // [C][P]  φ(q) of a query chunk
  float* DN;   // [C][P]  dn (backward)
  float* DD;   // [C]     dd (backward); den (forward)
  float* Fk;   // [C][P]  φ(k), 0 at padded keys
  float* Vc;   // [C][P]
  float* M1;   // [C][C]  A
  float* M2;   // [C][C]  B (backward)
  __device__ Smem(float* base, int D, int C) {
    const int P = D + 1;
    S = base;
    z = S + D * P;
    U = z + D;
    DN = U + C * P;
    DD = DN + C * P;
    Fk = DD + C;
    Vc = Fk + C * P;
    M1 = Vc + C * P;
    M2 = M1 + C * C;
  }
};

__device__ void zero_state(const Smem& sm, int D) {
  const int P = D + 1;
  for (int idx = threadIdx.x; idx < D * P; idx += blockDim.x) sm.S[idx] = 0.0f;
  for (int idx = threadIdx.x; idx < D; idx += blockDim.x) sm.z[idx] = 0.0f;
}

// Fk, Vc <- keys [start, start+n) of one (batch, kv head); kh, vh point at its [Tk,D] rows
__device__ void load_keys(const Smem& sm, const float* kh, const float* vh, const unsigned char* keep_b,
                          int start, int n, int D) {
  const int P = D + 1;
  for (int idx = threadIdx.x; idx < n * D; idx += blockDim.x) {
    const int jj = idx / D, d = idx % D;
    const int j = start + jj;
    const bool kept = !keep_b || keep_b[j];
    sm.Fk[jj * P + d] = kept ? phi(kh[size_t(j) * D + d]) : 0.0f;
    sm.Vc[jj * P + d] = vh[size_t(j) * D + d];
  }
}

// S += Σ_jj f_jj v_jjᵀ, z += Σ_jj f_jj over the n loaded keys
__device__ void add_keys(const Smem& sm, int n, int D) {
  const int P = D + 1;
  for (int idx = threadIdx.x; idx < D * D; idx += blockDim.x) {
    const int d = idx / D, e = idx % D;
    float acc = 0.0f;
    for (int jj = 0; jj < n; jj++) acc += sm.Fk[jj * P + d] * sm.Vc[jj * P + e];
    sm.S[d * P + e] += acc;
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.0f;
    for (int jj = 0; jj < n; jj++) acc += sm.Fk[jj * P + d];
    sm.z[d] += acc;
  }
}

// U, DN, DD <- queries [start, start+n) of one (batch, head): u = φ(q), dn = do/den,
// dd = −(do·o)/den
__device__ void load_query_grads(const Smem& sm, const float* qh, const float* oh, const float* doh,
                                 const float* denh, int start, int n, int D) {
  const int P = D + 1;
  for (int idx = threadIdx.x; idx < n * D; idx += blockDim.x) {
    const int ii = idx / D, d = idx % D;
    const size_t gi = size_t(start + ii) * D + d;
    sm.U[ii * P + d] = phi(qh[gi]);
    sm.DN[ii * P + d] = doh[gi] / denh[start + ii];
  }
  for (int ii = threadIdx.x; ii < n; ii += blockDim.x) {
    const size_t row = size_t(start + ii) * D;
    float dot = 0.0f;
    for (int e = 0; e < D; e++) dot += doh[row + e] * oh[row + e];
    sm.DD[ii] = -dot / denh[start + ii];
  }
}

// G += Σ_ii u_ii dn_iiᵀ, y += Σ_ii u_ii dd_ii over the n loaded queries
__device__ void add_queries(const Smem& sm, int n, int D) {
  const int P = D + 1;
  for (int idx = threadIdx.x; idx < D * D; idx += blockDim.x) {
    const int d = idx / D, e = idx % D;
    float acc = 0.0f;
    for (int ii = 0; ii < n; ii++) acc += sm.U[ii * P + d] * sm.DN[ii * P + e];
    sm.S[d * P + e] += acc;
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.0f;
    for (int ii = 0; ii < n; ii++) acc += sm.U[ii * P + d] * sm.DD[ii];
    sm.z[d] += acc;
  }
}

// grid: B·Hq blocks of 256 threads
__global__ void __launch_bounds__(kThreads)
    linear_fwd_kernel(const float* __restrict__ q, const float* __restrict__ k,
                      const float* __restrict__ v, const unsigned char* __restrict__ keep,
                      float* __restrict__ out, float* __restrict__ den, int Hq, int Hkv, int Tq,
                      int Tk, int D, int C, bool causal) {
  extern __shared__ float smem[];
  const Smem sm(smem, D, C);
  const Geom geo{Tq, Tk, causal};
  const int P = D + 1;
  const int bh = blockIdx.x;
  const int b = bh / Hq, h = bh % Hq;
  const int g = h / (Hq / Hkv);
  const float* qh = q + size_t(bh) * Tq * D;
  const float* kh = k + (size_t(b) * Hkv + g) * Tk * D;
  const float* vh = v + (size_t(b) * Hkv + g) * Tk * D;
  const unsigned char* keep_b = keep ? keep + size_t(b) * Tk : nullptr;
  float* oh = out + size_t(bh) * Tq * D;
  float* denh = den + size_t(bh) * Tq;

  zero_state(sm, D);
  __syncthreads();
  int done = 0;  // keys [0, done) are in (S, z)
  for (int i0 = 0; i0 < Tq; i0 += C) {
    const int nq = min(C, Tq - i0);
    const int L0 = geo.lim(i0), L1 = geo.lim(i0 + nq - 1);
    while (done < L0) {  // catch the state up to the chunk's first query
      const int n = min(C, L0 - done);
      load_keys(sm, kh, vh, keep_b, done, n, D);
      __syncthreads();
      add_keys(sm, n, D);
      __syncthreads();
      done += n;
    }
    const int nk = L1 - L0;  // keys seen by part of the chunk only (< C)
    for (int idx = threadIdx.x; idx < nq * D; idx += blockDim.x) {
      const int ii = idx / D, d = idx % D;
      sm.U[ii * P + d] = phi(qh[size_t(i0 + ii) * D + d]);
    }
    load_keys(sm, kh, vh, keep_b, L0, nk, D);
    __syncthreads();
    for (int idx = threadIdx.x; idx < nq * nk; idx += blockDim.x) {
      const int ii = idx / nk, jj = idx % nk;
      float a = 0.0f;
      if (L0 + jj < geo.lim(i0 + ii))
        for (int d = 0; d < D; d++) a += sm.U[ii * P + d] * sm.Fk[jj * P + d];
      sm.M1[ii * C + jj] = a;
    }
    __syncthreads();
    for (int ii = threadIdx.x; ii < nq; ii += blockDim.x) {
      float dsum = 0.0f;
      for (int d = 0; d < D; d++) dsum += sm.U[ii * P + d] * sm.z[d];
      for (int jj = 0; jj < nk; jj++) dsum += sm.M1[ii * C + jj];
      sm.DD[ii] = dsum + kEps;
      denh[i0 + ii] = dsum + kEps;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < nq * D; idx += blockDim.x) {
      const int ii = idx / D, e = idx % D;
      float o = 0.0f;
      for (int d = 0; d < D; d++) o += sm.U[ii * P + d] * sm.S[d * P + e];
      for (int jj = 0; jj < nk; jj++) o += sm.M1[ii * C + jj] * sm.Vc[jj * P + e];
      oh[size_t(i0 + ii) * D + e] = o / sm.DD[ii];
    }
    __syncthreads();
    if (nk > 0) {
      add_keys(sm, nk, D);  // done == L0 here; the chunk's keys join the state
      __syncthreads();
      done = L1;
    }
  }
}

// grid: B·Hkv blocks of 256 threads; dk, dv are zeroed here and summed over the group's heads
__global__ void __launch_bounds__(kThreads)
    linear_bwd_kernel(const float* __restrict__ q, const float* __restrict__ k,
                      const float* __restrict__ v, const unsigned char* __restrict__ keep,
                      const float* __restrict__ out, const float* __restrict__ den,
                      const float* __restrict__ dout, float* __restrict__ dq, float* __restrict__ dk,
                      float* __restrict__ dv, int Hq, int Hkv, int Tq, int Tk, int D, int C,
                      bool causal) {
  extern __shared__ float smem[];
  const Smem sm(smem, D, C);
  const Geom geo{Tq, Tk, causal};
  const int P = D + 1;
  const int bg = blockIdx.x;
  const int b = bg / Hkv, g = bg % Hkv;
  const int group = Hq / Hkv;
  const float* kh = k + size_t(bg) * Tk * D;
  const float* vh = v + size_t(bg) * Tk * D;
  const unsigned char* keep_b = keep ? keep + size_t(b) * Tk : nullptr;
  float* dkh = dk + size_t(bg) * Tk * D;
  float* dvh = dv + size_t(bg) * Tk * D;

  for (size_t idx = threadIdx.x; idx < size_t(Tk) * D; idx += blockDim.x) dkh[idx] = dvh[idx] = 0.0f;

  for (int hh = 0; hh < group; hh++) {
    const int bh = b * Hq + g * group + hh;
    const float* qh = q + size_t(bh) * Tq * D;
    const float* oh = out + size_t(bh) * Tq * D;
    const float* doh = dout + size_t(bh) * Tq * D;
    const float* denh = den + size_t(bh) * Tq;
    float* dqh = dq + size_t(bh) * Tq * D;

    // ---- pass 1: dq, queries in increasing order; (S, z) = prefix sums over keys ----
    zero_state(sm, D);
    __syncthreads();
    int done = 0;
    for (int i0 = 0; i0 < Tq; i0 += C) {
      const int nq = min(C, Tq - i0);
      const int L0 = geo.lim(i0), L1 = geo.lim(i0 + nq - 1);
      while (done < L0) {
        const int n = min(C, L0 - done);
        load_keys(sm, kh, vh, keep_b, done, n, D);
        __syncthreads();
        add_keys(sm, n, D);
        __syncthreads();
        done += n;
      }
      const int nk = L1 - L0;
      load_query_grads(sm, qh, oh, doh, denh, i0, nq, D);
      load_keys(sm, kh, vh, keep_b, L0, nk, D);
      __syncthreads();
      for (int idx = threadIdx.x; idx < nq * nk; idx += blockDim.x) {  // B_ij
        const int ii = idx / nk, jj = idx % nk;
        float bij = 0.0f;
        if (L0 + jj < geo.lim(i0 + ii)) {
          for (int e = 0; e < D; e++) bij += sm.Vc[jj * P + e] * sm.DN[ii * P + e];
          bij += sm.DD[ii];
        }
        sm.M2[ii * C + jj] = bij;
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < nq * D; idx += blockDim.x) {
        const int ii = idx / D, d = idx % D;
        float du = sm.z[d] * sm.DD[ii];
        for (int e = 0; e < D; e++) du += sm.S[d * P + e] * sm.DN[ii * P + e];
        for (int jj = 0; jj < nk; jj++) du += sm.M2[ii * C + jj] * sm.Fk[jj * P + d];
        const size_t gi = size_t(i0 + ii) * D + d;
        dqh[gi] = du * dphi(qh[gi]);
      }
      __syncthreads();
      if (nk > 0) {
        add_keys(sm, nk, D);
        __syncthreads();
        done = L1;
      }
    }

    // ---- pass 2: dk, dv, keys in decreasing order; (G, y) = suffix sums over queries ----
    zero_state(sm, D);
    __syncthreads();
    int qdone = Tq;  // queries [qdone, Tq) are in (G, y)
    for (int j0 = ((Tk - 1) / C) * C; j0 >= 0; j0 -= C) {
      const int nk = min(C, Tk - j0);
      const int Fhi = geo.first_query(j0 + nk - 1), Flo = geo.first_query(j0);
      while (qdone > Fhi) {  // queries that see every key of the chunk
        const int n = min(C, qdone - Fhi);
        const int start = qdone - n;
        load_query_grads(sm, qh, oh, doh, denh, start, n, D);
        __syncthreads();
        add_queries(sm, n, D);
        __syncthreads();
        qdone = start;
      }
      const int nqi = Fhi - Flo;  // queries that see part of the chunk (< C)
      load_query_grads(sm, qh, oh, doh, denh, Flo, nqi, D);
      load_keys(sm, kh, vh, keep_b, j0, nk, D);
      __syncthreads();
      for (int idx = threadIdx.x; idx < nqi * nk; idx += blockDim.x) {  // A_ij, B_ij
        const int ii = idx / nk, jj = idx % nk;
        float a = 0.0f, bij = 0.0f;
        if (j0 + jj < geo.lim(Flo + ii)) {
          for (int d = 0; d < D; d++) {
            a += sm.U[ii * P + d] * sm.Fk[jj * P + d];
            bij += sm.DN[ii * P + d] * sm.Vc[jj * P + d];
          }
          bij += sm.DD[ii];
        }
        sm.M1[ii * C + jj] = a;
        sm.M2[ii * C + jj] = bij;
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < nk * D; idx += blockDim.x) {
        const int jj = idx / D, d = idx % D;
        const int j = j0 + jj;
        float df = sm.z[d], dvv = 0.0f;
        for (int e = 0; e < D; e++) {
          df += sm.S[d * P + e] * sm.Vc[jj * P + e];   // (G v_j)_d
          dvv += sm.S[e * P + d] * sm.Fk[jj * P + e];  // (Gᵀ f_j)_d
        }
        for (int ii = 0; ii < nqi; ii++) {
          df += sm.M2[ii * C + jj] * sm.U[ii * P + d];
          dvv += sm.M1[ii * C + jj] * sm.DN[ii * P + d];
        }
        const bool kept = !keep_b || keep_b[j];
        const size_t gi = size_t(j) * D + d;
        dkh[gi] += kept ? df * dphi(kh[gi]) : 0.0f;
        dvh[gi] += dvv;
      }
      __syncthreads();
      if (nqi > 0) {
        add_queries(sm, nqi, D);
        __syncthreads();
        qdone = Flo;
      }
    }
    __syncthreads();
  }
}

}  // namespace

void linear_forward(const LinearArgs& a, float* out, float* den) {
  const size_t smem = linear_smem_bytes(a.D, a.C);
  allow_smem(linear_fwd_kernel, smem, "linear_fwd_kernel");
  const dim3 grid(a.B * a.Hq);
  linear_fwd_kernel<<<grid, kThreads, smem>>>(a.q, a.k, a.v, a.key_keep, out, den, a.Hq, a.Hkv,
                                               a.Tq, a.Tk, a.D, a.C, a.causal);
  check_launch("linear_fwd_kernel", [&] { return describe(a, grid, smem); });
}

void linear_backward(const LinearArgs& a, const float* out, const float* den, const float* dout,
                     float* dq, float* dk, float* dv) {
  const size_t smem = linear_smem_bytes(a.D, a.C);
  allow_smem(linear_bwd_kernel, smem, "linear_bwd_kernel");
  const dim3 grid(a.B * a.Hkv);
  linear_bwd_kernel<<<grid, kThreads, smem>>>(a.q, a.k, a.v, a.key_keep, out, den, dout, dq, dk,
                                               dv, a.Hq, a.Hkv, a.Tq, a.Tk, a.D, a.C, a.causal);
  check_launch("linear_bwd_kernel", [&] { return describe(a, grid, smem); });
}

}  // namespace attnlab::cudak
