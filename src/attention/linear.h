// Linear attention (Katharopoulos, Vyas, Pappas, Fleuret 2020, "Transformers are RNNs: Fast
// Autoregressive Transformers with Linear Attention", ICML 2020, sections 3.2-3.4).
//
// The softmax similarity exp(qᵀk/√D) is replaced by a kernel φ(q)ᵀφ(k) with the feature map
//   φ(x) = elu(x) + 1 = x + 1 (x > 0),  eˣ (x ≤ 0)       elementwise, φ > 0
// so the products can be re-associated and no Tq×Tk matrix is ever formed:
//
//   Q = x_q W_qᵀ + b_q   [B,Tq,H·D]    K = x_kv W_kᵀ + b_k   [B,Tk,Hkv·D]    V likewise
//   per batch b and head h (kv head g = h / (H/Hkv)), over the keys j visible to query i
//   (causal: j ≤ i + Tk − Tq; key padding: kept keys only):
//     S_i = Σ_j φ(k_j) v_jᵀ   [D,D]          z_i = Σ_j φ(k_j)   [D]
//     o_i = S_iᵀ φ(q_i) / (φ(q_i)ᵀ z_i + ε)  [D]            ε = 1e-6
//   out = O W_oᵀ + b_o   [B,Tq,C]
//
// Without a causal mask S_i = S and z_i = z are the same for every query. With one they are
// prefix sums over the keys, which is also the recurrent form used for generation (the paper's
// "transformer as an RNN": the state (S, z) per (batch, kv head) is updated once per token).
// Equivalently o_i = Σ_j A_ij v_j with the implied weights
//     A_ij = φ(q_i)ᵀφ(k_j) / (Σ_j' φ(q_i)ᵀφ(k_j') + ε)
// (attention_weights() returns them on request).
//
// Backward (the paper's section 3.3.1 and Algorithm 1), with u_i = φ(q_i), f_j = φ(k_j),
// n_i = S_iᵀu_i, d_i = u_iᵀz_i + ε, given do_i:
//     dn_i = do_i / d_i          dd_i = −(do_i · o_i) / d_i
//     du_i = S_i dn_i + z_i dd_i                        (forward-order pass: prefix sums S_i, z_i)
//     G_j = Σ_{i sees j} u_i dn_iᵀ   y_j = Σ_{i sees j} u_i dd_i    (reverse-order pass: suffix sums)
//     df_j = G_j v_j + y_j           dv_j += G_jᵀ f_j
//     dq_i = du_i ⊙ φ'(q_i),  dk_j = df_j ⊙ φ'(k_j),   φ'(x) = 1 (x > 0), eˣ = φ(x) (x ≤ 0)
// Padded keys are in no sum, so they get exactly zero dk and dv.
//
// Cost: time O(B·H·(Tq + Tk)·D²) each way; the state is O(D²) per (batch, head) in the forward
// and per (batch, kv head) in the backward: no Tq×Tk buffer (the optional attention_weights()
// builds one only on request). Saved activations: Q, K, V, φ(Q), φ(K), O and d: O(B·T·C).
#pragma once
#include "attention/attention.h"
#include "attention/projections.h"
#include "attention/variants.h"

namespace attnlab {

class LinearAttention : public Attention {
 public:
  // ε in the normaliser (as in the paper's code): it matters for a query that sees no key
  // (o = 0 instead of 0/0); otherwise u·z is a sum of positive terms φ(q)ᵀφ(k), typically
  // O(D) per visible key, so ε moves the output by a relative ~1e-7 (it is the same ε in the
  // PyTorch reference, so the fixtures see no difference at all).
  static constexpr float kEps = 1e-6f;
  // attention_weights() is built only if Tq·Tk is at most this (per (b, h)); else it is empty.
  static constexpr long long kMaxWeightElems = 4096LL * 4096LL;

  LinearAttention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
  void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
               const AttnMask& mask, bool train, Rng* rng) override;
  void backward(float* dx_q, float* dx_kv, const float* dout) override;
  void cache_reset(int B, int capacity) override;
  void forward_cached(float* out, const float* x_new, int B, int Tn) override;
  std::vector<float> attention_weights() const override;

 protected:
  std::vector<std::vector<float>*> cache_buffers() override { return {&cS_, &cz_}; }

 private:
  int D_;
  Projections proj_;  // W_q, W_k, W_v, W_o and biases
  bool weights_kept_ = false;  // keep_weights was on at the last forward (and Tq·Tk small enough)
  std::vector<float> q_, k_, v_;    // projections Q [B,Tq,C], K, V [B,Tk,Hkv·D]
  std::vector<float> fq_, fk_;      // φ(Q), φ(K); φ(K) is 0 at padded keys
  std::vector<float> o_, den_;      // O [B,Tq,C] (before W_o), d [B,H,Tq]
  std::vector<unsigned char> keep_; // [B,Tk] key padding of the last forward (1 = kept)
  std::vector<unsigned char> vis_;  // [B,Tq] 1 = query sees at least one kept key
  std::vector<float> state_;        // O(D²) running sums per (b, head) or (b, kv head)
  std::vector<float> dq_, dk_, dv_, do_;
  // recurrent state for generation: S [B,Hkv,D,D], z [B,Hkv,D]; scratch for one chunk
  std::vector<float> cS_, cz_;
  std::vector<float> cq_, ck_, cv_, co_;
};

}  // namespace attnlab
