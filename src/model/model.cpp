#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/permute.h"
#include "model/init.h"

namespace attnlab {

Model::Model(const ModelConfig& cfg, int vocab_size, uint64_t seed, int n_classes)
    : cfg_(cfg),
      V_(vocab_size),
      C_(cfg.d_model),
      K_(cfg.kind == ModelConfig::Kind::encoder ? n_classes : 0),
      context_(cfg.block_size) {
  if (V_ < 1) user_error("model: empty vocabulary");
  using Kind = ModelConfig::Kind;
  Rng rng(seed);
  const int C = C_;
  const bool two_stacks = cfg_.kind == Kind::encoder_decoder;
  const bool learned = cfg_.positions == ModelConfig::Positions::learned;
  auto table = [&](const std::string& name, int rows) {
    Param* p = store_.add(name, {rows, C}, ParamKind::embedding);
    fill_normal(p, rng, 0.02f);
    return p;
  };
  // The embedding tables come first, in this order (initial weights and checkpoints depend on it).
  Param* tok = table("tok_emb", V_);
  Param* src_tok = !two_stacks ? nullptr : cfg_.share_embeddings ? tok : table("src_emb", V_);
  Param* src_pos = two_stacks && learned ? table("encoder.pos_emb", cfg_.block_size) : nullptr;
  Param* pos = learned ? table(two_stacks ? "decoder.pos_emb" : "pos_emb", cfg_.block_size) : nullptr;
  if (cfg_.kind == Kind::decoder) {
    dec_ = std::make_unique<Decoder>(cfg_, "", Embedding(cfg_, V_, tok, pos), cfg_.n_layers, false, store_, rng);
  } else if (cfg_.kind == Kind::encoder) {
    enc_ = std::make_unique<Encoder>(cfg_, "", Embedding(cfg_, V_, tok, pos), cfg_.n_layers, store_, rng);
  } else {
    const int enc_layers = cfg_.n_encoder_layers > 0 ? cfg_.n_encoder_layers : cfg_.n_layers;
    enc_ = std::make_unique<Encoder>(cfg_, "encoder.", Embedding(cfg_, V_, src_tok, src_pos), enc_layers, store_,
                                     rng);
    dec_ = std::make_unique<Decoder>(cfg_, "decoder.", Embedding(cfg_, V_, tok, pos), cfg_.n_layers,
                                     !cfg_.bottleneck, store_, rng);
  }
  const InitScheme init = cfg_.init == ModelConfig::Init::torch_default ? InitScheme::torch_default : InitScheme::gpt2;
  if (K_ > 0) {
    head_ = std::make_unique<ClassifierHead>(cfg_.pool, K_, C, init, float(cfg_.init_std), store_, rng);
  } else {
    // an untied head is a linear layer (init_linear); a tied one reuses the embedding, and its
    // bias alone (model.head_bias) starts under the scheme
    Param* w = cfg_.tie_embeddings ? tok : store_.add("head.w", {V_, C}, ParamKind::weight);
    Param* b = cfg_.head_bias ? store_.add("head.b", {V_}, ParamKind::bias) : nullptr;
    if (!cfg_.tie_embeddings) {
      init_linear(w, b, C, init, rng, float(cfg_.init_std));
    } else if (b && init == InitScheme::torch_default) {
      const float bound = 1.0f / std::sqrt(float(C));
      for (auto& x : b->w) x = bound * (2.0f * rng.uniform() - 1.0f);
    }
    head_ = std::make_unique<LMHead>(w, b, V_, C);
  }
}

std::vector<std::pair<std::string, Attention*>> Model::named_attention() {
  std::vector<std::pair<std::string, Attention*>> out;
  auto add = [&](const std::string& label, const std::vector<Attention*>& mods) {
    for (size_t l = 0; l < mods.size(); l++) out.push_back({label + "_L" + std::to_string(l), mods[l]});
  };
  if (enc_) add("encoder_self", enc_->stack().attention_modules());
  if (dec_) {
    add("decoder_self", dec_->stack().attention_modules());
    add("decoder_cross", dec_->stack().cross_modules());
  }
  return out;
}

std::vector<Attention*> Model::attention_modules() {
  std::vector<Attention*> out;
  for (auto& [name, a] : named_attention()) out.push_back(a);
  return out;
}

int Model::position_limit() const {
  using P = ModelConfig::Positions;
  return cfg_.positions == P::learned || cfg_.positions == P::sinusoidal ? cfg_.block_size : 0;
}

void Model::set_context(int T) {
  if (T < 1) user_error("model context must be at least 1 token, got {}", T);
  const int limit = position_limit();
  if (limit > 0 && T > limit)
    user_error("rows of {} tokens exceed this model's {} position table of {} (model.block_size); rope, alibi and "
               "none have no such limit", T, option_name(cfg_.positions), limit);
  context_ = std::max(T, cfg_.block_size);
}

// the error for a row longer than context()
[[noreturn]] static void too_long(const char* what, int T, int context, int block_size) {
  if (context == block_size) user_error("{} {} exceeds model.block_size {}", what, T, block_size);
  user_error("{} {} exceeds the model's context {} (model.block_size {}, raised for longer data)", what, T, context,
             block_size);
}

void Model::keep_mask(std::vector<unsigned char>& keep, const int* len, int B, int T) {
  keep.resize(size_t(B) * T);
  for (int b = 0; b < B; b++) {
    if (len[b] < 0 || len[b] > T) user_error("row {}: length {} outside 0..{}", b, len[b], T);
    for (int t = 0; t < T; t++) keep[size_t(b) * T + t] = t < len[b];
  }
}

void Model::encode_source(const int* src, const int* src_len, int B, int S, bool train, float p_drop, Rng* rng) {
  if (S > context_) too_long("source length", S, context_, cfg_.block_size);
  if (src_len) keep_mask(src_keep_, src_len, B, S);
  else src_keep_.assign(size_t(B) * S, 1);
  if (src_len) src_len_.assign(src_len, src_len + B);
  else src_len_.assign(B, S);
  mem_ = enc_->forward(src, B, S, src_keep_.data(), train, p_drop, rng);
  if (cfg_.bottleneck) {
    ctx_.resize(size_t(B) * C_);
    mean_pool(ctx_.data(), mem_, src_len_.data(), B, S, C_);
  }
}

SourceView Model::source(bool cached) const {
  SourceView v;
  if (!seq2seq()) return v;
  if (cfg_.bottleneck) {
    v.ctx = ctx_.data();
  } else {
    v.mem = mem_;
    v.keep = cached ? mem_keep_cache_.data() : src_keep_.data();
    v.S = S_;
  }
  return v;
}

float Model::forward(const int* ids, const int* targets, int B, int T, bool train, Rng* rng, float label_smoothing) {
  if (seq2seq()) user_error("an encoder_decoder model needs a source: use forward(Batch)");
  Batch& b = ids_batch_;  // reused: no allocation once the shape has been seen
  b.B = B, b.T = T;
  b.x.assign(ids, ids + size_t(B) * T);
  if (targets) b.y.assign(targets, targets + size_t(B) * T);
  else b.y.clear();
  return forward(b, train, rng, label_smoothing);
}

// encoder_decoder: src -> Encoder -> memory;  x -> Decoder(memory) -> head -> loss
// decoder:                                    x -> Decoder -> head -> loss
// encoder:                                    x -> Encoder -> head -> loss
float Model::forward(const Batch& batch, bool train, Rng* rng, float label_smoothing) {
  const int B = batch.B, T = batch.T, N = B * T;
  if (T > context_) too_long("sequence length", T, context_, cfg_.block_size);
  if (int(batch.x.size()) != N) user_error("batch: x has {} ids, expected B·T = {}", batch.x.size(), N);
  B_ = B, T_ = T, train_ = train;
  const float p_drop = train ? float(cfg_.dropout) : 0.0f;
  x_len_ = batch.x_len.empty() ? std::vector<int>(B, T) : batch.x_len;
  loss_.clear();

  const float* h;
  if (dec_) {
    if (enc_) {
      if (batch.S < 1 || int(batch.src.size()) != B * batch.S)
        user_error("an encoder_decoder batch needs a source: src [B,S] with S ≥ 1");
      S_ = batch.S;
      encode_source(batch.src.data(), batch.src_len.empty() ? nullptr : batch.src_len.data(), B, batch.S, train,
                    p_drop, rng);
    }
    h = dec_->forward(batch.x.data(), B, T, 0, source(false), train, p_drop, rng, false);
  } else {
    const unsigned char* keep = nullptr;
    if (!batch.x_len.empty()) {
      keep_mask(x_keep_, batch.x_len.data(), B, T);
      keep = x_keep_.data();
    }
    h = enc_->forward(batch.x.data(), B, T, keep, train, p_drop, rng);
  }
  const float* logits = head_->forward(h, B, T, x_len_.data());

  if (K_ > 0) {
    if (batch.cls.empty()) return 0.0f;
    if (int(batch.cls.size()) != B) user_error("batch: {} class targets for {} rows", batch.cls.size(), B);
    return loss_.forward(logits, batch.cls.data(), B, K_, label_smoothing, train, "classes");
  }
  if (batch.y.empty()) return 0.0f;
  if (int(batch.y.size()) != N) user_error("batch: y has {} targets, expected B·T = {}", batch.y.size(), N);
  return loss_.forward(logits, batch.y.data(), N, V_, label_smoothing, train, "vocabulary");
}

int Model::count_targets(const Batch& batch) const {
  const std::vector<int>& t = K_ > 0 ? batch.cls : batch.y;
  return int(std::count_if(t.begin(), t.end(), [](int v) { return v != -1; }));
}

// The forward in reverse: loss -> head -> Decoder or Encoder -> (encoder_decoder) the encoder,
// which receives d(memory) from cross-attention or, with the bottleneck, through the mean pooling.
void Model::backward(int denom) {
  ATTNLAB_CHECK(train_);
  if (loss_.count() == 0) return;
  const int B = B_, T = T_, S = S_, C = C_;
  const float* dlogits = loss_.backward(denom);
  zero(dh_, size_t(B) * T * C);
  head_->backward(dh_.data(), dlogits);
  if (!dec_) {
    enc_->backward(dh_.data());
    return;
  }
  if (!enc_) {
    dec_->backward(dh_.data(), nullptr, nullptr);
    return;
  }
  zero(dmem_, size_t(B) * S * C);
  if (cfg_.bottleneck) {
    dctx_.resize(size_t(B) * C);
    dec_->backward(dh_.data(), nullptr, dctx_.data());
    mean_pool_backward(dmem_.data(), dctx_.data(), src_len_.data(), B, S, C);
  } else {
    dec_->backward(dh_.data(), dmem_.data(), nullptr);
  }
  enc_->backward(dmem_.data());
}

// ---------------------------------------------------------------- incremental decoding

void Model::encode(const int* src, const int* src_len, int B, int S) {
  if (!seq2seq()) user_error("encode: only an encoder_decoder model has a source");
  S_ = S;
  encode_source(src, src_len, B, S, false, 0.0f, nullptr);
  mem_cache_.assign(mem_, mem_ + size_t(B) * S * C_);
  mem_keep_cache_ = src_keep_;
  mem_S_ = S;
}

bool Model::has_cache() const { return dec_ && dec_->stack().has_cache(); }

void Model::cache_reset(int B, int capacity) {
  if (!dec_) user_error("incremental decoding needs a decoder (model.kind decoder or encoder_decoder)");
  if (capacity > context_) too_long("cache capacity", capacity, context_, cfg_.block_size);
  if (seq2seq() && int(mem_keep_cache_.size()) != B * mem_S_)
    user_error("cache_reset: encode() a source batch of {} rows first", B);
  dec_->stack().cache_reset(B, capacity);
  cache_B_ = B;
  cache_len_ = 0;
}

const float* Model::forward_cached(const int* ids, int B, int Tn) {
  if (B != cache_B_) user_error("forward_cached: batch {} differs from cache_reset's {}", B, cache_B_);
  if (cache_len_ + Tn > context_) too_long("sequence length", cache_len_ + Tn, context_, cfg_.block_size);
  train_ = false;  // no backward through the cached path
  B_ = B, T_ = Tn;
  if (seq2seq()) {
    mem_ = mem_cache_.data();
    S_ = mem_S_;
  }
  const float* h = dec_->forward(ids, B, Tn, cache_len_, source(true), false, 0.0f, nullptr, true);
  head_->forward(h, B, Tn, nullptr);
  cache_len_ += Tn;
  return head_->logits();
}

void Model::cache_reorder(const std::vector<int>& rows) {
  if (int(rows.size()) != cache_B_) user_error("cache_reorder: {} rows for a cache of {}", rows.size(), cache_B_);
  for (int r : rows)
    if (r < 0 || r >= cache_B_) user_error("cache_reorder: row {} outside 0..{}", r, cache_B_ - 1);
  dec_->stack().cache_reorder(rows);
  if (seq2seq()) {
    permute_rows(mem_cache_, rows);
    permute_rows(mem_keep_cache_, rows);
    permute_rows(src_len_, rows);
    if (cfg_.bottleneck) permute_rows(ctx_, rows);
  }
}

}  // namespace attnlab
