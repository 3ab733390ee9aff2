// Linear attention, φ(x) = elu(x) + 1 (Katharopoulos et al. 2020), per batch b and head h:
//   forward   o_i = S_iᵀ φ(q_i) / (φ(q_i)ᵀ z_i + ε),  S_i = Σ_{j ≤ lim_i} φ(k_j) v_jᵀ,  z_i = Σ φ(k_j)
//   backward  du_i = S_i dn_i + z_i dd_i (prefix sums), df_j = G_j v_j + y_j (suffix sums of
//             φ(q_i) dn_iᵀ and φ(q_i) dd_i), with dn_i = do_i / d_i, dd_i = −(do_i · o_i) / d_i
// linear.h has the derivation and the cost.
//
// One code path serves both masks. Query i sees the keys [0, lim_i), lim_i = min(Tk, i+Tk−Tq+1)
// when causal and Tk otherwise (minus padded keys, whose φ(k) row is stored as 0 and which are
// skipped). lim_i never decreases with i, so
//   * the forward and the backward's first pass walk keys and queries in increasing order,
//     adding each key to the running sums (S, z) before the first query that sees it;
//   * the backward's second pass walks keys in decreasing order and adds each query to the
//     running sums (G, y) before the first (largest) key it sees.
// Without a causal mask every lim_i = Tk: all keys are added before query 0 and all queries
// before key Tk−1, i.e. the plain sums S = Σ_j φ(k_j)v_jᵀ and G = Σ_i φ(q_i)dn_iᵀ.
#include "attention/linear.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/attention_core.h"

namespace attnlab {

namespace {

// φ(x) = elu(x) + 1, and φ'(x) from x and φ(x) (for x ≤ 0, φ' = eˣ = φ)
inline float phi(float x) { return x > 0.0f ? x + 1.0f : std::exp(x); }
inline float dphi(float x, float fx) { return x > 0.0f ? 1.0f : fx; }

// One key into the running sums: S[D,D] += f vᵀ, z[D] += f·c (c = 1 for keys; the backward
// also uses it for G += u dnᵀ, y += u·dd). The forward, the backward and the cached step all use
// this function, so the recurrent form adds keys in exactly the parallel form's order.
inline void add_key(float* S, float* z, const float* f, const float* v, int D, float c = 1.0f) {
  for (int d = 0; d < D; d++) {
    const float fd = f[d];
    float* row = S + size_t(d) * D;
    for (int e = 0; e < D; e++) row[e] += fd * v[e];
    z[d] += fd * c;
  }
}

// One query read out of the running sums: o[D] = Sᵀu / (u·z + ε). Returns the denominator.
inline float read_query(float* o, const float* S, const float* z, const float* u, int D) {
  float den = 0.0f;
  for (int d = 0; d < D; d++) den += u[d] * z[d];
  den += LinearAttention::kEps;
  for (int e = 0; e < D; e++) o[e] = 0.0f;
  for (int d = 0; d < D; d++) {
    const float ud = u[d];
    const float* row = S + size_t(d) * D;
    for (int e = 0; e < D; e++) o[e] += ud * row[e];
  }
  for (int e = 0; e < D; e++) o[e] /= den;
  return den;
}

// Parallel regions only pay off above some work: tiny shapes (tests, toy models) would spend
// more in OpenMP's fork/join than in the loops. Results do not depend on it (tasks are
// independent and each is computed the same way whether it runs alone or in a team).
constexpr double kParallelWork = 1 << 15;  // flops, roughly

// keys [0, lim) are visible to query i (before key padding): the causal band, no window
inline int key_limit(bool causal, int i, int Tq, int Tk) { return key_band(i + (Tk - Tq), Tk, causal, 0).hi; }

}  // namespace

LinearAttention::LinearAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng) : Attention(spec) {
  // check_attention_spec (run by the base class) has checked heads, window, positions, dropout
  // and scale
  D_ = spec_.d_model / H_;
  proj_ = Projections(spec_, Hkv_ * D_, store, rng);  // model.init's scheme, as scaled_dot_product
}

void LinearAttention::forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
                              const AttnMask& mask, bool /*train*/, Rng* /*rng*/) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  const bool causal = spec_.causal;
  save_inputs(x_q, x_kv, B, Tq, Tk);
  proj_.qkv(q_, k_, v_, x_q, x_kv, B * Tq, B * Tk);
  fq_.resize(q_.size());
  fk_.resize(k_.size());
  o_.resize(q_.size());
  den_.resize(size_t(B) * H * Tq);

  // key padding, and which queries see at least one kept key
  keep_.assign(size_t(B) * Tk, 1);
  if (mask.key_keep) std::copy_n(mask.key_keep, keep_.size(), keep_.begin());
  vis_.resize(size_t(B) * Tq);
  for (int b = 0; b < B; b++) {
    int first = 0;  // first kept key
    while (first < Tk && !keep_[size_t(b) * Tk + first]) first++;
    for (int i = 0; i < Tq; i++) vis_[size_t(b) * Tq + i] = key_limit(causal, i, Tq, Tk) > first ? 1 : 0;
  }

  // feature maps; φ(k) = 0 at padded keys
  const bool par_map = double(B) * (Tq + Tk) * C >= kParallelWork;
  // the state loops: O((Tq + Tk)·D²) per (b, head)
  const bool par_heads = double(B) * H * (Tq + Tk) * D * D >= kParallelWork;
#pragma omp parallel for schedule(static) if (par_map)
  for (long long r = 0; r < (long long)B * Tq; r++)
    for (int c = 0; c < C; c++) fq_[size_t(r) * C + c] = phi(q_[size_t(r) * C + c]);
#pragma omp parallel for schedule(static) if (par_map)
  for (long long r = 0; r < (long long)B * Tk; r++) {
    const bool kept = keep_[size_t(r)] != 0;
    for (int c = 0; c < Ckv; c++) fk_[size_t(r) * Ckv + c] = kept ? phi(k_[size_t(r) * Ckv + c]) : 0.0f;
  }

  // running sums per (b, h): S [D,D], z [D]
  const size_t st = size_t(D) * D + D;
  state_.resize(std::max(state_.size(), size_t(B) * H * st));
#pragma omp parallel for collapse(2) schedule(static) if (par_heads)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int g = h / group;
      float* S = state_.data() + (size_t(b) * H + h) * st;
      float* z = S + size_t(D) * D;
      std::fill(S, S + st, 0.0f);
      int j = 0;  // keys [0, j) are in (S, z)
      for (int i = 0; i < Tq; i++) {
        for (const int lim = key_limit(causal, i, Tq, Tk); j < lim; j++) {
          if (!key_kept(keep_.data() + size_t(b) * Tk, j)) continue;
          const size_t kr = (size_t(b) * Tk + j) * Ckv + size_t(g) * D;
          add_key(S, z, fk_.data() + kr, v_.data() + kr, D);
        }
        const size_t qr = (size_t(b) * Tq + i) * C + size_t(h) * D;
        den_[(size_t(b) * H + h) * Tq + i] = read_query(o_.data() + qr, S, z, fq_.data() + qr, D);
      }
    }
  proj_.out(out, o_.data(), B * Tq);
  weights_kept_ = keep_weights_ && (long long)Tq * Tk <= kMaxWeightElems;
}

void LinearAttention::backward(float* dx_q, float* dx_kv, const float* dout) {
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  const bool causal = spec_.causal;
  ATTNLAB_CHECK(x_q_ != nullptr);
  do_.assign(size_t(B) * Tq * C, 0.0f);
  dq_.assign(q_.size(), 0.0f);
  dk_.assign(k_.size(), 0.0f);
  dv_.assign(v_.size(), 0.0f);
  proj_.out_backward(do_.data(), dout, o_.data(), B * Tq);

  // per (b, kv head): (S, z) or (G, y) [D·D + D] and dn [D]; one task writes dK_g, dV_g and the
  // dQ_h of its group's heads only, so the result does not depend on the thread count
  const size_t st = size_t(D) * D + 2 * size_t(D);
  state_.resize(std::max(state_.size(), size_t(B) * Hkv_ * st));
  const bool par_heads = double(B) * H * (Tq + Tk) * D * D >= kParallelWork;
#pragma omp parallel for collapse(2) schedule(static) if (par_heads)
  for (int b = 0; b < B; b++)
    for (int g = 0; g < Hkv_; g++) {
      float* S = state_.data() + (size_t(b) * Hkv_ + g) * st;  // reused as G in the second pass
      float* z = S + size_t(D) * D;                            // reused as y
      float* dn = z + D;
      // dn_i = do_i / d_i and dd_i = −(do_i · o_i) / d_i for query i, head h
      auto query_grads = [&](int i, int h) {
        const size_t qr = (size_t(b) * Tq + i) * C + size_t(h) * D;
        const float den = den_[(size_t(b) * H + h) * Tq + i];
        const float* dO = do_.data() + qr;
        const float* O = o_.data() + qr;
        float dot = 0.0f;
        for (int e = 0; e < D; e++) {
          dot += dO[e] * O[e];
          dn[e] = dO[e] / den;
        }
        return -dot / den;
      };

      // pass 1, increasing i: du_i = S_i dn_i + z_i dd_i with the prefix sums (S_i, z_i)
      std::fill(S, S + size_t(D) * D + D, 0.0f);
      int j = 0;
      for (int i = 0; i < Tq; i++) {
        for (const int lim = key_limit(causal, i, Tq, Tk); j < lim; j++) {
          if (!key_kept(keep_.data() + size_t(b) * Tk, j)) continue;
          const size_t kr = (size_t(b) * Tk + j) * Ckv + size_t(g) * D;
          add_key(S, z, fk_.data() + kr, v_.data() + kr, D);
        }
        if (!vis_[size_t(b) * Tq + i]) continue;  // o_i = 0 whatever q_i is: dq_i = 0
        for (int h = g * group; h < (g + 1) * group; h++) {
          const float dd = query_grads(i, h);
          const size_t qr = (size_t(b) * Tq + i) * C + size_t(h) * D;
          for (int d = 0; d < D; d++) {
            const float* row = S + size_t(d) * D;
            float du = z[d] * dd;
            for (int e = 0; e < D; e++) du += row[e] * dn[e];
            dq_[qr + d] += du * dphi(q_[qr + d], fq_[qr + d]);
          }
        }
      }

      // pass 2, decreasing j: G_j = Σ_{i sees j} u_i dn_iᵀ, y_j = Σ_{i sees j} u_i dd_i (suffix sums)
      float* G = S;
      float* y = z;
      std::fill(G, G + size_t(D) * D + D, 0.0f);
      int i = Tq - 1;  // queries (i, Tq) are in (G, y)
      for (int jj = Tk - 1; jj >= 0; jj--) {
        for (; i >= 0 && key_limit(causal, i, Tq, Tk) > jj; i--) {
          if (!vis_[size_t(b) * Tq + i]) continue;  // sees only padded keys, which get nothing
          for (int h = g * group; h < (g + 1) * group; h++) {
            const float dd = query_grads(i, h);
            // G += u dnᵀ, y += u·dd
            add_key(G, y, fq_.data() + (size_t(b) * Tq + i) * C + size_t(h) * D, dn, D, dd);
          }
        }
        if (!keep_[size_t(b) * Tk + jj]) continue;  // padded: in no sum, zero gradient
        const size_t kr = (size_t(b) * Tk + jj) * Ckv + size_t(g) * D;
        const float* f = fk_.data() + kr;
        const float* v = v_.data() + kr;
        float* dV = dv_.data() + kr;
        for (int d = 0; d < D; d++) {  // dv_j = G_jᵀ f_j ; df_j = G_j v_j + y_j
          const float* row = G + size_t(d) * D;
          float df = y[d];
          for (int e = 0; e < D; e++) {
            dV[e] += f[d] * row[e];
            df += row[e] * v[e];
          }
          dk_[kr + d] += df * dphi(k_[kr + d], f[d]);
        }
      }
    }

  proj_.qkv_backward(dx_q, dx_kv, dq_.data(), dk_.data(), dv_.data(), x_q_, x_kv_, B * Tq, B * Tk);
}

// ---- recurrent form (generation): the state (S, z) per (b, kv head) is all that is kept
void LinearAttention::cache_reset(int B, int /*capacity*/) {
  cache_begin(B, 1);  // the capacity does not matter: the state has a fixed size
  cS_.assign(size_t(B) * Hkv_ * D_ * D_, 0.0f);
  cz_.assign(size_t(B) * Hkv_ * D_, 0.0f);
}

void LinearAttention::forward_cached(float* out, const float* x_new, int B, int Tn) {
  const int C = spec_.d_model, Ckv = Hkv_ * D_, D = D_;
  const int group = H_ / Hkv_;
  cache_check_step(B, Tn, /*bounded=*/false);
  cq_.resize(size_t(B) * Tn * C);
  co_.resize(cq_.size());
  ck_.resize(size_t(B) * Tn * Ckv);
  cv_.resize(ck_.size());
  proj_.q(cq_.data(), x_new, B * Tn);
  proj_.kv(ck_.data(), cv_.data(), x_new, B * Tn);
  for (float& x : cq_) x = phi(x);
  for (float& x : ck_) x = phi(x);
#pragma omp parallel for collapse(2) schedule(static) if (double(B) * H_ * Tn * D * D >= kParallelWork)
  for (int b = 0; b < B; b++)
    for (int g = 0; g < Hkv_; g++) {
      float* S = cS_.data() + (size_t(b) * Hkv_ + g) * D * D;
      float* z = cz_.data() + (size_t(b) * Hkv_ + g) * D;
      for (int t = 0; t < Tn; t++) {  // position t sees the cache and itself
        const size_t kr = (size_t(b) * Tn + t) * Ckv + size_t(g) * D;
        add_key(S, z, ck_.data() + kr, cv_.data() + kr, D);
        for (int h = g * group; h < (g + 1) * group; h++) {
          const size_t qr = (size_t(b) * Tn + t) * C + size_t(h) * D;
          read_query(co_.data() + qr, S, z, cq_.data() + qr, D);
        }
      }
    }
  proj_.out(out, co_.data(), B * Tn);
  cache_len_ += Tn;
}

// A_ij = φ(q_i)ᵀφ(k_j) / d_i on visible kept keys, else 0: [B,H,Tq,Tk]. Built from the saved
// φ(Q), φ(K) and d only when asked (keep_weights before the forward, Tq·Tk ≤ kMaxWeightElems).
std::vector<float> LinearAttention::attention_weights() const {
  if (!weights_kept_) return {};
  const int B = B_, Tq = Tq_, Tk = Tk_, C = spec_.d_model, Ckv = Hkv_ * D_, H = H_, D = D_;
  const int group = H_ / Hkv_;
  std::vector<float> w(size_t(B) * H * Tq * Tk, 0.0f);
#pragma omp parallel for collapse(2) schedule(static) if (double(B) * H * Tq * Tk * D >= kParallelWork)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < Tq; i++) {
        const float* u = fq_.data() + (size_t(b) * Tq + i) * C + size_t(h) * D;
        const float den = den_[(size_t(b) * H + h) * Tq + i];
        float* row = w.data() + ((size_t(b) * H + h) * Tq + i) * Tk;
        const int lim = key_limit(spec_.causal, i, Tq, Tk);
        for (int j = 0; j < lim; j++) {
          const float* f = fk_.data() + (size_t(b) * Tk + j) * Ckv + size_t(h / group) * D;  // 0 if padded
          float s = 0.0f;
          for (int d = 0; d < D; d++) s += u[d] * f[d];
          row[j] = s / den;
        }
      }
  return w;
}

std::unique_ptr<Attention> make_linear(const AttentionSpec& spec, ParamStore& store, Rng& rng) {
  return std::make_unique<LinearAttention>(spec, store, rng);
}

}  // namespace attnlab
