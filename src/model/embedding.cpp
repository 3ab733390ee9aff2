#include "model/embedding.h"

#include <cmath>

#include "core/error.h"
#include "ops/ops.h"

namespace attnlab {

Embedding::Embedding(const ModelConfig& cfg, int vocab_size, Param* tok, Param* pos)
    : V_(vocab_size), C_(cfg.d_model), tok_(tok), pos_(pos) {
  if (cfg.positions != ModelConfig::Positions::sinusoidal) return;
  const int C = C_;
  scale_ = std::sqrt(float(C));
  sinusoid_.resize(size_t(cfg.block_size) * C);
  for (int t = 0; t < cfg.block_size; t++)
    for (int i = 0; i < C; i++) {
      const double freq = std::pow(10000.0, -double(i - i % 2) / C);
      sinusoid_[size_t(t) * C + i] = float(i % 2 == 0 ? std::sin(t * freq) : std::cos(t * freq));
    }
}

void Embedding::forward(const int* ids, int B, int T, int pos0, float p_drop, Rng* rng) {
  const int N = B * T, C = C_, V = V_;
  ids_.resize(N);
  x0_.resize(size_t(N) * C);
  for (int i = 0; i < N; i++) {
    if (ids[i] < 0 || ids[i] >= V) user_error("token id {} outside the vocabulary (size {})", ids[i], V);
    ids_[i] = ids[i];
  }
  embedding_forward(x0_.data(), ids_.data(), tok_->w.data(), N, C);
  if (scale_ != 1.0f)
    for (size_t i = 0; i < size_t(N) * C; i++) x0_[i] *= scale_;
  const float* pos = pos_ ? pos_->w.data() : (sinusoid_.empty() ? nullptr : sinusoid_.data());
  if (pos) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float* pr = pos + size_t(pos0 + n % T) * C;
      float* xr = x0_.data() + size_t(n) * C;
      for (int c = 0; c < C; c++) xr[c] += pr[c];
    }
  }
  if (p_drop > 0.0f) {
    mask_.resize(size_t(N) * C);
    dropout_forward(x0_.data(), mask_.data(), x0_.data(), size_t(N) * C, p_drop, *rng);
  } else {
    mask_.clear();
  }
}

void Embedding::backward(const float* dx0_in, int B, int T) {
  const int N = B * T, C = C_;
  const float* dx0 = dx0_in;
  if (!mask_.empty()) {
    masked_.assign(size_t(N) * C, 0.0f);
    dropout_backward(masked_.data(), mask_.data(), dx0_in, size_t(N) * C);
    dx0 = masked_.data();
  }
  if (scale_ != 1.0f) {  // x0 = s · tok[id] + pos: the table's gradient is s · dx0
    scaled_.assign(dx0, dx0 + size_t(N) * C);
    for (auto& v : scaled_) v *= scale_;
    embedding_backward(tok_->g.data(), ids_.data(), scaled_.data(), N, C);
  } else {
    embedding_backward(tok_->g.data(), ids_.data(), dx0, N, C);
  }
  if (pos_) {
    float* dpos = pos_->g.data();
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
