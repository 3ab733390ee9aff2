// The three model kinds, composed from an embedding, a stack, a final norm and a head
// (embedding.h, stack.h, coders.h, heads.h):
//
//   decoder           GPT-style causal LM:  h = Decoder(ids);  logits = LMHead(h)
//   encoder           BERT-style:           h = Encoder(ids)  (bidirectional, key padding)
//                                           -> LMHead (masked tokens, labelled positions) or
//                                              ClassifierHead on a pooled vector
//   encoder_decoder   Vaswani et al. 2017:  m = Encoder(src);  h = Decoder(tgt, cross-attention to m)
//                                           logits = LMHead(h)
//                     bottleneck: no cross-attention; c = mean_s m[s] is added to every decoder
//                     input, a fixed-size summary of the source (Sutskever et al. 2014).
//
// A decoder model's parameters keep the names and order they have always had (tok_emb, pos_emb,
// blocks.L.*, lnf.*, head.w), so its checkpoints and initial weights are unchanged; an
// encoder_decoder registers its embedding tables first, then prefixes its stacks with "encoder."
// and "decoder.".
//
// Activations live in buffers that grow to the largest shapes seen and are then reused: a training
// step allocates nothing once the shapes are stable.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "config/config.h"
#include "core/param.h"
#include "data/dataset.h"
#include "model/coders.h"
#include "model/heads.h"

namespace attnlab {

class Model {
 public:
  // n_classes > 0 gives an encoder a classification head (else its head predicts tokens).
  Model(const ModelConfig& cfg, int vocab_size, uint64_t seed, int n_classes = 0);

  // Any kind: the batch layout of data/dataset.h. Returns the mean loss over counted targets
  // (0 when there are none). train = true enables dropout (from rng) and keeps what backward needs.
  float forward(const Batch& batch, bool train, Rng* rng, float label_smoothing = 0.0f);
  // Decoder (or encoder) convenience: ids [B,T], targets [B,T] (-1 = no loss) or null.
  float forward(const int* ids, const int* targets, int B, int T, bool train, Rng* rng,
                float label_smoothing = 0.0f);
  // Gradients of the last forward's loss, ADDED into the parameters' .g. The loss is the sum over
  // its counted targets divided by denom; denom = 0 (the default) divides by loss_count(), the mean.
  // Gradient accumulation passes the count of the whole batch (train/grad_accum.h).
  void backward(int denom = 0);
  // The targets forward() would count in `batch` (y or, for a classifier, cls entries ≠ -1).
  int count_targets(const Batch& batch) const;

  // ---- incremental decoding (decoder, or the decoder of an encoder_decoder) ----
  // encoder_decoder: encode(src [B,S], src_len [B] or null) first; the decoder then attends to it.
  void encode(const int* src, const int* src_len, int B, int S);
  bool has_cache() const;             // every decoder self-attention supports a cache
  void cache_reset(int B, int capacity);
  // Appends Tn tokens ids [B,Tn] and returns their logits [B,Tn,V], equal to the matching rows of
  // the full forward over the whole prefix. No backward.
  const float* forward_cached(const int* ids, int B, int Tn);
  // Beam search: row b of every cache (and of the encoded source) becomes old row rows[b].
  void cache_reorder(const std::vector<int>& rows);
  int cache_len() const { return cache_len_; }

  // ---- how long a row may be ----
  // The longest row (or source) forward, encode and the cache accept: model.block_size until
  // set_context raises it. position_limit() is what the positions allow: block_size for a learned
  // or sinusoidal table, 0 (no limit) for rope, alibi and none, which attend by relative offsets
  // or not by position at all. set_context(T) lets the model read rows of up to T tokens
  // (evaluation on longer data, `eval --set data.max_len=...`); UserError when T exceeds the limit.
  int context() const { return context_; }
  int position_limit() const;
  void set_context(int T);

  // ---- outputs of the last forward ----
  const float* logits() const { return head_->logits(); }  // [B,T,V], or [B,n_classes]
  int loss_count() const { return loss_.count(); }         // targets counted by the last forward
  int correct_count() const { return loss_.correct(); }    // of those, argmax == target (eval forwards)
  int vocab_size() const { return V_; }
  int n_classes() const { return K_; }
  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }
  // Every attention module, with a label such as "decoder_self_L0" / "decoder_cross_L1".
  std::vector<std::pair<std::string, Attention*>> named_attention();
  std::vector<Attention*> attention_modules();

 private:
  bool seq2seq() const { return enc_ && dec_; }
  // src [B,S] -> the encoder's output mem_, its key padding src_keep_ and (bottleneck) ctx_.
  void encode_source(const int* src, const int* src_len, int B, int S, bool train, float p_drop, Rng* rng);
  SourceView source(bool cached) const;
  void keep_mask(std::vector<unsigned char>& keep, const int* len, int B, int T);

  ModelConfig cfg_;
  int V_, C_, K_;
  int context_;  // the longest row accepted (context())
  ParamStore store_;
  std::unique_ptr<Encoder> enc_;  // encoder, encoder_decoder
  std::unique_ptr<Decoder> dec_;  // decoder, encoder_decoder
  std::unique_ptr<Head> head_;
  Loss loss_;

  // the last forward
  int B_ = 0, T_ = 0, S_ = 0;
  bool train_ = false;
  std::vector<int> x_len_;
  std::vector<unsigned char> x_keep_;
  Batch ids_batch_;  // forward(ids, targets, ...) copies into it
  // the encoded source
  const float* mem_ = nullptr;  // [B,S,C]
  std::vector<unsigned char> src_keep_;
  std::vector<int> src_len_;
  std::vector<float> ctx_;  // bottleneck: mean of mem_ over the real source positions [B,C]
  // incremental decoding
  int cache_B_ = 0, cache_len_ = 0, mem_S_ = 0;
  std::vector<float> mem_cache_;  // encoded source kept for decoding (reordered by cache_reorder)
  std::vector<unsigned char> mem_keep_cache_;
  // gradient scratch
  std::vector<float> dh_, dmem_, dctx_;
};

}  // namespace attnlab
