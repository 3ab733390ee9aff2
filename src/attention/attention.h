// The attention plug: one interface every variant implements, and a registry
// that maps the config name (`attention.type`) to a factory.
//
// A module is a whole multi-head attention block: input projections, the
// attention core, and the output projection. It reads queries from x_q and
// keys/values from x_kv (the same buffer for self-attention, the encoder
// output for cross-attention) and owns the activations its backward needs.
//
//   forward : x_q [B,Tq,C], x_kv [B,Tk,C]  ->  out [B,Tq,C]
//   backward: dout [B,Tq,C]  ->  dx_q += ..., dx_kv += ...  (and parameter grads +=)
//
// For self-attention the caller passes the same buffer as dx_q and dx_kv;
// both contributions are added, which is what the chain rule asks for.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/param.h"
#include "core/rng.h"

namespace attnlab {

// Resolved options of one attention slot (built by the model from the config).
struct AttentionSpec {
  std::string type = "scaled_dot_product";  // registry name
  std::string name = "attn";                // parameter name prefix, e.g. "blocks.0.attn"
  int d_model = 0;
  int n_heads = 1;
  int n_kv_heads = 0;           // 0 = n_heads (MHA); fewer = GQA; 1 = MQA
  bool causal = false;          // the slot's mask (the model decides; `causal`/`bidirectional` types force it)
  std::string scale = "inv_sqrt_dk";  // inv_sqrt_dk | none | a number
  float dropout = 0.0f;         // on the attention weights
  bool bias = true;             // biases on the projections
  int layer_index = 0;          // from 0 (some variants depend on depth)
  int n_layers = 1;             // total layers (GPT-2 scaled init of the output projection)
};

// Masks that are decided per batch rather than per slot.
struct AttnMask {
  const unsigned char* key_keep = nullptr;  // [B,Tk], 1 = attend, 0 = padding; null = all keys valid
};

class Attention {
 public:
  virtual ~Attention() = default;
  virtual void forward(float* out, const float* x_q, const float* x_kv, int B, int Tq, int Tk,
                       const AttnMask& mask, bool train, Rng* rng) = 0;
  virtual void backward(float* dx_q, float* dx_kv, const float* dout) = 0;
  // Ask the next forwards to keep their attention weights for inspection.
  void keep_weights(bool keep) { keep_weights_ = keep; }
  // Attention weights of the last forward, [B, n_heads, Tq, Tk], if kept (else empty).
  virtual std::vector<float> attention_weights() const = 0;
  const AttentionSpec& spec() const { return spec_; }

 protected:
  explicit Attention(AttentionSpec spec) : spec_(std::move(spec)) {}
  AttentionSpec spec_;
  bool keep_weights_ = false;
};

using AttentionFactory =
    std::function<std::unique_ptr<Attention>(const AttentionSpec&, ParamStore&, Rng&)>;

// Registry: name -> factory. Variants register themselves in registry.cpp.
const std::map<std::string, AttentionFactory>& attention_registry();
std::vector<std::string> attention_types();
// Builds the module (registers its parameters in `store`, initialises them from `rng`).
// Throws UserError for an unknown type, naming the known ones.
std::unique_ptr<Attention> make_attention(const AttentionSpec& spec, ParamStore& store, Rng& rng);

// The numeric softmax scale a spec asks for, given the head dimension.
float attention_scale(const AttentionSpec& spec, int head_dim);

}  // namespace attnlab
