#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/slots.h"
#include "ops/ops.h"

namespace attnlab {

namespace {
void fill_normal(Param* p, Rng& rng, float std) {
  for (auto& x : p->w) x = std * rng.normal();
}
void fill_const(Param* p, float v) { std::fill(p->w.begin(), p->w.end(), v); }
const float* w_or_null(const Param* p) { return p ? p->w.data() : nullptr; }
float* g_or_null(Param* p) { return p ? p->g.data() : nullptr; }
}  // namespace

DecoderModel::DecoderModel(const ModelConfig& cfg, int vocab_size, uint64_t seed)
    : cfg_(cfg), V_(vocab_size), C_(cfg.d_model), F_(cfg.d_ff > 0 ? cfg.d_ff : 4 * cfg.d_model),
      L_(cfg.n_layers) {
  if (V_ < 1) user_error("model: empty vocabulary");
  Rng rng(seed);
  const int C = C_, F = F_;
  const float resid_std = 0.02f / std::sqrt(2.0f * float(L_));
  tok_emb_ = store_.add("tok_emb", {V_, C}, ParamKind::embedding);
  fill_normal(tok_emb_, rng, 0.02f);
  if (cfg_.positions == "learned") {
    pos_emb_ = store_.add("pos_emb", {cfg_.block_size, C}, ParamKind::embedding);
    fill_normal(pos_emb_, rng, 0.02f);
  } else if (cfg_.positions == "sinusoidal") {
    // PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...)   (Vaswani 2017, 3.5)
    sinusoid_.resize(size_t(cfg_.block_size) * C);
    for (int t = 0; t < cfg_.block_size; t++)
      for (int i = 0; i < C; i++) {
        const double freq = std::pow(10000.0, -double(i - i % 2) / C);
        sinusoid_[size_t(t) * C + i] = float(i % 2 == 0 ? std::sin(t * freq) : std::cos(t * freq));
      }
  } else if (cfg_.positions != "none" && cfg_.positions != "rope" && cfg_.positions != "alibi") {
    user_error("model.positions: '{}' is not supported by the decoder", cfg_.positions);
  }
  blocks_.resize(L_);
  for (int l = 0; l < L_; l++) {
    Block& b = blocks_[l];
    const std::string p = "blocks." + std::to_string(l);
    b.ln1_w = store_.add(p + ".ln1.w", {C}, ParamKind::norm);
    b.ln1_b = store_.add(p + ".ln1.b", {C}, ParamKind::norm);
    fill_const(b.ln1_w, 1.0f);
    AttentionSpec spec = slot_spec(cfg_, "model.decoder.self_attention", l);
    spec.name = p + ".attn";
    b.attn = make_attention(spec, store_, rng);
    b.ln2_w = store_.add(p + ".ln2.w", {C}, ParamKind::norm);
    b.ln2_b = store_.add(p + ".ln2.b", {C}, ParamKind::norm);
    fill_const(b.ln2_w, 1.0f);
    b.fc_w = store_.add(p + ".mlp.fc.w", {F, C}, ParamKind::weight);
    fill_normal(b.fc_w, rng, 0.02f);
    b.fc_b = cfg_.bias ? store_.add(p + ".mlp.fc.b", {F}, ParamKind::bias) : nullptr;
    b.proj_w = store_.add(p + ".mlp.proj.w", {C, F}, ParamKind::weight);
    fill_normal(b.proj_w, rng, resid_std);
    b.proj_b = cfg_.bias ? store_.add(p + ".mlp.proj.b", {C}, ParamKind::bias) : nullptr;
  }
  lnf_w_ = store_.add("lnf.w", {C}, ParamKind::norm);
  lnf_b_ = store_.add("lnf.b", {C}, ParamKind::norm);
  fill_const(lnf_w_, 1.0f);
  if (cfg_.tie_embeddings) {
    head_w_ = tok_emb_;
  } else {
    head_w_ = store_.add("head.w", {V_, C}, ParamKind::weight);
    fill_normal(head_w_, rng, 0.02f);
  }
}

std::vector<Attention*> DecoderModel::attention_modules() {
  std::vector<Attention*> out;
  for (auto& b : blocks_) out.push_back(b.attn.get());
  return out;
}

void DecoderModel::resize(int B, int T) {
  const size_t N = size_t(B) * T, NC = N * C_, NF = N * F_;
  const bool drop = cfg_.dropout > 0.0;
  ids_.resize(N);
  targets_.resize(N);
  x0_.resize(NC);
  if (drop) emb_mask_.resize(NC);
  for (auto& b : blocks_) {
    for (auto* v : {&b.ln1, &b.attn_out, &b.res1, &b.ln2, &b.proj, &b.out}) v->resize(NC);
    for (auto* v : {&b.ln1_mean, &b.ln1_rstd, &b.ln2_mean, &b.ln2_rstd}) v->resize(N);
    b.fc.resize(NF);
    b.act.resize(NF);
    if (drop) {
      b.attn_mask.resize(NC);
      b.proj_mask.resize(NC);
    }
  }
  lnf_.resize(NC);
  lnf_mean_.resize(N);
  lnf_rstd_.resize(N);
  logits_.resize(N * V_);
  probs_.resize(N * V_);
  losses_.resize(N);
}

void DecoderModel::embed(const int* ids, int B, int T, int pos0, float p_drop, Rng* rng) {
  const int N = B * T, C = C_, V = V_;
  for (int i = 0; i < N; i++) {
    if (ids[i] < 0 || ids[i] >= V) user_error("token id {} outside the vocabulary (size {})", ids[i], V);
    ids_[i] = ids[i];
  }
  embedding_forward(x0_.data(), ids_.data(), tok_emb_->w.data(), N, C);
  const float* pos = pos_emb_ ? pos_emb_->w.data() : (sinusoid_.empty() ? nullptr : sinusoid_.data());
  if (pos) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* pr = pos + size_t(pos0 + n % T) * C;
      float* xr = x0_.data() + size_t(n) * C;
      for (int c = 0; c < C; c++) xr[c] += pr[c];
    }
  }
  if (p_drop > 0.0f) dropout_forward(x0_.data(), emb_mask_.data(), x0_.data(), size_t(N) * C, p_drop, *rng);
}

// Runs every block over the N = B·T rows in x0_, then the final layernorm and the head.
// cached: attention goes through forward_cached (incremental decoding) instead of forward.
void DecoderModel::blocks_and_head(int B, int T, bool train, float p_drop, Rng* rng, bool cached) {
  const int N = B * T, C = C_, F = F_, V = V_;
  const size_t NC = size_t(N) * C;
  const float* x = x0_.data();
  for (auto& b : blocks_) {
    layernorm_forward(b.ln1.data(), b.ln1_mean.data(), b.ln1_rstd.data(), x, b.ln1_w->w.data(),
                      b.ln1_b->w.data(), N, C);
    if (cached) b.attn->forward_cached(b.attn_out.data(), b.ln1.data(), B, T);
    else b.attn->forward(b.attn_out.data(), b.ln1.data(), b.ln1.data(), B, T, T, AttnMask{}, train, rng);
    if (p_drop > 0.0f)
      dropout_forward(b.attn_out.data(), b.attn_mask.data(), b.attn_out.data(), NC, p_drop, *rng);
    residual_forward(b.res1.data(), x, b.attn_out.data(), NC);
    layernorm_forward(b.ln2.data(), b.ln2_mean.data(), b.ln2_rstd.data(), b.res1.data(), b.ln2_w->w.data(),
                      b.ln2_b->w.data(), N, C);
    linear_forward(b.fc.data(), b.ln2.data(), b.fc_w->w.data(), w_or_null(b.fc_b), N, C, F);
    gelu_forward(b.act.data(), b.fc.data(), size_t(N) * F);
    linear_forward(b.proj.data(), b.act.data(), b.proj_w->w.data(), w_or_null(b.proj_b), N, F, C);
    if (p_drop > 0.0f) dropout_forward(b.proj.data(), b.proj_mask.data(), b.proj.data(), NC, p_drop, *rng);
    residual_forward(b.out.data(), b.res1.data(), b.proj.data(), NC);
    x = b.out.data();
  }
  layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), x, lnf_w_->w.data(), lnf_b_->w.data(),
                    N, C);
  linear_forward(logits_.data(), lnf_.data(), head_w_->w.data(), nullptr, N, C, V);
}

float DecoderModel::forward(const int* ids, const int* targets, int B, int T, bool train, Rng* rng,
                            float label_smoothing) {
  if (T > cfg_.block_size)
    user_error("sequence length {} exceeds model.block_size {}", T, cfg_.block_size);
  const int N = B * T, V = V_;
  resize(B, T);
  B_ = B;
  T_ = T;
  train_ = train;
  smoothing_ = label_smoothing;
  const float p_drop = train ? float(cfg_.dropout) : 0.0f;
  embed(ids, B, T, 0, p_drop, rng);
  blocks_and_head(B, T, train, p_drop, rng, false);

  loss_count_ = 0;
  if (!targets) return 0.0f;
  for (int i = 0; i < N; i++) {
    if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= V))
      user_error("target id {} outside the vocabulary (size {})", targets[i], V);
    targets_[i] = targets[i];
  }
  return cross_entropy_forward(probs_.data(), losses_.data(), logits_.data(), targets_.data(), N, V, -1,
                               label_smoothing, &loss_count_);
}

bool DecoderModel::has_cache() const {
  for (const auto& b : blocks_)
    if (!attention_registry().at(b.attn->spec().type).info.cache) return false;
  return true;
}

void DecoderModel::cache_reset(int B, int capacity) {
  if (capacity > cfg_.block_size)
    user_error("cache capacity {} exceeds model.block_size {}", capacity, cfg_.block_size);
  for (auto& b : blocks_) b.attn->cache_reset(B, capacity);
  cache_B_ = B;
  cache_len_ = 0;
}

const float* DecoderModel::forward_cached(const int* ids, int B, int Tn) {
  if (B != cache_B_) user_error("forward_cached: batch {} differs from cache_reset's {}", B, cache_B_);
  if (cache_len_ + Tn > cfg_.block_size)
    user_error("sequence length {} exceeds model.block_size {}", cache_len_ + Tn, cfg_.block_size);
  resize(B, Tn);
  train_ = false;  // no backward through the cached path
  embed(ids, B, Tn, cache_len_, 0.0f, nullptr);
  blocks_and_head(B, Tn, false, 0.0f, nullptr, true);
  cache_len_ += Tn;
  return logits_.data();
}

void DecoderModel::backward() {
  const int B = B_, T = T_, N = B * T, C = C_, F = F_, V = V_;
  const size_t NC = size_t(N) * C;
  ATTNLAB_CHECK(train_);
  const bool drop = cfg_.dropout > 0.0;
  dlogits_.assign(size_t(N) * V, 0.0f);
  dx_.assign(NC, 0.0f);
  dln_.resize(NC);
  dbranch_.resize(NC);
  dact_.resize(size_t(N) * F);
  dfc_.resize(size_t(N) * F);
  if (loss_count_ == 0) return;

  cross_entropy_backward(dlogits_.data(), probs_.data(), targets_.data(), N, V, -1, smoothing_,
                         1.0f / float(loss_count_));
  std::fill(dln_.begin(), dln_.end(), 0.0f);
  linear_backward(dln_.data(), head_w_->g.data(), nullptr, dlogits_.data(), lnf_.data(), head_w_->w.data(), N,
                  C, V);
  const float* x_last = blocks_.empty() ? x0_.data() : blocks_.back().out.data();
  layernorm_backward(dx_.data(), lnf_w_->g.data(), lnf_b_->g.data(), dln_.data(), x_last, lnf_w_->w.data(),
                     lnf_mean_.data(), lnf_rstd_.data(), N, C);

  // dx_ holds dLoss/d(residual stream) as we walk down the blocks
  for (int l = L_ - 1; l >= 0; l--) {
    Block& b = blocks_[l];
    const float* x_in = l == 0 ? x0_.data() : blocks_[l - 1].out.data();
    // MLP branch: out = res1 + drop(proj(gelu(fc(ln2(res1)))))
    const float* dproj = dx_.data();
    if (drop) {
      std::fill(dbranch_.begin(), dbranch_.end(), 0.0f);
      dropout_backward(dbranch_.data(), b.proj_mask.data(), dx_.data(), NC);
      dproj = dbranch_.data();
    }
    std::fill(dact_.begin(), dact_.end(), 0.0f);
    linear_backward(dact_.data(), b.proj_w->g.data(), g_or_null(b.proj_b), dproj, b.act.data(),
                    b.proj_w->w.data(), N, F, C);
    std::fill(dfc_.begin(), dfc_.end(), 0.0f);
    gelu_backward(dfc_.data(), b.fc.data(), dact_.data(), size_t(N) * F);
    std::fill(dln_.begin(), dln_.end(), 0.0f);
    linear_backward(dln_.data(), b.fc_w->g.data(), g_or_null(b.fc_b), dfc_.data(), b.ln2.data(),
                    b.fc_w->w.data(), N, C, F);
    layernorm_backward(dx_.data(), b.ln2_w->g.data(), b.ln2_b->g.data(), dln_.data(), b.res1.data(),
                       b.ln2_w->w.data(), b.ln2_mean.data(), b.ln2_rstd.data(), N, C);
    // attention branch: res1 = x_in + drop(attn(ln1(x_in)))
    const float* dattn = dx_.data();
    if (drop) {
      std::fill(dbranch_.begin(), dbranch_.end(), 0.0f);
      dropout_backward(dbranch_.data(), b.attn_mask.data(), dx_.data(), NC);
      dattn = dbranch_.data();
    }
    std::fill(dln_.begin(), dln_.end(), 0.0f);
    b.attn->backward(dln_.data(), dln_.data(), dattn);
    layernorm_backward(dx_.data(), b.ln1_w->g.data(), b.ln1_b->g.data(), dln_.data(), x_in, b.ln1_w->w.data(),
                       b.ln1_mean.data(), b.ln1_rstd.data(), N, C);
  }

  // embeddings: x0 = drop(tok_emb[ids] + pos)
  const float* dx0 = dx_.data();
  if (drop) {
    std::fill(dbranch_.begin(), dbranch_.end(), 0.0f);
    dropout_backward(dbranch_.data(), emb_mask_.data(), dx_.data(), NC);
    dx0 = dbranch_.data();
  }
  embedding_backward(tok_emb_->g.data(), ids_.data(), dx0, N, C);
  if (pos_emb_) {
    float* dpos = pos_emb_->g.data();
    // fixed order over b for each position t: deterministic
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++)
      for (int bb = 0; bb < B; bb++) {
        const float* d = dx0 + (size_t(bb) * T + t) * C;
        float* dp = dpos + size_t(t) * C;
        for (int c = 0; c < C; c++) dp[c] += d[c];
      }
  }
}

}  // namespace attnlab
