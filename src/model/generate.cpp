#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "core/error.h"

namespace attnlab {

int sample_logits(const float* logits, int V, float temperature, int top_k, Rng& rng, float top_p) {
  if (temperature <= 0.0f) return int(std::max_element(logits, logits + V) - logits);
  std::vector<int> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  int k = (top_k > 0 && top_k < V) ? top_k : V;
  auto by_logit = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (top_p < 1.0f) std::sort(idx.begin(), idx.end(), by_logit);  // nucleus needs the order
  else if (k < V) std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
  float mx = logits[idx[0]];
  for (int i = 0; i < k; i++) mx = std::max(mx, logits[idx[i]]);
  std::vector<double> p(k);
  double sum = 0.0;
  for (int i = 0; i < k; i++) sum += p[i] = std::exp(double(logits[idx[i]] - mx) / temperature);
  if (top_p < 1.0f) {
    // keep the shortest prefix (likeliest first) whose mass reaches top_p of the total
    double acc = 0.0;
    int keep = 0;
    while (keep < k && acc < double(top_p) * sum) acc += p[keep++];
    k = std::max(1, keep);
    sum = acc > 0.0 ? acc : p[0];
  }
  double u = double(rng.uniform()) * sum;
  for (int i = 0; i < k; i++) {
    u -= p[i];
    if (u < 0.0) return idx[i];
  }
  return idx[k - 1];
}

std::function<bool(const std::vector<int>&)> stop_at_text(const Tokenizer& tok, const std::string& text) {
  if (text.empty()) user_error("a stop string must not be empty");
  // the whole generated text each time: a stop string may span several tokens (and a token may
  // hold more than the stop string); decoding a few hundred tokens per step costs microseconds
  return [tok, text](const std::vector<int>& out) { return tok.decode(out).find(text) != std::string::npos; };
}

std::string cut_at_stop(const std::string& generated, const std::string& text) {
  if (text.empty()) return generated;
  const size_t at = generated.find(text);
  return at == std::string::npos ? generated : generated.substr(0, at);
}

namespace {

bool stops(const SampleOptions& opt, const std::vector<int>& out) {
  return (!out.empty() && out.back() == opt.stop_token) || (opt.stop_when && opt.stop_when(out));
}

void log_softmax(const float* lg, int V, std::vector<double>& out) {
  out.resize(V);
  const double mx = *std::max_element(lg, lg + V);
  double sum = 0.0;
  for (int v = 0; v < V; v++) sum += std::exp(double(lg[v]) - mx);
  const double lse = mx + std::log(sum);
  for (int v = 0; v < V; v++) out[v] = double(lg[v]) - lse;
}

// opt.min_token: rows [n, V] of logits with the ids below min_token at -inf (in place).
void ban_low_ids(float* logits, int n, int V, const SampleOptions& opt) {
  const int k = std::min(opt.min_token, V - 1);  // at least one id stays
  for (int r = 0; r < n && k > 0; r++) std::fill_n(logits + size_t(r) * V, k, -INFINITY);
}

// logits [n, V] as decoding may read them: `lg` itself, or a copy in `buf` with the banned ids.
const float* allowed_logits(const float* lg, int n, int V, const SampleOptions& opt, std::vector<float>& buf) {
  if (opt.min_token <= 0) return lg;
  buf.assign(lg, lg + size_t(n) * V);
  ban_low_ids(buf.data(), n, V, opt);
  return buf.data();
}

// Beam search once the cache holds W identical rows and `logits` [W,V] are their next-token logits.
// step(tokens[W]) appends one token per row and returns the new logits [W,V]; reorder(parents[W])
// makes cache row b a copy of row parents[b].
std::vector<int> beam_search(int V, int W, int max_steps, const float* logits, const SampleOptions& opt,
                             const std::function<const float*(const std::vector<int>&)>& step,
                             const std::function<void(const std::vector<int>&)>& reorder) {
  struct Hyp {
    std::vector<int> toks;
    double logp;
  };
  struct Cand {
    double logp;
    int beam, tok;
  };
  auto score = [&](double logp, size_t len) {
    return logp / std::pow(double(std::max<size_t>(len, 1)), double(opt.length_penalty));
  };
  std::vector<Hyp> live{Hyp{{}, 0.0}};  // live[i] sits in cache row i (at first all rows are equal)
  std::vector<std::pair<double, std::vector<int>>> finished;
  std::vector<double> ls;
  std::vector<float> banned;
  for (int s = 0; s < max_steps; s++) {
    std::vector<Cand> cands;
    cands.reserve(live.size() * size_t(V));
    logits = allowed_logits(logits, W, V, opt, banned);
    for (size_t i = 0; i < live.size(); i++) {
      log_softmax(logits + i * size_t(V), V, ls);
      for (int v = std::min(std::max(opt.min_token, 0), V - 1); v < V; v++)
        cands.push_back({live[i].logp + ls[v], int(i), v});
    }
    const size_t top = std::min(cands.size(), size_t(2 * W));
    std::partial_sort(cands.begin(), cands.begin() + top, cands.end(), [](const Cand& a, const Cand& b) {
      if (a.logp != b.logp) return a.logp > b.logp;
      return a.beam != b.beam ? a.beam < b.beam : a.tok < b.tok;
    });
    std::vector<Hyp> next;
    std::vector<int> parents, toks;
    for (size_t c = 0; c < top && int(next.size()) < W; c++) {
      std::vector<int> t = live[cands[c].beam].toks;
      t.push_back(cands[c].tok);
      if (stops(opt, t)) {
        finished.push_back({score(cands[c].logp, t.size()), std::move(t)});
        continue;
      }
      next.push_back({std::move(t), cands[c].logp});
      parents.push_back(cands[c].beam);
      toks.push_back(cands[c].tok);
    }
    live = std::move(next);
    if (int(finished.size()) >= W || live.empty() || s + 1 == max_steps) break;
    while (int(parents.size()) < W) {  // spare rows (fewer live hypotheses than beams) copy row 0
      parents.push_back(parents[0]);
      toks.push_back(toks[0]);
    }
    reorder(parents);
    logits = step(toks);
  }
  for (auto& h : live) finished.push_back({score(h.logp, h.toks.size()), h.toks});
  if (finished.empty()) return {};
  size_t best = 0;
  for (size_t i = 1; i < finished.size(); i++)
    if (finished[i].first > finished[best].first) best = i;
  return finished[best].second;
}

void check_options(const SampleOptions& opt) {
  if (opt.beam_width < 1) user_error("beam width must be at least 1, got {}", opt.beam_width);
  if (opt.top_p <= 0.0f || opt.top_p > 1.0f) user_error("top_p must be in (0, 1], got {}", opt.top_p);
}

}  // namespace

std::vector<std::vector<int>> generate_batch(Model& model, const std::vector<std::vector<int>>& prompts,
                                             const SampleOptions& opt, Rng& rng) {
  check_options(opt);
  if (model.config().kind != ModelConfig::Kind::decoder) user_error("generate: the model is a {}, not a decoder", option_name(model.config().kind));
  if (prompts.empty() || prompts[0].empty()) user_error("generation needs a non-empty prompt");
  const int B = int(prompts.size()), Lp = int(prompts[0].size());
  for (const auto& p : prompts)
    if (int(p.size()) != Lp) user_error("batched generation needs prompts of equal length");
  const int block = model.context(), V = model.vocab_size();
  std::vector<std::vector<int>> seqs = prompts, outs(B);
  std::vector<char> stopped(B, 0);
  std::vector<float> last(size_t(B) * V);
  auto take_last = [&](const float* lg, int T) {  // rows (b, T-1) of logits [B,T,V]
    for (int b = 0; b < B; b++) std::copy_n(lg + (size_t(b) * T + T - 1) * V, V, last.begin() + size_t(b) * V);
  };
  bool cached = opt.use_cache && model.has_cache() && Lp <= block;
  if (cached) {
    std::vector<int> flat;
    for (const auto& p : prompts) flat.insert(flat.end(), p.begin(), p.end());
    model.cache_reset(B, block);
    take_last(model.forward_cached(flat.data(), B, Lp), Lp);
  }
  std::vector<int> next(B), ids;
  for (int i = 0; i < opt.max_new_tokens; i++) {
    if (!cached) {
      const int T = std::min<int>(int(seqs[0].size()), block);
      ids.clear();
      for (const auto& s : seqs) ids.insert(ids.end(), s.end() - T, s.end());
      model.forward(ids.data(), nullptr, B, T, false, nullptr);
      take_last(model.logits(), T);
    }
    ban_low_ids(last.data(), B, V, opt);
    bool all = true;
    for (int b = 0; b < B; b++) {
      next[b] = stopped[b] ? seqs[b].back()
                           : sample_logits(last.data() + size_t(b) * V, V, opt.temperature, opt.top_k, rng, opt.top_p);
      seqs[b].push_back(next[b]);
      if (!stopped[b]) {
        outs[b].push_back(next[b]);
        if (stops(opt, outs[b])) stopped[b] = 1;
      }
      all = all && stopped[b];
    }
    if (all || i + 1 == opt.max_new_tokens) break;
    if (cached && model.cache_len() < block) take_last(model.forward_cached(next.data(), B, 1), 1);
    else cached = false;  // the window slides from here on
  }
  return outs;
}

std::vector<int> generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt, Rng& rng) {
  check_options(opt);
  if (opt.beam_width > 1) return beam_generate(model, prompt, opt);
  return generate_batch(model, {prompt}, opt, rng)[0];
}

std::vector<int> beam_generate(Model& model, const std::vector<int>& prompt, const SampleOptions& opt) {
  check_options(opt);
  if (model.config().kind != ModelConfig::Kind::decoder) user_error("generate: the model is a {}, not a decoder", option_name(model.config().kind));
  if (prompt.empty()) user_error("generation needs a non-empty prompt");
  if (!model.has_cache()) user_error("beam search needs an attention variant with an incremental cache");
  const int W = opt.beam_width, V = model.vocab_size(), Lp = int(prompt.size()), block = model.context();
  if (Lp >= block) user_error("beam search: the prompt ({} tokens) leaves no room in block_size {}", Lp, block);
  std::vector<int> flat;
  for (int w = 0; w < W; w++) flat.insert(flat.end(), prompt.begin(), prompt.end());
  model.cache_reset(W, block);
  const float* lg = model.forward_cached(flat.data(), W, Lp);
  std::vector<float> first(size_t(W) * V);
  for (int w = 0; w < W; w++) std::copy_n(lg + (size_t(w) * Lp + Lp - 1) * V, V, first.begin() + size_t(w) * V);
  return beam_search(
      V, W, std::min(opt.max_new_tokens, block - Lp), first.data(), opt,
      [&](const std::vector<int>& t) { return model.forward_cached(t.data(), W, 1); },
      [&](const std::vector<int>& rows) { model.cache_reorder(rows); });
}

std::vector<int> beam_translate(Model& model, const std::vector<int>& src, int start_token, const SampleOptions& opt) {
  check_options(opt);
  if (model.config().kind != ModelConfig::Kind::encoder_decoder)
    user_error("translate: the model is a {}, not an encoder_decoder", option_name(model.config().kind));
  if (src.empty()) user_error("translate: empty source");
  if (!model.has_cache()) user_error("beam search needs an attention variant with an incremental cache");
  const int V = model.vocab_size(), block = model.context(), S = int(src.size()), W = opt.beam_width;
  if (S > block) user_error("source of {} tokens exceeds model.block_size {}", S, block);
  std::vector<int> srcs, lens(W, S), starts(W, start_token);
  for (int w = 0; w < W; w++) srcs.insert(srcs.end(), src.begin(), src.end());
  model.encode(srcs.data(), lens.data(), W, S);
  model.cache_reset(W, block);
  const float* lg = model.forward_cached(starts.data(), W, 1);
  return beam_search(
      V, W, std::min(opt.max_new_tokens, block), lg, opt,
      [&](const std::vector<int>& t) { return model.forward_cached(t.data(), W, 1); },
      [&](const std::vector<int>& rows) { model.cache_reorder(rows); });
}

std::vector<int> translate(Model& model, const std::vector<int>& src, int start_token, const SampleOptions& opt,
                           Rng& rng) {
  check_options(opt);
  if (model.config().kind != ModelConfig::Kind::encoder_decoder)
    user_error("translate: the model is a {}, not an encoder_decoder", option_name(model.config().kind));
  if (src.empty()) user_error("translate: empty source");
  const int V = model.vocab_size(), block = model.context(), S = int(src.size());
  if (S > block) user_error("source of {} tokens exceeds model.block_size {}", S, block);
  const int max_steps = std::min(opt.max_new_tokens, block);
  if (opt.beam_width > 1) return beam_translate(model, src, start_token, opt);
  std::vector<int> out;
  std::vector<float> banned;
  const bool cached = opt.use_cache && model.has_cache();
  const float* lg = nullptr;
  Batch batch;  // the uncached path: the whole target prefix every step
  if (cached) {
    const int len = S;
    model.encode(src.data(), &len, 1, S);
    model.cache_reset(1, block);
    lg = model.forward_cached(&start_token, 1, 1);
  } else {
    batch.B = 1, batch.S = S;
    batch.src = src;
    batch.src_len = {S};
    batch.x = {start_token};
  }
  for (int i = 0; i < max_steps; i++) {
    if (!cached) {
      batch.T = int(batch.x.size());
      model.forward(batch, false, nullptr);
      lg = model.logits() + size_t(batch.T - 1) * V;
    }
    const int next = sample_logits(allowed_logits(lg, 1, V, opt, banned), V, opt.temperature, opt.top_k, rng, opt.top_p);
    out.push_back(next);
    if (stops(opt, out) || i + 1 == max_steps) break;
    if (cached) lg = model.forward_cached(&next, 1, 1);
    else batch.x.push_back(next);
  }
  return out;
}

}  // namespace attnlab
