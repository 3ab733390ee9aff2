// The three model kinds, built from one transformer layer.
//
//   decoder           GPT-style causal LM:  x0 = emb(ids) + pos;  x = DecStack(x0);  logits = head(x)
//   encoder           BERT-style:           x = EncStack(emb(ids) + pos)  (bidirectional, key padding)
//                                           -> token head (masked tokens, labelled positions) or
//                                              classification head on a pooled vector
//   encoder_decoder   Vaswani et al. 2017:  m = EncStack(emb(src) + pos)
//                                           x = DecStack(emb(tgt) + pos, cross-attention to m)
//                                           logits = head(x)
//                     bottleneck: no cross-attention; c = mean_s m[s] is added to every decoder
//                     input, a fixed-size summary of the source (Sutskever et al. 2014).
//
// A layer is a list of residual sublayers: self-attention, cross-attention (decoder of an
// encoder_decoder), MLP (W2 gelu(W1 x + b1) + b2; absent, with its layernorm, when model.mlp is
// false). Per sublayer f:
//   norm: pre    out = x + drop(f(LN(x)))         (GPT-2; a final LN before the head)
//   norm: post   out = LN(x + drop(f(x)))         (Vaswani et al. 2017; no final LN)
//
// Initialisation (GPT-2): weights N(0, 0.02), biases 0, layernorm (1, 0); the projections that
// write into the residual stream (attention output, MLP W2) use N(0, 0.02/√(2·n_layers)).
// A decoder model's parameters keep the names and order they have always had (blocks.L.*, lnf.*),
// so its checkpoints and initial weights are unchanged; an encoder_decoder prefixes its stacks with
// "encoder." and "decoder.".
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
#include "core/rng.h"
#include "data/dataset.h"

namespace attnlab {

// A stack of transformer layers over rows [B·T, C] (the layer above).
class Stack {
 public:
  // prefix "" (decoder-only / encoder-only: blocks.L.*) or "encoder." / "decoder.";
  // self_slot / cross_slot are config slot names (cross_slot "" = no cross-attention).
  Stack(const ModelConfig& cfg, const std::string& prefix, const std::string& self_slot,
        const std::string& cross_slot, int n_layers, ParamStore& store, Rng& rng);

  // x [B,T,C] -> output() [B,T,C]. self_keep [B,T] (null = all keys valid);
  // mem [B,S,C] and mem_keep [B,S] for cross-attention. cached: self-attention through the
  // layers' caches (incremental decoding, no backward).
  void forward(const float* x, int B, int T, const unsigned char* self_keep, const float* mem, int S,
               const unsigned char* mem_keep, bool train, float p_drop, Rng* rng, bool cached);
  // dout [B,T,C] of output() -> dx [B,T,C] (+=) and dmem [B,S,C] (+=, may be null without cross).
  void backward(float* dx, float* dmem, const float* dout);
  const float* output() const { return out_; }

  bool has_cache() const;
  void cache_reset(int B, int capacity);
  void cache_reorder(const std::vector<int>& rows);
  std::vector<Attention*> attention_modules();
  std::vector<Attention*> cross_modules();

 private:
  enum class Kind { self_attn, cross_attn, mlp };
  struct Sub {
    Kind kind;
    Param *ln_w = nullptr, *ln_b = nullptr;
    std::unique_ptr<Attention> attn;                     // self_attn / cross_attn
    Param *fc_w = nullptr, *fc_b = nullptr, *proj_w = nullptr, *proj_b = nullptr;  // mlp
    const float* in = nullptr;                           // the sublayer's input (previous output)
    std::vector<float> nrm, mean, rstd, f, mask, sum;    // [N,C] (mean, rstd [N])
    std::vector<float> fc, act;                          // mlp hidden [N,F]
  };
  void resize(int N, bool drop);
  void run_f(Sub& s, const float* a, int B, int T, const unsigned char* self_keep, const float* mem, int S,
             const unsigned char* mem_keep, bool train, Rng* rng, bool cached);
  void back_f(Sub& s, const float* a, float* da, float* dmem, const float* dbranch);

  int C_, F_;
  bool post_;
  std::vector<Sub> subs_;
  int B_ = 0, T_ = 0, S_ = 0;
  const float* out_ = nullptr;
  std::vector<float> dcur_, dtmp_, dbr_, dact_;  // gradient scratch
};

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
  // Gradients of the last forward's mean loss, ADDED into the parameters' .g.
  void backward();

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

  // ---- outputs of the last forward ----
  const float* logits() const { return logits_.data(); }  // [B,T,V], or [B,n_classes]
  int loss_count() const { return loss_count_; }         // targets counted by the last forward
  int correct_count() const { return correct_; }         // of those, argmax == target (eval forwards)
  int vocab_size() const { return V_; }
  int n_classes() const { return K_; }
  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }
  // Every attention module, with a label such as "decoder_self_L0" / "decoder_cross_L1".
  std::vector<std::pair<std::string, Attention*>> named_attention();
  std::vector<Attention*> attention_modules();

 private:
  struct Embed {
    Param* tok = nullptr;     // [V,C]
    Param* pos = nullptr;     // [block_size,C] (learned)
    std::vector<int> ids;
    std::vector<float> x0, mask;  // [N,C]
  };
  void embed(Embed& e, const int* ids, int B, int T, int pos0, float p_drop, Rng* rng);
  void embed_backward(Embed& e, const float* dx0, int B, int T);
  void encoder_forward(const int* src, const int* src_len, int B, int S, bool train, float p_drop, Rng* rng);
  void decoder_stack_forward(int B, int T, const unsigned char* self_keep, bool train, float p_drop, Rng* rng,
                             bool cached);
  float token_loss(const int* targets, int N, float smoothing, bool train);
  void head_forward(const float* x, int N);
  void keep_mask(std::vector<unsigned char>& keep, const int* len, int B, int T);

  ModelConfig cfg_;
  std::string kind_;
  int V_, C_, K_;
  bool post_;
  ParamStore store_;
  Embed dec_emb_, enc_emb_;  // decoder-side (decoder, encoder-only use this one) and source side
  std::vector<float> sinusoid_;  // [block_size, C] when positions = sinusoidal
  float emb_scale_ = 1.0f;       // token embeddings × √C with sinusoidal positions (Vaswani 3.4)
  std::unique_ptr<Stack> enc_, dec_;  // encoder-only: enc_; decoder-only: dec_; both for encoder_decoder
  Param *enc_lnf_w_ = nullptr, *enc_lnf_b_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr;
  Param *head_w_ = nullptr, *cls_w_ = nullptr, *cls_b_ = nullptr;

  // activations
  int B_ = 0, T_ = 0, S_ = 0;
  bool train_ = false, classify_ = false;
  float smoothing_ = 0.0f;
  std::vector<unsigned char> x_keep_, src_keep_;
  std::vector<int> x_len_, src_len_, targets_;
  std::vector<float> enc_lnf_, enc_lnf_mean_, enc_lnf_rstd_;  // encoder output (pre-LN: after the final LN)
  const float* mem_ = nullptr;                                 // encoder output fed to the decoder [B,S,C]
  std::vector<float> ctx_, dec_in_;                            // bottleneck: context [B,C], x0 + context
  std::vector<float> lnf_, lnf_mean_, lnf_rstd_, pooled_, logits_, probs_, losses_;
  int loss_count_ = 0, correct_ = 0;
  int cache_B_ = 0, cache_len_ = 0;
  Batch ids_batch_;  // forward(ids, targets, ...) copies into it
  std::vector<float> mem_cache_;  // encoded source for decoding (reordered by cache_reorder)
  std::vector<unsigned char> mem_keep_cache_;
  int mem_S_ = 0;
  // gradient scratch
  std::vector<float> dx_, dln_, dmem_, dlogits_, dpooled_, emb_scratch_, emb_scaled_;
};

}  // namespace attnlab
