// A stack of transformer layers over rows [B·T, C]. A layer is a list of residual sublayers:
// self-attention, cross-attention (the decoder of an encoder_decoder), MLP
// (W2 gelu(W1 x + b1) + b2, GELU's tanh form or the exact one per model.activation; absent, with its layernorm, when model.mlp is false). Per sublayer f:
//   norm: pre    out = x + drop(f(LN(x)))         (GPT-2; the model adds a final LN)
//   norm: post   out = LN(x + drop(f(x)))         (Vaswani et al. 2017; no final LN)
// Initialisation (model.init, init_linear in attention/attention.h): gpt2: weights N(0, 0.02),
// biases 0, the projections that write into the residual stream (attention output, MLP W2)
// N(0, 0.02/√(2·n_layers)); torch_default: weights and biases U(±1/√fan_in). Layernorms (1, 0).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "config/config.h"
#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

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
  int width() const { return C_; }

  bool has_cache() const;
  void cache_reset(int B, int capacity);
  void cache_reorder(const std::vector<int>& rows);
  std::vector<Attention*> attention_modules();
  std::vector<Attention*> cross_modules();

 private:
  enum class Kind { self_attn, cross_attn, mlp };
  struct Sub {
    Kind kind = Kind::self_attn;
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
  bool exact_gelu_;  // model.activation: gelu (erf) instead of gelu_tanh
  std::vector<Sub> subs_;
  int B_ = 0, T_ = 0, S_ = 0;
  const float* out_ = nullptr;
  std::vector<float> dcur_, dtmp_, dbr_, dact_;  // gradient scratch
};

}  // namespace attnlab
