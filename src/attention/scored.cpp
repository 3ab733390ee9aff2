// ScoredAttention, the machinery shared by bahdanau and luong, per batch b and head h:
//   forward   S_ij = φ(M_q,h q_i, M_k,h k_j) (φ: dot or v_hᵀ tanh(x + y)),  P = softmax_rows(S),
//             O_h = dropout(P) V_g
//   backward  dS from P·V and the softmax (ops/attention_core.h), then through φ and the maps
// (formulas in full in scored.h).
#include "attention/scored.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>
#include <omp.h>

#include "attention/positions.h"
#include "core/error.h"
#include "core/fastmath.h"
#include "core/gemm.h"

namespace attnlab {

namespace {

// The additive score's tanh's are evaluated a block of keys at a time: at most kTanhBlock
// arguments (or one key's D if D is larger), in per-thread scratch.
constexpr int kTanhBlock = 2048;
constexpr int kPacket = kTanhPacket;  // blocks are padded to a multiple of the widest SIMD packet

inline int round_up(int n, int k) { return (n + k - 1) / k * k; }


// z [n, D] = tanh(a + c_j) for the n keys c_j at c + j·ldc (n·D ≤ one aligned block, the
// arguments u).
inline void tanh_block(float* z, float* u, const float* a, const float* c, int ldc, int n, int D) {
  const int m = n * D, mp = round_up(m, kPacket);
  for (int j = 0; j < n; j++) {
    const float* cj = c + size_t(j) * ldc;
    float* uj = u + size_t(j) * D;
    for (int d = 0; d < D; d++) uj[d] = a[d] + cj[d];
  }
  std::fill(u + m, u + mp, 0.0f);
  tanh_packets(z, u, mp);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// ScoredAttention
// ---------------------------------------------------------------------------------------------

ScoredAttention::ScoredAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng) : Attention(spec) {
  // check_attention_spec (run by the base class) has checked heads, scale, positions and window
  D_ = spec_.d_model / H_;
  // model.init's scheme, drawn in scaled_dot_product's order (same seed, same projections)
  proj_ = Projections(spec_, Hkv_ * D_, store, rng);
  alibi_.assign(H_, 0.0f);
  if (spec_.positions == AttnPositions::alibi)
    for (int h = 0; h < H_; h++) alibi_[h] = alibi_slope(h, H_);
}

void ScoredAttention::set_score(HeadMap mq, HeadMap mk, Param* v) {
  mq_ = mq;
  mk_ = mk;
  v_param_ = v;
}

// y[N, D] (row stride C) = x[N, D] (row stride ldx) · M_hᵀ, i.e. y_n = M_h x_n
void ScoredAttention::map_rows(float* y, const float* x, int ldx, int N, const HeadMap& m, int h) const {
  const float* W = m.param->w.data() + size_t(h) * m.head_stride + m.col0;
  sgemm(false, !m.transposed, N, D_, D_, 1.0f, x, ldx, W, m.ld, 0.0f, y, spec_.d_model);
}

// Back through ỹ = M_h x over N rows (x, dx: row stride ldx; dỹ: row stride C):
// dx += dỹ M_h (rows) ;  dM_h += Σ dỹ xᵀ (stored Mᵀ: += Σ x dỹᵀ)
void ScoredAttention::map_backward(const HeadMap& m, int h, int N, const float* dy, const float* x, float* dx,
                                   int ldx) const {
  const int C = spec_.d_model, D = D_;
  const size_t off = size_t(h) * m.head_stride + m.col0;
  const float* M = m.param->w.data() + off;
  float* dM = m.param->g.data() + off;
  sgemm(false, m.transposed, N, D, D, 1.0f, dy, C, M, m.ld, 1.0f, dx, ldx);
  if (!m.transposed)
    sgemm(true, false, D, D, N, 1.0f, dy, C, x, ldx, 1.0f, dM, m.ld);
  else
    sgemm(true, false, D, D, N, 1.0f, x, ldx, dy, C, 1.0f, dM, m.ld);
}

void ScoredAttention::forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
                              const AttnMask& mask, bool train, Rng* rng) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, D = D_;
  const int group = H_ / Hkv_;
  save_inputs(x_q, x_kv, B, Tq, Tk);
  proj_.qkv(q_, k_, v_, x_q, x_kv, B * Tq, B * Tk);
  // query terms M_q,h q_i [B,Tq,C] and key terms M_k,h k_j [B,Tk,C] (one per query head)
  if (mq_.param) {
    qt_.resize(q_.size());
    for (int h = 0; h < H_; h++) map_rows(qt_.data() + h * D, q_.data() + h * D, C, B * Tq, mq_, h);
  }
  const float* kt = k_.data();
  int kt_ld = Ckv, kt_heads = Hkv_;
  if (mk_.param) {
    kt_.resize(size_t(B) * Tk * C);
    for (int h = 0; h < H_; h++)
      map_rows(kt_.data() + h * D, k_.data() + (h / group) * D, Ckv, B * Tk, mk_, h);
    kt = kt_.data();
    kt_ld = C;
    kt_heads = H_;
  }
  last_cached_ = false;
  p_.resize(size_t(B) * H_ * Tq * Tk);
  o_.resize(size_t(B) * Tq * C);
  weights(p_.data(), mq_.param ? qt_.data() : q_.data(), B, Tq, Tk, Tk - Tq, spec_.causal, mask.key_keep, kt,
          size_t(Tk) * kt_ld, kt_ld, kt_heads);
  const float* Pd = drop_.forward(p_, spec_.dropout, train, rng);  // P̃
  mix(o_.data(), Pd, B, Tq, Tk, v_.data(), size_t(Tk) * Ckv);
  proj_.out(out, o_.data(), B * Tq);
}

void ScoredAttention::weights(float* Pout, const float* qt, int B, int Tq, int Tk, int offset, bool causal,
                              const unsigned char* keep, const float* kt, size_t kt_bs, int kt_ld,
                              int kt_heads) const {
  const int C = spec_.d_model, H = H_, D = D_;
  const int group = H_ / Hkv_;
  const int w = spec_.window;
  const float* vp = v_param_ ? v_param_->w.data() : nullptr;
  const int block_floats = round_up(std::max(kTanhBlock, D), kPacket);  // one tanh block, padded
  const int block = block_floats / D;                                    // keys per tanh block
  const size_t per_thread = 2 * size_t(block_floats);                   // z, arguments
  if (vp) scratch_.resize(size_t(omp_get_max_threads()) * per_thread);

#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      float* P = Pout + (size_t(b) * H + h) * Tq * Tk;
      const float* Qh = qt + size_t(b) * Tq * C + h * D;               // rows of stride C
      const float* Kx = kt + b * kt_bs + (kt_heads == H ? h : g) * D;  // rows of stride kt_ld
      const float* vh = vp ? vp + size_t(h) * D : nullptr;
      const float m = alibi_[h];  // ALiBi slope (0: none)
      const unsigned char* kb = keep ? keep + size_t(b) * Tk : nullptr;
      if (!vh) sgemm(false, true, Tq, Tk, D, 1.0f, Qh, C, Kx, kt_ld, 0.0f, P, Tk);  // S = Q̃_h K̃ᵀ
      for (int i = 0; i < Tq; i++) {
        float* row = P + size_t(i) * Tk;
        const int p = i + offset;  // the query's position; key j sits at position j
        const KeyBand band = key_band(p, Tk, causal, w);
        if (vh) {  // S_ij = v_hᵀ tanh(a_i + c_j) over the band, a block of keys at a time
          float* z = scratch_.data() + size_t(omp_get_thread_num()) * per_thread;
          for (int j0 = band.lo; j0 < band.hi; j0 += block) {
            const int n = std::min(block, band.hi - j0);
            tanh_block(z, z + block_floats, Qh + size_t(i) * C, Kx + size_t(j0) * kt_ld, kt_ld, n, D);
            for (int jj = 0; jj < n; jj++) {
              float s = 0.0f;
              for (int d = 0; d < D; d++) s += vh[d] * z[size_t(jj) * D + d];
              row[j0 + jj] = s;
            }
          }
        }
        masked_softmax_row(row, Tk, band, kb, p, m);
      }
    }
  }
}

// O_h = P V_g, into the head's columns of O [B,Tq,C]
void ScoredAttention::mix(float* O, const float* P, int B, int Tq, int Tk, const float* v, size_t kv_bs) const {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      sgemm(false, false, Tq, D, Tk, 1.0f, P + (size_t(b) * H + h) * Tq * Tk, Tk, v + b * kv_bs + (h / group) * D,
            Ckv, 0.0f, O + size_t(b) * Tq * C + h * D, C);
}

void ScoredAttention::backward(float* dx_q, float* dx_kv, const float* dout) {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  ATTNLAB_CHECK(x_q_ != nullptr);  // a forward must precede
  do_.assign(size_t(B) * Tq * C, 0.0f);
  dq_.assign(q_.size(), 0.0f);
  dk_.assign(k_.size(), 0.0f);
  dv_.assign(v_.size(), 0.0f);
  const float* Pd = drop_.weights(p_);  // P̃
  proj_.out_backward(do_.data(), dout, o_.data(), B * Tq);

  // the score's inputs and where their gradients go
  const float* qt = mq_.param ? qt_.data() : q_.data();
  float* dqt = dq_.data();
  if (mq_.param) {
    dqt_.assign(qt_.size(), 0.0f);
    dqt = dqt_.data();
  }
  const float* kt = k_.data();
  float* dkt = dk_.data();
  int kt_ld = Ckv;
  bool kt_per_head = false;
  if (mk_.param) {
    dkt_.assign(kt_.size(), 0.0f);
    kt = kt_.data();
    dkt = dkt_.data();
    kt_ld = C;
    kt_per_head = true;
  }
  const float* vp = v_param_ ? v_param_->w.data() : nullptr;
  const int block_floats = round_up(std::max(kTanhBlock, D), kPacket);
  const int block = block_floats / D;
  const size_t per_thread = 2 * size_t(block_floats);
  if (vp) {
    dvh_.assign(size_t(B) * H * D, 0.0f);  // dv per (b, h), summed over b in order below
    scratch_.resize(size_t(omp_get_max_threads()) * per_thread);
  }

  // one (b, kv head) pair per task: dK_g, dV_g (and a shared dK̃) are written by one thread only
  for_each_kv_group(ds_, B, H, Hkv_, Tq, Tk, [&](int b, int g, int h, float* dS) {
    const float* Vg = v_.data() + size_t(b) * Tk * Ckv + g * D;
    float* dVg = dv_.data() + size_t(b) * Tk * Ckv + g * D;
    const size_t ph = (size_t(b) * H + h) * Tq * Tk;
    const float* dOh = do_.data() + size_t(b) * Tq * C + h * D;
    // dV_g += P̃ᵀ dO_h ; dS = P ⊙ (dP − rowsum(dP ⊙ P)), dP = (dO_h V_gᵀ) ⊙ dropout mask
    attention_weights_backward(dS, dVg, p_.data() + ph, Pd + ph, drop_, ph, dOh, Vg, Tq, Tk, D, C, Ckv);
    const float* Qh = qt + size_t(b) * Tq * C + h * D;
    float* dQh = dqt + size_t(b) * Tq * C + h * D;
    const size_t koff = size_t(b) * Tk * kt_ld + (kt_per_head ? h : g) * D;
    const float* Kx = kt + koff;
    float* dKx = dkt + koff;
    if (!vp) {
      // bilinear score S = Q̃ K̃ᵀ:  dQ̃_h = dS K̃ ;  dK̃ += dSᵀ Q̃_h
      sgemm(false, false, Tq, D, Tk, 1.0f, dS, Tk, Kx, kt_ld, 0.0f, dQh, C);
      sgemm(true, false, Tk, D, Tq, 1.0f, dS, Tk, Qh, C, 1.0f, dKx, kt_ld);
    } else {
      // additive score S_ij = vᵀ tanh(a_i + c_j): the tanh's recomputed over each row's band,
      // a block of keys at a time (masked keys have dS = 0 and add nothing)
      const float* vh = vp + size_t(h) * D;
      float* dvh = dvh_.data() + (size_t(b) * H + h) * D;
      float* z = scratch_.data() + size_t(omp_get_thread_num()) * per_thread;
      for (int i = 0; i < Tq; i++) {
        const float* a = Qh + size_t(i) * C;
        float* da = dQh + size_t(i) * C;
        const KeyBand band = key_band(i + Tk - Tq, Tk, spec_.causal, spec_.window);
        for (int j0 = band.lo; j0 < band.hi; j0 += block) {
          const int n = std::min(block, band.hi - j0);
          tanh_block(z, z + block_floats, a, Kx + size_t(j0) * kt_ld, kt_ld, n, D);
          for (int jj = 0; jj < n; jj++) {
            const float ds = dS[size_t(i) * Tk + j0 + jj];
            if (ds == 0.0f) continue;
            const float* t = z + size_t(jj) * D;
            float* dc = dKx + size_t(j0 + jj) * kt_ld;
            for (int d = 0; d < D; d++) {
              dvh[d] += ds * t[d];
              const float e = ds * vh[d] * (1.0f - t[d] * t[d]);  // tanh' = 1 − tanh²
              da[d] += e;
              dc[d] += e;
            }
          }
        }
      }
    }
  });

  // the per-head maps, over all B·T rows at once (one GEMM per head, heads in order)
  if (mq_.param)
    for (int h = 0; h < H; h++)
      map_backward(mq_, h, B * Tq, dqt + h * D, q_.data() + h * D, dq_.data() + h * D, C);
  if (mk_.param)
    for (int h = 0; h < H; h++)
      map_backward(mk_, h, B * Tk, dkt + h * D, k_.data() + (h / group) * D, dk_.data() + (h / group) * D, Ckv);
  if (vp) {
    float* dv = v_param_->g.data();
    for (int b = 0; b < B; b++)
      for (size_t i = 0; i < size_t(H) * D; i++) dv[i] += dvh_[size_t(b) * H * D + i];
  }

  proj_.qkv_backward(dx_q, dx_kv, dq_.data(), dk_.data(), dv_.data(), x_q_, x_kv_, B * Tq, B * Tk);
}

std::vector<float> ScoredAttention::attention_weights() const {
  if (!keep_weights_) return {};
  return last_cached_ ? pc_ : p_;
}

// The cache has its own buffers, so a forward's saved state (for backward) survives decoding.
void ScoredAttention::cache_reset(int B, int capacity) {
  cache_begin(B, capacity);
  const int C = spec_.d_model, Ckv = Hkv_ * D_;
  kc_.resize(size_t(B) * capacity * Ckv);
  vc_.resize(size_t(B) * capacity * Ckv);
  if (mk_.param) ktc_.resize(size_t(B) * capacity * C);
  // room for one-token steps up to the capacity, so that decoding does not allocate
  pc_.reserve(size_t(B) * H_ * capacity);
  qn_.reserve(size_t(B) * C);
  qtn_.reserve(size_t(B) * C);
  on_.reserve(size_t(B) * C);
  kn_.reserve(size_t(B) * Ckv);
  vn_.reserve(size_t(B) * Ckv);
}

// x_new [B,Tn,C] are positions L0 .. L0+Tn−1 (L0 = cache_len()). Their K, V and key terms are
// appended to the cache; their queries then attend to the L0 + Tn cached keys with the causal
// band, window and ALiBi of the full forward, so each output row matches forward()'s.
void ScoredAttention::forward_cached(float* out, const float* x_new, int B, int Tn) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, D = D_;
  const int group = H_ / Hkv_;
  cache_check_step(B, Tn);
  const int L0 = cache_len_, L = L0 + Tn, cap = cache_cap_;
  proj_.qkv(qn_, kn_, vn_, x_new, x_new, B * Tn, B * Tn);
  on_.resize(size_t(B) * Tn * C);
  pc_.resize(size_t(B) * H_ * Tn * L);
  for (int b = 0; b < B; b++) {
    std::copy_n(kn_.data() + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, kc_.data() + (size_t(b) * cap + L0) * Ckv);
    std::copy_n(vn_.data() + size_t(b) * Tn * Ckv, size_t(Tn) * Ckv, vc_.data() + (size_t(b) * cap + L0) * Ckv);
  }
  const float* qt = qn_.data();
  if (mq_.param) {
    qtn_.resize(qn_.size());
    for (int h = 0; h < H_; h++) map_rows(qtn_.data() + h * D, qn_.data() + h * D, C, B * Tn, mq_, h);
    qt = qtn_.data();
  }
  const float* kt = kc_.data();
  int kt_ld = Ckv, kt_heads = Hkv_;
  if (mk_.param) {  // the new keys' terms M_k,h k_j, appended to the cached ones
    for (int b = 0; b < B; b++)
      for (int h = 0; h < H_; h++)
        map_rows(ktc_.data() + (size_t(b) * cap + L0) * C + h * D,
                 kn_.data() + size_t(b) * Tn * Ckv + (h / group) * D, Ckv, Tn, mk_, h);
    kt = ktc_.data();
    kt_ld = C;
    kt_heads = H_;
  }
  // new query i sits at position L0 + i and sees the cached keys and itself (causal); no dropout
  weights(pc_.data(), qt, B, Tn, L, L0, /*causal=*/true, nullptr, kt, size_t(cap) * kt_ld, kt_ld, kt_heads);
  mix(on_.data(), pc_.data(), B, Tn, L, vc_.data(), size_t(cap) * Ckv);
  proj_.out(out, on_.data(), B * Tn);
  cache_len_ = L;
  last_cached_ = true;
}

}  // namespace attnlab
