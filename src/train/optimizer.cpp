#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace attnlab {

AdamW::AdamW(ParamStore& store, const TrainConfig& cfg) : store_(store), cfg_(cfg) {
  for (const auto& p : store_.all()) {
    m_.emplace_back(p.numel(), 0.0f);
    v_.emplace_back(p.numel(), 0.0f);
  }
}

void AdamW::step(float lr, float grad_scale) {
  t_++;
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2), eps = float(cfg_.eps);
  const float c1 = 1.0f / (1.0f - std::pow(b1, float(t_)));
  const float c2 = 1.0f / (1.0f - std::pow(b2, float(t_)));
  size_t i = 0;
  for (auto& p : store_.all()) {
    const bool decay = p.kind == ParamKind::weight ||
                       (p.kind == ParamKind::embedding && cfg_.decay_embeddings);
    const float wd = decay ? float(cfg_.weight_decay) : 0.0f;
    float* w = p.w.data();
    const float* g = p.g.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const long n = long(p.numel());
#pragma omp parallel for schedule(static) if (n > 32768)
    for (long k = 0; k < n; k++) {
      const float gk = grad_scale == 1.0f ? g[k] : g[k] * grad_scale;
      m[k] = b1 * m[k] + (1.0f - b1) * gk;
      v[k] = b2 * v[k] + (1.0f - b2) * gk * gk;
      const float mh = m[k] * c1, vh = v[k] * c2;
      w[k] -= lr * (mh / (std::sqrt(vh) + eps) + wd * w[k]);
    }
    i++;
  }
}

// Σ g² in double, in a fixed order whatever the thread count: each parameter is cut into chunks of
// kChunk elements, chunks are summed in parallel (each in 8 interleaved lanes, in a fixed order),
// and the chunk sums are added in order. The same gradients therefore give the same bits with 1 or 2 threads.
double grad_norm(const ParamStore& store) {
  constexpr size_t kChunk = 1 << 16;
  // reused from call to call: the training step allocates nothing once it has run
  static thread_local std::vector<std::pair<const float*, size_t>> chunks;
  static thread_local std::vector<double> part;
  chunks.clear();
  for (const auto& p : store.all())
    for (size_t o = 0; o < p.g.size(); o += kChunk) chunks.push_back({p.g.data() + o, std::min(kChunk, p.g.size() - o)});
  part.resize(chunks.size());
  // the worker threads must see this thread's buffers, not their own thread_local copies
  const auto* ch = chunks.data();
  double* pt = part.data();
  const long n = long(chunks.size());
#pragma omp parallel for schedule(static)
  for (long c = 0; c < n; c++) {
    // kLanes running sums (element k into lane k mod kLanes), added in lane order at the end:
    // one serial chain of double adds was latency-bound (~4 cycles an element)
    constexpr int kLanes = 8;
    const float* g = ch[c].first;
    const size_t len = ch[c].second;
    double lane[kLanes] = {};
    size_t k = 0;
    for (; k + kLanes <= len; k += kLanes)
      for (int l = 0; l < kLanes; l++) lane[l] += double(g[k + l]) * double(g[k + l]);
    for (; k < len; k++) lane[k % kLanes] += double(g[k]) * double(g[k]);
    double s = 0.0;
    for (int l = 0; l < kLanes; l++) s += lane[l];
    pt[c] = s;
  }
  double s = 0.0;
  for (double x : part) s += x;
  return std::sqrt(s);
}

float clip_scale(double norm, double max_norm) {
  return max_norm > 0.0 && norm > max_norm ? float(max_norm / (norm + 1e-6)) : 1.0f;
}

double clip_grad_norm(ParamStore& store, double max_norm) {
  const double norm = grad_norm(store);
  if (const float scale = clip_scale(norm, max_norm); scale != 1.0f) {
    for (auto& p : store.all()) {
      float* g = p.g.data();
      const long n = long(p.g.size());
#pragma omp parallel for schedule(static) if (n > 32768)
      for (long k = 0; k < n; k++) g[k] *= scale;
    }
  }
  return norm;
}

double learning_rate(const TrainConfig& cfg, int step) {
  if (step < cfg.warmup_steps) return cfg.lr * double(step + 1) / double(cfg.warmup_steps);
  if (cfg.schedule == "constant") return cfg.lr;
  // Vaswani et al. 2017 ("Noam"): linear warm-up to lr, then ∝ 1/√step (lr at the end of warm-up)
  if (cfg.schedule == "inverse_sqrt") return cfg.lr * std::sqrt(double(std::max(1, cfg.warmup_steps)) / double(step + 1));
  const int decay_steps = std::max(1, cfg.steps - cfg.warmup_steps);
  const double progress = std::min(1.0, double(step - cfg.warmup_steps) / double(decay_steps));
  return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace attnlab
