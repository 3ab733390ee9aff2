#include "model/heads.h"

#include <algorithm>

#include "core/error.h"
#include "model/init.h"
#include "ops/ops.h"

namespace attnlab {

void mean_pool(float* out, const float* x, const int* len, int B, int T, int C) {
  std::fill(out, out + size_t(B) * C, 0.0f);
  for (int b = 0; b < B; b++) {
    const int L = std::max(1, len[b]);
    float* o = out + size_t(b) * C;
    for (int t = 0; t < std::min(len[b], T); t++)
      for (int j = 0; j < C; j++) o[j] += x[(size_t(b) * T + t) * C + j];
    for (int j = 0; j < C; j++) o[j] /= float(L);
  }
}

void mean_pool_backward(float* dx, const float* dout, const int* len, int B, int T, int C) {
  for (int b = 0; b < B; b++) {
    const float* d = dout + size_t(b) * C;
    const float inv = 1.0f / float(std::max(1, len[b]));
    for (int t = 0; t < std::min(len[b], T); t++)
      for (int j = 0; j < C; j++) dx[(size_t(b) * T + t) * C + j] += d[j] * inv;
  }
}

// ---------------------------------------------------------------- LMHead

const float* LMHead::forward(const float* h, int B, int T, const int*) {
  N_ = B * T;
  h_ = h;
  logits_.resize(size_t(N_) * V_);
  linear_forward(logits_.data(), h, w_->w.data(), w_or_null(b_), N_, C_, V_);
  return logits_.data();
}

void LMHead::backward(float* dh, const float* dlogits) {
  linear_backward(dh, w_->g.data(), g_or_null(b_), dlogits, h_, w_->w.data(), N_, C_, V_);
}

// ---------------------------------------------------------------- ClassifierHead

ClassifierHead::ClassifierHead(const std::string& pool, int n_classes, int C, InitScheme init, float init_std,
                               ParamStore& store, Rng& rng)
    : first_(pool == "first"), K_(n_classes), C_(C) {
  w_ = store.add("cls_head.w", {K_, C}, ParamKind::weight);
  b_ = store.add("cls_head.b", {K_}, ParamKind::bias);
  init_linear(w_, b_, C, init, rng, init_std);
}

const float* ClassifierHead::forward(const float* h, int B, int T, const int* len) {
  const int C = C_;
  B_ = B, T_ = T, len_ = len;
  pooled_.resize(size_t(B) * C);
  if (first_) {
    for (int b = 0; b < B; b++) std::copy(h + size_t(b) * T * C, h + (size_t(b) * T + 1) * C, &pooled_[size_t(b) * C]);
  } else {
    mean_pool(pooled_.data(), h, len, B, T, C);
  }
  logits_.resize(size_t(B) * K_);
  linear_forward(logits_.data(), pooled_.data(), w_->w.data(), b_->w.data(), B, C, K_);
  return logits_.data();
}

void ClassifierHead::backward(float* dh, const float* dlogits) {
  const int B = B_, T = T_, C = C_;
  zero(dpooled_, size_t(B) * C);
  linear_backward(dpooled_.data(), w_->g.data(), b_->g.data(), dlogits, pooled_.data(), w_->w.data(), B, C, K_);
  if (first_) {
    for (int b = 0; b < B; b++)
      for (int j = 0; j < C; j++) dh[size_t(b) * T * C + j] += dpooled_[size_t(b) * C + j];
  } else {
    mean_pool_backward(dh, dpooled_.data(), len_, B, T, C);
  }
}

// ---------------------------------------------------------------- Loss

float Loss::forward(const float* logits, const int* targets, int rows, int width, float smoothing, bool train,
                    const char* what) {
  const int N = rows, V = width;
  rows_ = rows, width_ = width, smoothing_ = smoothing;
  targets_.resize(N);
  for (int i = 0; i < N; i++) {
    if (targets[i] != -1 && (targets[i] < 0 || targets[i] >= V))
      user_error("target id {} outside the {} (size {})", targets[i], what, V);
    targets_[i] = targets[i];
  }
  probs_.resize(size_t(N) * V);
  losses_.resize(N);
  const float loss =
      cross_entropy_forward(probs_.data(), losses_.data(), logits, targets_.data(), N, V, -1, smoothing, &count_);
  correct_ = 0;
  if (!train)
    for (int i = 0; i < N; i++) {
      if (targets_[i] < 0) continue;
      const float* row = logits + size_t(i) * V;
      correct_ += int(std::max_element(row, row + V) - row) == targets_[i];
    }
  return loss;
}

const float* Loss::backward(int denom) {
  ATTNLAB_CHECK(count_ > 0);
  ATTNLAB_CHECK(denom == 0 || denom >= count_);
  zero(dlogits_, size_t(rows_) * width_);
  cross_entropy_backward(dlogits_.data(), probs_.data(), targets_.data(), rows_, width_, -1, smoothing_,
                         1.0f / float(denom > 0 ? denom : count_));
  return dlogits_.data();
}

}  // namespace attnlab
