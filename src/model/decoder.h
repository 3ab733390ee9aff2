// Decoder-only transformer (GPT-2 style causal language model).
//
//   x0 = tok_emb[ids] + pos(t)                         [B,T,C]
//   for each block l:                                  (pre-LN)
//     x = x + drop(attn_l(ln1_l(x)))                   causal self-attention
//     x = x + drop(W2 gelu(W1 ln2_l(x) + b1) + b2)     MLP, hidden d_ff
//   logits = lnf(x) · W_headᵀ                          [B,T,V]   (W_head = tok_emb when tied)
//   loss = mean cross-entropy over targets ≠ -1
//
// Initialisation (GPT-2): weights N(0, 0.02), biases 0, layernorm (1, 0);
// the projections that write into the residual stream (attention output, MLP
// W2) use N(0, 0.02/√(2·n_layers)).
//
// Activations are kept in buffers that grow to the largest (B,T) seen and
// are then reused: a training step allocates nothing.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "config/config.h"
#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

class DecoderModel {
 public:
  DecoderModel(const ModelConfig& cfg, int vocab_size, uint64_t seed);

  // ids [B,T]; targets [B,T] (-1 = no loss) or null. Returns the mean loss (0 without targets).
  // train = true enables dropout (drawn from rng) and keeps what backward needs.
  float forward(const int* ids, const int* targets, int B, int T, bool train, Rng* rng,
                float label_smoothing = 0.0f);
  // Gradients of the last forward's mean loss, ADDED into the parameters' .g.
  void backward();

  // Incremental decoding with each layer's attention cache (KV cache, or the recurrent state of
  // linear attention). cache_reset(B, capacity ≤ block_size) starts empty sequences;
  // forward_cached(ids [B,Tn]) appends Tn tokens and returns their logits [B,Tn,V], equal to
  // the matching rows of forward() over the whole prefix. No backward.
  bool has_cache() const;  // every layer's variant supports it
  void cache_reset(int B, int capacity);
  const float* forward_cached(const int* ids, int B, int Tn);
  int cache_len() const { return cache_len_; }

  const float* logits() const { return logits_.data(); }  // [B,T,V] of the last forward
  int vocab_size() const { return V_; }
  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }
  int loss_count() const { return loss_count_; }  // targets counted by the last forward
  std::vector<Attention*> attention_modules();

 private:
  struct Block {
    Param *ln1_w, *ln1_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;
    std::unique_ptr<Attention> attn;
    // activations [N = B·T rows]
    std::vector<float> ln1, ln1_mean, ln1_rstd, attn_out, attn_mask, res1, ln2, ln2_mean, ln2_rstd, fc, act,
        proj, proj_mask, out;
  };
  void resize(int B, int T);
  void embed(const int* ids, int B, int T, int pos0, float p_drop, Rng* rng);
  void blocks_and_head(int B, int T, bool train, float p_drop, Rng* rng, bool cached);

  ModelConfig cfg_;
  int V_, C_, F_, L_;
  ParamStore store_;
  Param *tok_emb_, *pos_emb_ = nullptr, *lnf_w_, *lnf_b_, *head_w_;
  std::vector<float> sinusoid_;  // [block_size, C] when positions = sinusoidal
  std::vector<Block> blocks_;
  // activations
  int B_ = 0, T_ = 0;
  bool train_ = false;
  std::vector<int> ids_, targets_;
  std::vector<float> x0_, emb_mask_, lnf_, lnf_mean_, lnf_rstd_, logits_, probs_, losses_;
  int loss_count_ = 0;
  int cache_B_ = 0, cache_len_ = 0;
  float smoothing_ = 0.0f;
  // gradient scratch
  std::vector<float> dx_, dln_, dact_, dfc_, dbranch_, dlogits_, dlnf_;
};

}  // namespace attnlab
