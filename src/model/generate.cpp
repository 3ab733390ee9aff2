#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace attnlab {

int sample_logits(const float* logits, int V, float temperature, int top_k, Rng& rng) {
  if (temperature <= 0.0f) return int(std::max_element(logits, logits + V) - logits);
  std::vector<int> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  int k = (top_k > 0 && top_k < V) ? top_k : V;
  if (k < V)
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  float mx = logits[idx[0]];
  for (int i = 0; i < k; i++) mx = std::max(mx, logits[idx[i]]);
  std::vector<double> p(k);
  double sum = 0.0;
  for (int i = 0; i < k; i++) sum += p[i] = std::exp(double(logits[idx[i]] - mx) / temperature);
  double u = double(rng.uniform()) * sum;
  for (int i = 0; i < k; i++) {
    u -= p[i];
    if (u < 0.0) return idx[i];
  }
  return idx[k - 1];
}

std::vector<int> generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt,
                          Rng& rng) {
  if (prompt.empty()) user_error("generation needs a non-empty prompt");
  const int block = model.config().block_size, V = model.vocab_size();
  std::vector<int> seq = prompt, out;
  // cached: the prompt goes through the cache in one step, then one token per step
  bool cached = opt.use_cache && model.has_cache() && int(seq.size()) <= block;
  const float* logits = nullptr;
  if (cached) {
    model.cache_reset(1, block);
    logits = model.forward_cached(seq.data(), 1, int(seq.size())) + size_t(seq.size() - 1) * V;
  }
  for (int i = 0; i < opt.max_new_tokens; i++) {
    if (!cached) {
      const int T = std::min<int>(int(seq.size()), block);
      model.forward(seq.data() + seq.size() - T, nullptr, 1, T, false, nullptr);
      logits = model.logits() + size_t(T - 1) * V;
    }
    const int next = sample_logits(logits, V, opt.temperature, opt.top_k, rng);
    seq.push_back(next);
    out.push_back(next);
    if (next == opt.stop_token || i + 1 == opt.max_new_tokens) break;
    if (cached && model.cache_len() < block) logits = model.forward_cached(&next, 1, 1);
    else cached = false;  // the window slides from here on
  }
  return out;
}

}  // namespace attnlab
