// The two halves of a transformer, each an embedding, a stack and (pre-LN) a final layernorm:
//
//   Encoder   h = LN(EncStack(emb(ids) + pos))               bidirectional, key padding
//   Decoder   h = LN(DecStack(emb(ids) + pos [+ c], m))      causal self-attention, and from an
//                                                            encoded source either cross-attention
//                                                            to its memory m, or (bottleneck) its
//                                                            summary c added to every input
//
// A post-LN stack ends normalised, so it has no final layernorm.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "core/param.h"
#include "core/rng.h"
#include "model/embedding.h"
#include "model/stack.h"

namespace attnlab {

// The layernorm after a pre-LN stack (parameters name.w, name.b); absent after a post-LN one.
class FinalNorm {
 public:
  FinalNorm(bool present, const std::string& name, int C, ParamStore& store);
  // x [N,C] -> the normalised rows, or x itself when absent.
  const float* forward(const float* x, int N);
  // dout [N,C] of the output (x the forward's input) -> d(x); dout itself when absent.
  const float* backward(const float* dout, const float* x, int N);

 private:
  int C_;
  Param *w_ = nullptr, *b_ = nullptr;
  std::vector<float> out_, mean_, rstd_, dx_;
};

class Encoder {
 public:
  // prefix "" (encoder-only model) or "encoder."; n_layers: this stack's depth.
  Encoder(const ModelConfig& cfg, const std::string& prefix, Embedding emb, int n_layers, ParamStore& store,
          Rng& rng);
  // ids [B,T] -> h [B,T,C]; keep [B,T] (null = every key real) masks padded keys.
  const float* forward(const int* ids, int B, int T, const unsigned char* keep, bool train, float p_drop, Rng* rng);
  // dh [B,T,C] of the last forward's output -> parameter gradients (+=).
  void backward(const float* dh);
  Stack& stack() { return stack_; }

 private:
  Embedding emb_;
  Stack stack_;
  FinalNorm norm_;
  int B_ = 0, T_ = 0;
  std::vector<float> dx_;
};

// What a decoder reads from an encoded source (all null for a decoder-only model).
struct SourceView {
  const float* mem = nullptr;           // cross-attention: memory [B,S,C]
  const unsigned char* keep = nullptr;  // and its key padding [B,S]
  int S = 0;
  const float* ctx = nullptr;           // bottleneck: the source summary [B,C]
};

class Decoder {
 public:
  // prefix "" (decoder-only model) or "decoder."; cross: a cross-attention sublayer per layer.
  Decoder(const ModelConfig& cfg, const std::string& prefix, Embedding emb, int n_layers, bool cross,
          ParamStore& store, Rng& rng);
  // ids [B,T] at positions pos0.. -> h [B,T,C]. cached: self-attention through the caches.
  const float* forward(const int* ids, int B, int T, int pos0, const SourceView& src, bool train, float p_drop,
                       Rng* rng, bool cached);
  // dh [B,T,C] -> parameter gradients (+=), dmem [B,S,C] (+=, cross-attention) and
  // dctx [B,C] (written, when the forward added a context).
  void backward(const float* dh, float* dmem, float* dctx);
  Stack& stack() { return stack_; }

 private:
  Embedding emb_;
  Stack stack_;
  FinalNorm norm_;
  int C_, B_ = 0, T_ = 0;
  bool ctx_used_ = false;
  std::vector<float> in_, dx_;  // bottleneck: x0 + context; d(stack input)
};

}  // namespace attnlab
