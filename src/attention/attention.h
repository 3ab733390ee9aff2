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

// The closed sets among a spec's options, with their config names (name_of) and the reverse
// (attn_positions etc.: a UserError "<option>: expected ..., got '<name>'" for an unknown name).
enum class AttnPositions { none, rope, alibi };  // positions applied inside attention
enum class AttnScore { dot, general, concat };   // luong's score function
enum class AttnImpl { naive, flash, automatic }; // scaled_dot_product family; config name "auto"
enum class AttnDevice { cpu, cuda };             // where a tiled kernel runs
// How the linear layers start (model.init; docs/config.md):
//   gpt2           W ~ N(0, 0.02²) (0.02/√(2·n_layers) for the projections that write into the
//                  residual stream), b = 0 (Radford et al. 2019, as nanoGPT)
//   torch_default  W, b ~ U(−1/√fan_in, +1/√fan_in), fan_in = the layer's input width
//                  (PyTorch's nn.Linear.reset_parameters)
enum class InitScheme { gpt2, torch_default };
const char* name_of(AttnPositions p);
const char* name_of(AttnScore s);
const char* name_of(AttnImpl i);
const char* name_of(AttnDevice d);
AttnPositions attn_positions(const std::string& name);
AttnScore attn_score(const std::string& name);
AttnImpl attn_impl(const std::string& name);
AttnDevice attn_device(const std::string& name);

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
  int window = 0;               // sliding window w (0 = off): query position p sees key r iff
                                // p − w < r ≤ p (causal) or |p − r| < w (not causal); padded
                                // keys still take their place in the band
  AttnPositions positions = AttnPositions::none;  // positions applied inside attention
  float rope_base = 10000.0f;   // RoPE: θ_i = rope_base^(-2i/D)
  AttnScore score = AttnScore::general;  // luong's score
  int max_len = 0;              // longest sequence the slot will see (RoPE tables, cache size); 0 = unknown
  bool diff_norm = true;        // differential: headwise RMSNorm and (1 − λ_init) scaling (E7 turns it off)
  AttnImpl impl = AttnImpl::automatic;  // scaled_dot_product family: naive | flash | auto
  AttnDevice device = AttnDevice::cpu;  // where a tiled kernel runs (model.device)
  InitScheme init = InitScheme::gpt2;   // the projections' initialisation (model.init)
  float init_std = 0.02f;               // gpt2: the projections' weight std (model.init_std)
};

// Initialises a linear layer y = x Wᵀ + b with W [out, fan_in] and the optional bias b [out]
// under `scheme`; gpt2_std is the normal's standard deviation under gpt2. Draws W then b (b only
// under torch_default: under gpt2 it stays 0), so gpt2 draws exactly what it drew before the
// schemes existed.
void init_linear(Param* w, Param* b, int fan_in, InitScheme scheme, Rng& rng, float gpt2_std);

// What a variant supports, so configs are checked before a model is built.
struct AttentionInfo {
  std::string summary;          // one line for docs and errors
  int force_causal = -1;        // 1 / 0: the type fixes the mask (`causal`, `bidirectional`)
  bool gqa = true;              // n_kv_heads < n_heads
  bool window = true;           // sliding window
  bool key_padding = true;      // AttnMask.key_keep
  bool rope = true;
  bool alibi = true;
  bool dropout = true;          // dropout on attention weights
  bool cache = true;            // forward_cached (incremental decoding)
  bool scale = true;            // `scale` option is meaningful
  int head_split = 1;           // a head's width is d_model / (n_heads · head_split) (differential: 2 halves)
};

// Key/value heads of a spec: n_kv_heads, or n_heads when it is 0 (plain multi-head attention).
inline int kv_heads(const AttentionSpec& s) { return s.n_kv_heads > 0 ? s.n_kv_heads : s.n_heads; }

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

  // ---- incremental decoding (self-attention) ----
  // cache_reset(B, capacity) forgets every cached position and prepares room for `capacity`
  // positions per row. forward_cached(out, x_new, B, Tn) then processes Tn new positions
  // x_new [B,Tn,C]: their queries attend (causally, with the slot's window/positions) to every
  // cached position and to themselves, and their keys/values (or recurrent state) are appended.
  // out [B,Tn,C] equals the matching rows of forward() over the whole prefix.
  // No backward; dropout is off. The default throws: the variant has no cache.
  virtual void cache_reset(int B, int capacity);
  virtual void forward_cached(float* out, const float* x_new, int B, int Tn);
  int cache_len() const { return cache_len_; }
  // Floats held by the cache buffers now, summed (K and V for a KV cache; the state for linear
  // attention): what the cache really stores, for measurements (E8). Throws without a cache.
  size_t cache_floats();
  // Beam search: row b of the cache becomes old row rows[b] (rows.size() = cache_reset's B).
  void cache_reorder(const std::vector<int>& rows);
  // Ask the next forwards to keep their attention weights for inspection.
  void keep_weights(bool keep) { keep_weights_ = keep; }
  // Attention weights of the last forward, [B, n_heads, Tq, Tk], if kept (else empty).
  virtual std::vector<float> attention_weights() const = 0;
  const AttentionSpec& spec() const { return spec_; }

 protected:
  // Validates the spec (check_attention_spec: a module built without make_attention refuses
  // what the registry refuses, with the same message).
  explicit Attention(AttentionSpec spec);
  // The buffers that make up the cache, each [cache B, ...] row-major (cache_reorder permutes
  // them). The default throws: the variant has no cache.
  virtual std::vector<std::vector<float>*> cache_buffers();
  // The cache guards of the variants. cache_begin (in cache_reset): B and capacity must be
  // positive; records them and empties the cache. cache_check_step (in forward_cached): a reset
  // came first, for this batch, Tn > 0, and (bounded) the Tn new positions fit the capacity.
  void cache_begin(int B, int capacity);
  void cache_check_step(int B, int Tn, bool bounded = true) const;
  // A forward records its inputs and shapes for the backward (x_q / x_kv are the caller's
  // buffers and must outlive the backward).
  void save_inputs(const float* x_q, const float* x_kv, int B, int Tq, int Tk) {
    x_q_ = x_q;
    x_kv_ = x_kv;
    B_ = B;
    Tq_ = Tq;
    Tk_ = Tk;
  }
  AttentionSpec spec_;
  const int H_, Hkv_;  // query heads, key/value heads (kv_heads)
  const float* x_q_ = nullptr;
  const float* x_kv_ = nullptr;
  int B_ = 0, Tq_ = 0, Tk_ = 0;
  bool keep_weights_ = false;
  int cache_len_ = 0;  // positions in the cache (maintained by variants with a cache)
  int cache_B_ = 0, cache_cap_ = 0;  // the last cache_begin's batch and capacity (0: none yet)
};

using AttentionFactory =
    std::function<std::unique_ptr<Attention>(const AttentionSpec&, ParamStore&, Rng&)>;

struct AttentionEntry {
  AttentionFactory make;
  AttentionInfo info;
};

// Registry: name -> factory and capabilities (registry.cpp, one line per variant).
const std::map<std::string, AttentionEntry>& attention_registry();
std::vector<std::string> attention_types();
// Checks a spec against its variant's capabilities and the shapes (heads, KV heads, scale,
// window, positions). Returns "" when valid, else what is wrong, phrased for a config error:
// the first word names the offending option (e.g. "n_kv_heads: ...", "positions: ...").
std::string check_attention_spec(const AttentionSpec& spec);
// Builds the module (registers its parameters in `store`, initialises them from `rng`).
// Throws UserError for an unknown type (naming the known ones) or a failed check.
std::unique_ptr<Attention> make_attention(const AttentionSpec& spec, ParamStore& store, Rng& rng);
// check_attention_spec as a UserError "attention '<name>': <what is wrong>" (nothing if valid).
void require_valid_attention_spec(const AttentionSpec& spec);

// The numeric softmax scale a spec asks for, given the head dimension.
float attention_scale(const AttentionSpec& spec, int head_dim);

}  // namespace attnlab
