#include "model/stack.h"

#include <algorithm>
#include <cmath>

#include "config/slots.h"
#include "core/error.h"
#include "model/init.h"
#include "ops/ops.h"

namespace attnlab {

Stack::Stack(const ModelConfig& cfg, const std::string& prefix, const std::string& self_slot,
             const std::string& cross_slot, int n_layers, ParamStore& store, Rng& rng)
    : C_(cfg.d_model),
      F_(cfg.d_ff > 0 ? cfg.d_ff : 4 * cfg.d_model),
      post_(cfg.norm == ModelConfig::Norm::post),
      exact_gelu_(cfg.activation == ModelConfig::Activation::gelu) {
  const int C = C_, F = F_;
  const float resid_std = float(cfg.init_std) / std::sqrt(2.0f * float(cfg.n_layers));
  const InitScheme scheme = cfg.init == ModelConfig::Init::torch_default ? InitScheme::torch_default : InitScheme::gpt2;
  auto norm = [&](Sub& s, const std::string& name) {
    s.ln_w = store.add(name + ".w", {C}, ParamKind::norm);
    s.ln_b = store.add(name + ".b", {C}, ParamKind::norm);
    fill_const(s.ln_w, 1.0f);
  };
  // an attention sublayer: its layernorm `ln`, then the slot's module named `name`
  auto attention = [&](Kind kind, const std::string& slot, int l, const std::string& ln, const std::string& name) {
    Sub s;
    s.kind = kind;
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
    Sub s;
    s.kind = Kind::mlp;
    norm(s, p + ".ln2");
    s.fc_w = store.add(p + ".mlp.fc.w", {F, C}, ParamKind::weight);
    s.fc_b = cfg.bias ? store.add(p + ".mlp.fc.b", {F}, ParamKind::bias) : nullptr;
    init_linear(s.fc_w, s.fc_b, C, scheme, rng, float(cfg.init_std));
    s.proj_w = store.add(p + ".mlp.proj.w", {C, F}, ParamKind::weight);
    s.proj_b = cfg.bias ? store.add(p + ".mlp.proj.b", {C}, ParamKind::bias) : nullptr;
    init_linear(s.proj_w, s.proj_b, F, scheme, rng, resid_std);
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
      if (exact_gelu_) gelu_erf_forward(s.act.data(), s.fc.data(), size_t(N) * F_);
      else gelu_forward(s.act.data(), s.fc.data(), size_t(N) * F_);
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
      if (exact_gelu_) gelu_erf_backward_inplace(dact_.data(), s.fc.data(), size_t(N) * F_);
      else gelu_backward_inplace(dact_.data(), s.fc.data(), size_t(N) * F_);
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

}  // namespace attnlab
