#include "model/coders.h"

#include <utility>

#include "model/init.h"
#include "ops/ops.h"

namespace attnlab {

FinalNorm::FinalNorm(bool present, const std::string& name, int C, ParamStore& store) : C_(C) {
  if (!present) return;
  w_ = store.add(name + ".w", {C}, ParamKind::norm);
  b_ = store.add(name + ".b", {C}, ParamKind::norm);
  fill_const(w_, 1.0f);
}

const float* FinalNorm::forward(const float* x, int N) {
  if (!w_) return x;
  out_.resize(size_t(N) * C_);
  mean_.resize(N);
  rstd_.resize(N);
  layernorm_forward(out_.data(), mean_.data(), rstd_.data(), x, w_->w.data(), b_->w.data(), N, C_);
  return out_.data();
}

const float* FinalNorm::backward(const float* dout, const float* x, int N) {
  if (!w_) return dout;
  zero(dx_, size_t(N) * C_);
  layernorm_backward(dx_.data(), w_->g.data(), b_->g.data(), dout, x, w_->w.data(), mean_.data(), rstd_.data(), N,
                     C_);
  return dx_.data();
}

// ---------------------------------------------------------------- Encoder

Encoder::Encoder(const ModelConfig& cfg, const std::string& prefix, Embedding emb, int n_layers, ParamStore& store,
                 Rng& rng)
    : emb_(std::move(emb)),
      stack_(cfg, prefix, "model.encoder.self_attention", "", n_layers, store, rng),
      norm_(cfg.norm == ModelConfig::Norm::pre, prefix + "lnf", cfg.d_model, store) {}

const float* Encoder::forward(const int* ids, int B, int T, const unsigned char* keep, bool train, float p_drop,
                              Rng* rng) {
  B_ = B, T_ = T;
  emb_.forward(ids, B, T, 0, p_drop, rng);
  stack_.forward(emb_.output(), B, T, keep, nullptr, 0, nullptr, train, p_drop, rng, false);
  return norm_.forward(stack_.output(), B * T);
}

void Encoder::backward(const float* dh) {
  const int N = B_ * T_;
  const float* dout = norm_.backward(dh, stack_.output(), N);
  zero(dx_, size_t(N) * stack_.width());
  stack_.backward(dx_.data(), nullptr, dout);
  emb_.backward(dx_.data(), B_, T_);
}

// ---------------------------------------------------------------- Decoder

Decoder::Decoder(const ModelConfig& cfg, const std::string& prefix, Embedding emb, int n_layers, bool cross,
                 ParamStore& store, Rng& rng)
    : emb_(std::move(emb)),
      stack_(cfg, prefix, "model.decoder.self_attention", cross ? "model.decoder.cross_attention" : "", n_layers,
             store, rng),
      norm_(cfg.norm == ModelConfig::Norm::pre, prefix + "lnf", cfg.d_model, store),
      C_(cfg.d_model) {}

const float* Decoder::forward(const int* ids, int B, int T, int pos0, const SourceView& src, bool train,
                              float p_drop, Rng* rng, bool cached) {
  const int C = C_;
  B_ = B, T_ = T;
  emb_.forward(ids, B, T, pos0, p_drop, rng);
  const float* in = emb_.output();
  ctx_used_ = src.ctx != nullptr;
  if (ctx_used_) {
    // every input gets the source summary: x0[b,t] + c[b]
    in_.resize(size_t(B) * T * C);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++)
          in_[(size_t(b) * T + t) * C + j] = in[(size_t(b) * T + t) * C + j] + src.ctx[size_t(b) * C + j];
    in = in_.data();
  }
  stack_.forward(in, B, T, nullptr, src.mem, src.S, src.keep, train, p_drop, rng, cached);
  return norm_.forward(stack_.output(), B * T);
}

void Decoder::backward(const float* dh, float* dmem, float* dctx) {
  const int B = B_, T = T_, N = B * T, C = C_;
  const float* dout = norm_.backward(dh, stack_.output(), N);
  zero(dx_, size_t(N) * C);
  stack_.backward(dx_.data(), dmem, dout);
  if (ctx_used_) {
    // x_in[b,t] = x0[b,t] + c[b]: dc[b] = Σ_t dx_in[b,t]
    for (int b = 0; b < B; b++) {
      float* dc = dctx + size_t(b) * C;
      std::fill(dc, dc + C, 0.0f);
      for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++) dc[j] += dx_[(size_t(b) * T + t) * C + j];
    }
  }
  emb_.backward(dx_.data(), B, T);
}

}  // namespace attnlab
