// AdamW (Loshchilov & Hutter 2019) with decoupled weight decay, gradient
// clipping by global norm, and the learning-rate schedule.
//
//   m = β₁ m + (1-β₁) g ;  v = β₂ v + (1-β₂) g²
//   m̂ = m / (1-β₁ᵗ) ;      v̂ = v / (1-β₂ᵗ)
//   w = w - lr · (m̂ / (√v̂ + ε) + λ w)      (λ only for decayed groups)
#pragma once
#include <vector>

#include "config/config.h"
#include "core/param.h"

namespace attnlab {

class AdamW {
 public:
  AdamW(ParamStore& store, const TrainConfig& cfg);
  // One update with learning rate lr; t counts from 1. The gradients are read multiplied by
  // grad_scale (clip_scale's factor: clipping folded into this pass, the stored gradients untouched).
  void step(float lr, float grad_scale = 1.0f);
  int t() const { return t_; }
  // moments, in the store's parameter order (for the training-state file)
  std::vector<std::vector<float>>& m() { return m_; }
  std::vector<std::vector<float>>& v() { return v_; }
  const std::vector<std::vector<float>>& m() const { return m_; }
  const std::vector<std::vector<float>>& v() const { return v_; }
  void set_t(int t) { t_ = t; }  // resume: the number of updates already applied

 private:
  ParamStore& store_;
  TrainConfig cfg_;
  int t_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

// Global L2 norm of all gradients (summed in double, in a fixed order).
double grad_norm(const ParamStore& store);
// The factor that brings gradients of global norm `norm` to at most max_norm (1 when they are
// under it, or max_norm ≤ 0 = no clipping).
float clip_scale(double norm, double max_norm);
// Scales gradients so that their global norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(ParamStore& store, double max_norm);

// Learning rate at `step` (from 0): linear warm-up to lr, then cosine decay to
// min_lr at cfg.steps (or constant).
double learning_rate(const TrainConfig& cfg, int step);

}  // namespace attnlab
