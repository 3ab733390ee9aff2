#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "config/slots.h"
#include "ops/ops.h"

namespace attnlab {

namespace {
void fill_normal(Param* p, Rng& rng, float std) {
  for (auto& x : p->w) x = std * rng.normal();
}
void fill_const(Param* p, float v) { std::fill(p->w.begin(), p->w.end(), v); }
const float* w_or_null(const Param* p) { return p ? p->w.data() : nullptr; }
float* g_or_null(Param* p) { return p ? p->g.data() : nullptr; }
void zero(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }

// rows of a [B, row] buffer permuted: new row b = old row rows[b]
template <class T>
void permute_rows(std::vector<T>& buf, const std::vector<int>& rows) {
  if (buf.empty() || rows.empty()) return;
  const size_t B = rows.size(), row = buf.size() / B;
  std::vector<T> old(buf);
  for (size_t b = 0; b < B; b++)
    std::copy(old.begin() + size_t(rows[b]) * row, old.begin() + size_t(rows[b] + 1) * row, buf.begin() + b * row);
}
}  // namespace

// ============================================================================ Stack

Stack::Stack(const ModelConfig& cfg, const std::string& prefix, const std::string& self_slot,
             const std::string& cross_slot, int n_layers, ParamStore& store, Rng& rng)
    : C_(cfg.d_model), F_(cfg.d_ff > 0 ? cfg.d_ff : 4 * cfg.d_model), post_(cfg.norm == "post") {
  const int C = C_, F = F_;
  const float resid_std = 0.02f / std::sqrt(2.0f * float(cfg.n_layers));
  auto norm = [&](Sub& s, const std::string& name) {
    s.ln_w = store.add(name + ".w", {C}, ParamKind::norm);
    s.ln_b = store.add(name + ".b", {C}, ParamKind::norm);
    fill_const(s.ln_w, 1.0f);
  };
  // an attention sublayer: its layernorm `ln`, then the slot's module named `name`
  auto attention = [&](Kind kind, const std::string& slot, int l, const std::string& ln, const std::string& name) {
    Sub s{kind};
    norm(s, ln);
    AttentionSpec spec = slot_spec(cfg, slot, l);
    spec.name = name;
    spec.n_layers = cfg.n_layers;
    s.attn = make_attention(spec, store, rng);
    subs_.push_back(std::move(s));
  };
  for (int l = 0; l < n_layers; l++) {
    const std::string p = prefix + "blocks." + std::to_string(l);
    attention(Kind::self_attn, self_slot, l, p + ".ln1", p + ".attn");
    if (!cross_slot.empty()) attention(Kind::cross_attn, cross_slot, l, p + ".lnx", p + ".xattn");
    if (!cfg.mlp) continue;  // attention-only blocks: no ln2, no mlp.* tensors
    Sub s{Kind::mlp};
    norm(s, p + ".ln2");
    s.fc_w = store.add(p + ".mlp.fc.w", {F, C}, ParamKind::weight);
    fill_normal(s.fc_w, rng, 0.02f);
    s.fc_b = cfg.bias ? store.add(p + ".mlp.fc.b", {F}, ParamKind::bias) : nullptr;
    s.proj_w = store.add(p + ".mlp.proj.w", {C, F}, ParamKind::weight);
    fill_normal(s.proj_w, rng, resid_std);
    s.proj_b = cfg.bias ? store.add(p + ".mlp.proj.b", {C}, ParamKind::bias) : nullptr;
    subs_.push_back(std::move(s));
  }
}

void Stack::resize(int N, bool drop) {
  const size_t NC = size_t(N) * C_, NF = size_t(N) * F_;
  for (auto& s : subs_) {
    for (auto* v : {&s.nrm, &s.f, &s.sum}) v->resize(NC);
    s.mean.resize(N);
    s.rstd.resize(N);
    if (drop) s.mask.resize(NC);
    if (s.kind == Kind::mlp) {
      s.fc.resize(NF);
      s.act.resize(NF);
    }
  }
}

void Stack::run_f(Sub& s, const float* a, int B, int T, const unsigned char* self_keep, const float* mem, int S,
                  const unsigned char* mem_keep, bool train, Rng* rng, bool cached) {
  const int N = B * T;
  switch (s.kind) {
    case Kind::self_attn:
      if (cached) s.attn->forward_cached(s.f.data(), a, B, T);
      else s.attn->forward(s.f.data(), a, a, B, T, T, AttnMask{self_keep}, train, rng);
      break;
    case Kind::cross_attn:
      s.attn->forward(s.f.data(), a, mem, B, T, S, AttnMask{mem_keep}, train, rng);
      break;
    case Kind::mlp:
      linear_forward(s.fc.data(), a, s.fc_w->w.data(), w_or_null(s.fc_b), N, C_, F_);
      gelu_forward(s.act.data(), s.fc.data(), size_t(N) * F_);
      linear_forward(s.f.data(), s.act.data(), s.proj_w->w.data(), w_or_null(s.proj_b), N, F_, C_);
      break;
  }
}

void Stack::forward(const float* x, int B, int T, const unsigned char* self_keep, const float* mem, int S,
                    const unsigned char* mem_keep, bool train, float p_drop, Rng* rng, bool cached) {
  const int N = B * T, C = C_;
  const size_t NC = size_t(N) * C;
  resize(N, p_drop > 0.0f);
  B_ = B, T_ = T, S_ = S;
  const float* cur = x;
  for (Sub& s : subs_) {
    s.in = cur;
    const float* a = cur;
    if (!post_) {
      layernorm_forward(s.nrm.data(), s.mean.data(), s.rstd.data(), cur, s.ln_w->w.data(), s.ln_b->w.data(), N, C);
      a = s.nrm.data();
    }
    run_f(s, a, B, T, self_keep, mem, S, mem_keep, train, rng, cached);
    if (p_drop > 0.0f) dropout_forward(s.f.data(), s.mask.data(), s.f.data(), NC, p_drop, *rng);
    else s.mask.clear();
    residual_forward(s.sum.data(), cur, s.f.data(), NC);
    if (post_) {
      layernorm_forward(s.nrm.data(), s.mean.data(), s.rstd.data(), s.sum.data(), s.ln_w->w.data(),
                        s.ln_b->w.data(), N, C);
      cur = s.nrm.data();
    } else {
      cur = s.sum.data();
    }
  }
  out_ = cur;
}

// da += ∂f/∂a · dbranch (and dmem for cross-attention), parameter grads +=.
void Stack::back_f(Sub& s, const float* a, float* da, float* dmem, const float* dbranch) {
  const int N = B_ * T_;
  switch (s.kind) {
    case Kind::self_attn:
      s.attn->backward(da, da, dbranch);
      break;
    case Kind::cross_attn:
      ATTNLAB_CHECK(dmem);
      s.attn->backward(da, dmem, dbranch);
      break;
    case Kind::mlp:
      // d(act) written (not added), then turned into d(fc) in place: no zeroed buffers
      dact_.resize(size_t(N) * F_);
      linear_backward(dact_.data(), s.proj_w->g.data(), g_or_null(s.proj_b), dbranch, s.act.data(),
                      s.proj_w->w.data(), N, F_, C_, /*add_dinp=*/false);
      gelu_backward_inplace(dact_.data(), s.fc.data(), size_t(N) * F_);
      linear_backward(da, s.fc_w->g.data(), g_or_null(s.fc_b), dact_.data(), a, s.fc_w->w.data(), N, C_, F_);
      break;
  }
}

void Stack::backward(float* dx, float* dmem, const float* dout) {
  const int N = B_ * T_, C = C_;
  const size_t NC = size_t(N) * C;
  dcur_.assign(dout, dout + NC);  // dLoss/d(output of the sublayer being undone)
  for (auto it = subs_.rbegin(); it != subs_.rend(); ++it) {
    Sub& s = *it;
    const bool drop = !s.mask.empty();
    if (!post_) {
      // out = in + drop(f(LN(in)))
      const float* dbr = dcur_.data();
      if (drop) {
        zero(dbr_, NC);
        dropout_backward(dbr_.data(), s.mask.data(), dcur_.data(), NC);
        dbr = dbr_.data();
      }
      zero(dtmp_, NC);
      back_f(s, s.nrm.data(), dtmp_.data(), dmem, dbr);
      layernorm_backward(dcur_.data(), s.ln_w->g.data(), s.ln_b->g.data(), dtmp_.data(), s.in, s.ln_w->w.data(),
                         s.mean.data(), s.rstd.data(), N, C);
    } else {
      // out = LN(in + drop(f(in)))
      zero(dtmp_, NC);
      layernorm_backward(dtmp_.data(), s.ln_w->g.data(), s.ln_b->g.data(), dcur_.data(), s.sum.data(),
                         s.ln_w->w.data(), s.mean.data(), s.rstd.data(), N, C);
      std::copy(dtmp_.begin(), dtmp_.begin() + NC, dcur_.begin());
      const float* dbr = dtmp_.data();
      if (drop) {
        zero(dbr_, NC);
        dropout_backward(dbr_.data(), s.mask.data(), dtmp_.data(), NC);
        dbr = dbr_.data();
      }
      back_f(s, s.in, dcur_.data(), dmem, dbr);
    }
  }
  for (size_t i = 0; i < NC; i++) dx[i] += dcur_[i];
}

bool Stack::has_cache() const {
  for (const auto& s : subs_)
    if (s.kind == Kind::self_attn && !attention_registry().at(s.attn->spec().type).info.cache) return false;
  return true;
}

void Stack::cache_reset(int B, int capacity) {
  for (auto& s : subs_)
    if (s.kind == Kind::self_attn) s.attn->cache_reset(B, capacity);
}

void Stack::cache_reorder(const std::vector<int>& rows) {
  for (auto& s : subs_)
    if (s.kind == Kind::self_attn) s.attn->cache_reorder(rows);
}

std::vector<Attention*> Stack::attention_modules() {
  std::vector<Attention*> out;
  for (auto& s : subs_)
    if (s.kind == Kind::self_attn) out.push_back(s.attn.get());
  return out;
}

std::vector<Attention*> Stack::cross_modules() {
  std::vector<Attention*> out;
  for (auto& s : subs_)
    if (s.kind == Kind::cross_attn) out.push_back(s.attn.get());
  return out;
}

// ============================================================================ Model

Model::Model(const ModelConfig& cfg, int vocab_size, uint64_t seed, int n_classes)
    : cfg_(cfg), kind_(cfg.kind), V_(vocab_size), C_(cfg.d_model), K_(cfg.kind == "encoder" ? n_classes : 0),
      post_(cfg.norm == "post") {
  if (V_ < 1) user_error("model: empty vocabulary");
  if (kind_ != "decoder" && kind_ != "encoder" && kind_ != "encoder_decoder")
    user_error("model.kind: expected decoder, encoder or encoder_decoder, got '{}'", kind_);
  classify_ = K_ > 0;
  Rng rng(seed);
  const int C = C_;
  const bool seq2seq = kind_ == "encoder_decoder";
  dec_emb_.tok = store_.add("tok_emb", {V_, C}, ParamKind::embedding);
  fill_normal(dec_emb_.tok, rng, 0.02f);
  if (seq2seq) {
    if (cfg_.share_embeddings) {
      enc_emb_.tok = dec_emb_.tok;
    } else {
      enc_emb_.tok = store_.add("src_emb", {V_, C}, ParamKind::embedding);
      fill_normal(enc_emb_.tok, rng, 0.02f);
    }
  }
  if (cfg_.positions == "learned") {
    if (seq2seq) {
      enc_emb_.pos = store_.add("encoder.pos_emb", {cfg_.block_size, C}, ParamKind::embedding);
      fill_normal(enc_emb_.pos, rng, 0.02f);
      dec_emb_.pos = store_.add("decoder.pos_emb", {cfg_.block_size, C}, ParamKind::embedding);
    } else {
      dec_emb_.pos = store_.add("pos_emb", {cfg_.block_size, C}, ParamKind::embedding);
    }
    fill_normal(dec_emb_.pos, rng, 0.02f);
  } else if (cfg_.positions == "sinusoidal") {
    // PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(...)   (Vaswani 2017, 3.5).
    // The table's entries are O(1) while token embeddings start at N(0, 0.02): as in the paper
    // (3.4) the token embeddings are multiplied by √d_model, else the positions drown the tokens.
    emb_scale_ = std::sqrt(float(C));
    sinusoid_.resize(size_t(cfg_.block_size) * C);
    for (int t = 0; t < cfg_.block_size; t++)
      for (int i = 0; i < C; i++) {
        const double freq = std::pow(10000.0, -double(i - i % 2) / C);
        sinusoid_[size_t(t) * C + i] = float(i % 2 == 0 ? std::sin(t * freq) : std::cos(t * freq));
      }
  } else if (cfg_.positions != "none" && cfg_.positions != "rope" && cfg_.positions != "alibi") {
    user_error("model.positions: '{}' is not supported", cfg_.positions);
  }
  auto final_norm = [&](const std::string& name, Param*& w, Param*& b) {
    if (post_) return;  // post-LN stacks end normalised
    w = store_.add(name + ".w", {C}, ParamKind::norm);
    b = store_.add(name + ".b", {C}, ParamKind::norm);
    fill_const(w, 1.0f);
  };
  if (kind_ == "decoder") {
    dec_ = std::make_unique<Stack>(cfg_, "", "model.decoder.self_attention", "", cfg_.n_layers, store_, rng);
    final_norm("lnf", lnf_w_, lnf_b_);
  } else if (kind_ == "encoder") {
    enc_ = std::make_unique<Stack>(cfg_, "", "model.encoder.self_attention", "", cfg_.n_layers, store_, rng);
    final_norm("lnf", lnf_w_, lnf_b_);
  } else {
    const int enc_layers = cfg_.n_encoder_layers > 0 ? cfg_.n_encoder_layers : cfg_.n_layers;
    enc_ = std::make_unique<Stack>(cfg_, "encoder.", "model.encoder.self_attention", "", enc_layers, store_, rng);
    final_norm("encoder.lnf", enc_lnf_w_, enc_lnf_b_);
    dec_ = std::make_unique<Stack>(cfg_, "decoder.", "model.decoder.self_attention",
                                   cfg_.bottleneck ? "" : "model.decoder.cross_attention", cfg_.n_layers, store_,
                                   rng);
    final_norm("decoder.lnf", lnf_w_, lnf_b_);
  }
  if (classify_) {
    cls_w_ = store_.add("cls_head.w", {K_, C}, ParamKind::weight);
    fill_normal(cls_w_, rng, 0.02f);
    cls_b_ = store_.add("cls_head.b", {K_}, ParamKind::bias);
  } else if (cfg_.tie_embeddings) {
    head_w_ = dec_emb_.tok;
  } else {
    head_w_ = store_.add("head.w", {V_, C}, ParamKind::weight);
    fill_normal(head_w_, rng, 0.02f);
  }
}

std::vector<std::pair<std::string, Attention*>> Model::named_attention() {
  std::vector<std::pair<std::string, Attention*>> out;
  auto add = [&](const std::string& label, const std::vector<Attention*>& mods) {
    for (size_t l = 0; l < mods.size(); l++) out.push_back({label + "_L" + std::to_string(l), mods[l]});
  };
  if (enc_) add("encoder_self", enc_->attention_modules());
  if (dec_) {
    add("decoder_self", dec_->attention_modules());
    add("decoder_cross", dec_->cross_modules());
  }
  return out;
}

std::vector<Attention*> Model::attention_modules() {
  std::vector<Attention*> out;
  for (auto& [name, a] : named_attention()) out.push_back(a);
  return out;
}

void Model::embed(Embed& e, const int* ids, int B, int T, int pos0, float p_drop, Rng* rng) {
  const int N = B * T, C = C_, V = V_;
  e.ids.resize(N);
  e.x0.resize(size_t(N) * C);
  for (int i = 0; i < N; i++) {
    if (ids[i] < 0 || ids[i] >= V) user_error("token id {} outside the vocabulary (size {})", ids[i], V);
    e.ids[i] = ids[i];
  }
  embedding_forward(e.x0.data(), e.ids.data(), e.tok->w.data(), N, C);
  if (emb_scale_ != 1.0f)
    for (size_t i = 0; i < size_t(N) * C; i++) e.x0[i] *= emb_scale_;
  const float* pos = e.pos ? e.pos->w.data() : (sinusoid_.empty() ? nullptr : sinusoid_.data());
  if (pos) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* pr = pos + size_t(pos0 + n % T) * C;
      float* xr = e.x0.data() + size_t(n) * C;
      for (int c = 0; c < C; c++) xr[c] += pr[c];
    }
  }
  if (p_drop > 0.0f) {
    e.mask.resize(size_t(N) * C);
    dropout_forward(e.x0.data(), e.mask.data(), e.x0.data(), size_t(N) * C, p_drop, *rng);
  } else {
    e.mask.clear();
  }
}

void Model::embed_backward(Embed& e, const float* dx0_in, int B, int T) {
  const int N = B * T, C = C_;
  const float* dx0 = dx0_in;
  std::vector<float>& masked = emb_scratch_;  // reused: no allocation once the shapes are stable
  if (!e.mask.empty()) {
    masked.assign(size_t(N) * C, 0.0f);
    dropout_backward(masked.data(), e.mask.data(), dx0_in, size_t(N) * C);
    dx0 = masked.data();
  }
  if (emb_scale_ != 1.0f) {  // x0 = s · tok[id] + pos: the table's gradient is s · dx0
    std::vector<float>& scaled = emb_scaled_;
    scaled.assign(dx0, dx0 + size_t(N) * C);
    for (auto& v : scaled) v *= emb_scale_;
    embedding_backward(e.tok->g.data(), e.ids.data(), scaled.data(), N, C);
  } else {
    embedding_backward(e.tok->g.data(), e.ids.data(), dx0, N, C);
  }
  if (e.pos) {
    float* dpos = e.pos->g.data();
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

void Model::keep_mask(std::vector<unsigned char>& keep, const int* len, int B, int T) {
  keep.resize(size_t(B) * T);
  for (int b = 0; b < B; b++) {
    if (len[b] < 0 || len[b] > T) user_error("row {}: length {} outside 0..{}", b, len[b], T);
    for (int t = 0; t < T; t++) keep[size_t(b) * T + t] = t < len[b];
  }
}

// Source -> encoder stack (-> final LN) -> mem_ [B,S,C]; src_keep_ holds the key padding.
void Model::encoder_forward(const int* src, const int* src_len, int B, int S, bool train, float p_drop, Rng* rng) {
  if (S > cfg_.block_size) user_error("source length {} exceeds model.block_size {}", S, cfg_.block_size);
  const int N = B * S, C = C_;
  if (src_len) keep_mask(src_keep_, src_len, B, S);
  else src_keep_.assign(size_t(N), 1);
  if (src_len) src_len_.assign(src_len, src_len + B);
  else src_len_.assign(B, S);
  embed(enc_emb_, src, B, S, 0, p_drop, rng);
  enc_->forward(enc_emb_.x0.data(), B, S, src_keep_.data(), nullptr, 0, nullptr, train, p_drop, rng, false);
  mem_ = enc_->output();
  if (!post_) {
    enc_lnf_.resize(size_t(N) * C);
    enc_lnf_mean_.resize(N);
    enc_lnf_rstd_.resize(N);
    layernorm_forward(enc_lnf_.data(), enc_lnf_mean_.data(), enc_lnf_rstd_.data(), mem_, enc_lnf_w_->w.data(),
                      enc_lnf_b_->w.data(), N, C);
    mem_ = enc_lnf_.data();
  }
  if (cfg_.bottleneck) {
    // c[b] = mean over the non-padding source positions of mem[b]
    ctx_.assign(size_t(B) * C, 0.0f);
    for (int b = 0; b < B; b++) {
      const int L = std::max(1, src_len_[b]);
      float* c = ctx_.data() + size_t(b) * C;
      for (int s = 0; s < std::min(src_len_[b], S); s++)
        for (int j = 0; j < C; j++) c[j] += mem_[(size_t(b) * S + s) * C + j];
      for (int j = 0; j < C; j++) c[j] /= float(L);
    }
  }
}

void Model::head_forward(const float* x, int N) {
  const int C = C_;
  const float* h = x;
  if (!post_) {
    lnf_.resize(size_t(N) * C);
    lnf_mean_.resize(N);
    lnf_rstd_.resize(N);
    layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), x, lnf_w_->w.data(), lnf_b_->w.data(), N, C);
    h = lnf_.data();
  }
  if (classify_) {
    // pooled [B,C]: the first position or the mean over non-padding positions
    const int B = B_, T = T_;
    pooled_.assign(size_t(B) * C, 0.0f);
    for (int b = 0; b < B; b++) {
      float* p = pooled_.data() + size_t(b) * C;
      if (cfg_.pool == "first") {
        std::copy(h + size_t(b) * T * C, h + (size_t(b) * T + 1) * C, p);
      } else {
        const int L = std::max(1, x_len_[b]);
        for (int t = 0; t < x_len_[b]; t++)
          for (int j = 0; j < C; j++) p[j] += h[(size_t(b) * T + t) * C + j];
        for (int j = 0; j < C; j++) p[j] /= float(L);
      }
    }
    logits_.resize(size_t(B) * K_);
    linear_forward(logits_.data(), pooled_.data(), cls_w_->w.data(), cls_b_->w.data(), B, C, K_);
  } else {
    logits_.resize(size_t(N) * V_);
    linear_forward(logits_.data(), h, head_w_->w.data(), nullptr, N, C, V_);
  }
}

// Cross-entropy over rows [N, V or K] of logits_ against targets (-1 = ignored).
float Model::token_loss(const int* targets, int N, float smoothing, bool train) {
  const int V = classify_ ? K_ : V_;
  targets_.resize(N);
  for (int i = 0; i < N; i++) {
    if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= V))
      user_error("target id {} outside the {} (size {})", targets[i], classify_ ? "classes" : "vocabulary", V);
    targets_[i] = targets[i];
  }
  probs_.resize(size_t(N) * V);
  losses_.resize(N);
  const float loss = cross_entropy_forward(probs_.data(), losses_.data(), logits_.data(), targets_.data(), N, V,
                                           -1, smoothing, &loss_count_);
  correct_ = 0;
  if (!train)
    for (int i = 0; i < N; i++) {
      if (targets_[i] < 0) continue;
      const float* row = logits_.data() + size_t(i) * V;
      correct_ += int(std::max_element(row, row + V) - row) == targets_[i];
    }
  return loss;
}

float Model::forward(const int* ids, const int* targets, int B, int T, bool train, Rng* rng, float label_smoothing) {
  if (kind_ == "encoder_decoder") user_error("an encoder_decoder model needs a source: use forward(Batch)");
  Batch& b = ids_batch_;  // reused: no allocation once the shape has been seen
  b.B = B, b.T = T;
  b.x.assign(ids, ids + size_t(B) * T);
  if (targets) b.y.assign(targets, targets + size_t(B) * T);
  else b.y.clear();
  return forward(b, train, rng, label_smoothing);
}

void Model::decoder_stack_forward(int B, int T, const unsigned char* self_keep, bool train, float p_drop, Rng* rng,
                                  bool cached) {
  const float* in = dec_emb_.x0.data();
  if (kind_ == "encoder_decoder" && cfg_.bottleneck) {
    // every decoder input gets the source summary: x0[b,t] + c[b]
    const int C = C_;
    dec_in_.resize(size_t(B) * T * C);
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++)
          dec_in_[(size_t(b) * T + t) * C + j] = in[(size_t(b) * T + t) * C + j] + ctx_[size_t(b) * C + j];
    in = dec_in_.data();
  }
  const bool cross = kind_ == "encoder_decoder" && !cfg_.bottleneck;
  dec_->forward(in, B, T, self_keep, cross ? mem_ : nullptr, cross ? S_ : 0,
                cross ? (cached ? mem_keep_cache_.data() : src_keep_.data()) : nullptr, train, p_drop, rng, cached);
}

float Model::forward(const Batch& batch, bool train, Rng* rng, float label_smoothing) {
  const int B = batch.B, T = batch.T, N = B * T;
  if (T > cfg_.block_size) user_error("sequence length {} exceeds model.block_size {}", T, cfg_.block_size);
  if (int(batch.x.size()) != N) user_error("batch: x has {} ids, expected B·T = {}", batch.x.size(), N);
  B_ = B, T_ = T, train_ = train, smoothing_ = label_smoothing;
  const float p_drop = train ? float(cfg_.dropout) : 0.0f;
  x_len_ = batch.x_len.empty() ? std::vector<int>(B, T) : batch.x_len;
  loss_count_ = correct_ = 0;

  if (kind_ == "encoder") {
    const unsigned char* keep = nullptr;
    if (!batch.x_len.empty()) {
      keep_mask(x_keep_, batch.x_len.data(), B, T);
      keep = x_keep_.data();
    }
    embed(dec_emb_, batch.x.data(), B, T, 0, p_drop, rng);
    enc_->forward(dec_emb_.x0.data(), B, T, keep, nullptr, 0, nullptr, train, p_drop, rng, false);
    head_forward(enc_->output(), N);
    if (classify_) {
      if (batch.cls.empty()) return 0.0f;
      if (int(batch.cls.size()) != B) user_error("batch: {} class targets for {} rows", batch.cls.size(), B);
      return token_loss(batch.cls.data(), B, label_smoothing, train);
    }
  } else {
    if (kind_ == "encoder_decoder") {
      if (batch.S < 1 || int(batch.src.size()) != B * batch.S)
        user_error("an encoder_decoder batch needs a source: src [B,S] with S ≥ 1");
      S_ = batch.S;
      encoder_forward(batch.src.data(), batch.src_len.empty() ? nullptr : batch.src_len.data(), B, batch.S, train,
                      p_drop, rng);
    }
    embed(dec_emb_, batch.x.data(), B, T, 0, p_drop, rng);
    decoder_stack_forward(B, T, nullptr, train, p_drop, rng, false);
    head_forward(dec_->output(), N);
  }
  if (batch.y.empty()) return 0.0f;
  if (int(batch.y.size()) != N) user_error("batch: y has {} targets, expected B·T = {}", batch.y.size(), N);
  return token_loss(batch.y.data(), N, label_smoothing, train);
}

void Model::backward() {
  ATTNLAB_CHECK(train_);
  const int B = B_, T = T_, N = B * T, C = C_;
  const size_t NC = size_t(N) * C;
  if (loss_count_ == 0) return;
  const int rows = classify_ ? B : N, V = classify_ ? K_ : V_;
  zero(dlogits_, size_t(rows) * V);
  cross_entropy_backward(dlogits_.data(), probs_.data(), targets_.data(), rows, V, -1, smoothing_,
                         1.0f / float(loss_count_));
  // d(head input) -> dln_ [N,C]
  zero(dln_, NC);
  const float* h = post_ ? (kind_ == "encoder" ? enc_->output() : dec_->output()) : lnf_.data();
  if (classify_) {
    zero(dpooled_, size_t(B) * C);
    linear_backward(dpooled_.data(), cls_w_->g.data(), cls_b_->g.data(), dlogits_.data(), pooled_.data(),
                    cls_w_->w.data(), B, C, K_);
    for (int b = 0; b < B; b++) {
      const float* dp = dpooled_.data() + size_t(b) * C;
      if (cfg_.pool == "first") {
        for (int j = 0; j < C; j++) dln_[size_t(b) * T * C + j] += dp[j];
      } else {
        const float inv = 1.0f / float(std::max(1, x_len_[b]));
        for (int t = 0; t < x_len_[b]; t++)
          for (int j = 0; j < C; j++) dln_[(size_t(b) * T + t) * C + j] += dp[j] * inv;
      }
    }
  } else {
    linear_backward(dln_.data(), head_w_->g.data(), nullptr, dlogits_.data(), h, head_w_->w.data(), N, C, V_);
  }
  // through the final layernorm -> dx_ = d(stack output)
  Stack& top = kind_ == "encoder" ? *enc_ : *dec_;
  if (post_) {
    dx_.assign(dln_.begin(), dln_.begin() + NC);
  } else {
    zero(dx_, NC);
    layernorm_backward(dx_.data(), lnf_w_->g.data(), lnf_b_->g.data(), dln_.data(), top.output(), lnf_w_->w.data(),
                       lnf_mean_.data(), lnf_rstd_.data(), N, C);
  }
  const bool seq2seq = kind_ == "encoder_decoder";
  const int S = S_;
  const size_t SC = size_t(B) * S * C;
  if (seq2seq) zero(dmem_, SC);
  zero(dln_, NC);  // reused: d(stack input)
  top.backward(dln_.data(), seq2seq && !cfg_.bottleneck ? dmem_.data() : nullptr, dx_.data());
  if (seq2seq && cfg_.bottleneck) {
    // x_in[b,t] = x0[b,t] + c[b], c[b] = (1/L_b) Σ_{s<L_b} mem[b,s]
    std::vector<float>& dc = dpooled_;  // reused scratch [C]
    for (int b = 0; b < B; b++) {
      dc.assign(C, 0.0f);
      for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++) dc[j] += dln_[(size_t(b) * T + t) * C + j];
      const float inv = 1.0f / float(std::max(1, src_len_[b]));
      for (int s = 0; s < std::min(src_len_[b], S); s++)
        for (int j = 0; j < C; j++) dmem_[(size_t(b) * S + s) * C + j] += dc[j] * inv;
    }
  }
  embed_backward(dec_emb_, dln_.data(), B, T);
  if (!seq2seq) return;
  // encoder: d(mem) -> through its final layernorm -> the stack -> the source embedding
  const int NS = B * S;
  const float* denc = dmem_.data();
  if (!post_) {
    zero(dx_, SC);
    layernorm_backward(dx_.data(), enc_lnf_w_->g.data(), enc_lnf_b_->g.data(), dmem_.data(), enc_->output(),
                       enc_lnf_w_->w.data(), enc_lnf_mean_.data(), enc_lnf_rstd_.data(), NS, C);
    denc = dx_.data();
  }
  zero(dln_, SC);
  enc_->backward(dln_.data(), nullptr, denc);
  embed_backward(enc_emb_, dln_.data(), B, S);
}

// ---------------------------------------------------------------- incremental decoding

void Model::encode(const int* src, const int* src_len, int B, int S) {
  if (kind_ != "encoder_decoder") user_error("encode: only an encoder_decoder model has a source");
  S_ = S;
  encoder_forward(src, src_len, B, S, false, 0.0f, nullptr);
  mem_cache_.assign(mem_, mem_ + size_t(B) * S * C_);
  mem_keep_cache_ = src_keep_;
  mem_S_ = S;
}

bool Model::has_cache() const { return dec_ && dec_->has_cache(); }

void Model::cache_reset(int B, int capacity) {
  if (!dec_) user_error("incremental decoding needs a decoder (model.kind decoder or encoder_decoder)");
  if (capacity > cfg_.block_size) user_error("cache capacity {} exceeds model.block_size {}", capacity, cfg_.block_size);
  if (kind_ == "encoder_decoder" && int(mem_keep_cache_.size()) != B * mem_S_)
    user_error("cache_reset: encode() a source batch of {} rows first", B);
  dec_->cache_reset(B, capacity);
  cache_B_ = B;
  cache_len_ = 0;
}

const float* Model::forward_cached(const int* ids, int B, int Tn) {
  if (B != cache_B_) user_error("forward_cached: batch {} differs from cache_reset's {}", B, cache_B_);
  if (cache_len_ + Tn > cfg_.block_size)
    user_error("sequence length {} exceeds model.block_size {}", cache_len_ + Tn, cfg_.block_size);
  train_ = false;  // no backward through the cached path
  B_ = B, T_ = Tn;
  if (kind_ == "encoder_decoder") {
    mem_ = mem_cache_.data();
    S_ = mem_S_;
  }
  embed(dec_emb_, ids, B, Tn, cache_len_, 0.0f, nullptr);
  decoder_stack_forward(B, Tn, nullptr, false, 0.0f, nullptr, true);
  head_forward(dec_->output(), B * Tn);
  cache_len_ += Tn;
  return logits_.data();
}

void Model::cache_reorder(const std::vector<int>& rows) {
  if (int(rows.size()) != cache_B_) user_error("cache_reorder: {} rows for a cache of {}", rows.size(), cache_B_);
  for (int r : rows)
    if (r < 0 || r >= cache_B_) user_error("cache_reorder: row {} outside 0..{}", r, cache_B_ - 1);
  dec_->cache_reorder(rows);
  if (kind_ == "encoder_decoder") {
    permute_rows(mem_cache_, rows);
    permute_rows(mem_keep_cache_, rows);
    permute_rows(src_len_, rows);
    if (cfg_.bottleneck) permute_rows(ctx_, rows);
  }
}

}  // namespace attnlab
