// Associative-recall tasks (docs/tasks.md), symbols tokenizer, sequences of exactly max_len tokens:
//
//   mqar    multi-query associative recall (Arora et al. 2024, "Zoology"). Vocabulary of
//           n = n_symbols ids: 0 = filler "_", keys 1..n/2-1 ("k1".."k{n/2-1}"), values
//           n/2..n-1 ("v{n/2}".."v{n-1}"). The sequence opens with n_pairs (key value) pairs
//           (distinct keys, distinct values), then filler; each key is queried once at a position
//           drawn uniformly without replacement from the filler part (queries may be adjacent).
//           labels[i] = the value of the key at query position i; -1 elsewhere. With
//           random_filler (data.filler random) every position that is neither a pair nor a query
//           holds a uniform id in 1..n-1 instead ("MQAR with random filler tokens"), so keys and
//           values also occur as noise; the pairs and queries are drawn as without it.
//   needle  the pairs are scattered among random filler tokens and ONE key is queried at the last
//           position ("MQAR with random filler tokens", needle in a haystack). Vocabulary:
//           filler 0..n/2-1 ("f0".."f{n/2-1}"), keys n/2..n/2+n/4-1 ("k.."), values the rest
//           ("v.."). The n_pairs (key value) bigrams take uniformly random non-overlapping places in
//           the first max_len-1 positions, every other place holds a uniform filler token; the last
//           position holds one of the pair keys (uniform) and its label is that key's value.
#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "data/task_gen.h"

namespace attnlab {

namespace {

// n (n-1) ... (n-k+1) as a double (inf past the range)
double falling(double n, int k) {
  double r = 1.0;
  for (int i = 0; i < k; ++i) r *= n - i;
  return r;
}
double choose(double n, int k) {
  double r = 1.0;
  for (int i = 0; i < k; ++i) r = r * (n - i) / (i + 1);
  return r;
}

class Mqar : public TaskGen {
 public:
  explicit Mqar(const TaskOptions& o) : o_(o), p_(o.n_pairs), L_(o.max_len) {
    const int n = o.n_symbols;
    n_keys_ = n / 2 - 1;
    if (p_ < 1) key_error({"data.n_pairs"}, "data.n_pairs must be at least 1 for task mqar, got {}", p_);
    if (n_keys_ < p_)
      key_error({"data.n_symbols", "data.n_pairs"}, "data.n_symbols = {} gives task mqar {} keys (ids 1..n/2-1), fewer than data.n_pairs = {}; "
                 "raise data.n_symbols to at least {}", n, n_keys_, p_, 2 * p_ + 2);
    if (L_ < 3 * p_ || L_ > kMaxLenLimit)
      key_error({"data.max_len", "data.n_pairs"}, "data.max_len (the mqar sequence length) must be in {}..{} for data.n_pairs = {} (the pairs "
                 "take 2 n_pairs tokens, the queries n_pairs more), got {}", 3 * p_, kMaxLenLimit, p_, L_);
    std::vector<std::string> names{"_"};
    for (int i = 1; i < n; ++i) names.push_back(fmt::format("{}{}", i < n / 2 ? 'k' : 'v', i));
    tok = Tokenizer::symbols(std::move(names));
    format = TaskFormat::labelled;
    pad = 0;
    max_in = L_;
    length_keys = "data.max_len";
  }
  void draw(Rng& rng, TaskExample& ex) const override {
    const int n = o_.n_symbols;
    std::vector<int> keys, vals, pos, scratch;
    sample_distinct(rng, n_keys_, p_, keys, scratch);
    sample_distinct(rng, n - n / 2, p_, vals, scratch);
    sample_distinct(rng, L_ - 2 * p_, p_, pos, scratch);
    ex = TaskExample{};
    ex.input.assign(size_t(L_), 0);
    ex.labels.assign(size_t(L_), -1);
    for (int i = 0; i < p_; ++i) {
      const int k = 1 + keys[size_t(i)], v = n / 2 + vals[size_t(i)], q = 2 * p_ + pos[size_t(i)];
      ex.input[size_t(2 * i)] = k;
      ex.input[size_t(2 * i + 1)] = v;
      ex.input[size_t(q)] = k;
      ex.labels[size_t(q)] = v;
    }
    if (o_.random_filler)
      for (int j = 2 * p_; j < L_; ++j)
        if (ex.labels[size_t(j)] < 0) ex.input[size_t(j)] = 1 + int(rng.below(uint64_t(n - 1)));
  }
  uint64_t space() const override {
    const int n = o_.n_symbols;
    const double noise = o_.random_filler ? std::pow(double(n - 1), double(L_ - 3 * p_)) : 1.0;
    return sat_from_double(falling(n_keys_, p_) * falling(n - n / 2, p_) * falling(L_ - 2 * p_, p_) * noise);
  }
  std::string describe() const override {
    return fmt::format("vocabulary {} ({}, keys 1..{}, values {}..{}), {} pairs, length {}", o_.n_symbols,
                       o_.random_filler ? fmt::format("random filler 1..{}", o_.n_symbols - 1) : "filler 0", n_keys_,
                       o_.n_symbols / 2, o_.n_symbols - 1, p_, L_);
  }

 private:
  TaskOptions o_;
  int p_, L_, n_keys_ = 0;
};

class Needle : public TaskGen {
 public:
  explicit Needle(const TaskOptions& o) : o_(o), p_(o.n_pairs), L_(o.max_len) {
    const int n = o.n_symbols;
    n_fill_ = n / 2;
    n_keys_ = n / 4;
    n_vals_ = n - n_fill_ - n_keys_;
    if (p_ < 1) key_error({"data.n_pairs"}, "data.n_pairs must be at least 1 for task needle, got {}", p_);
    if (n_keys_ < p_)
      key_error({"data.n_symbols", "data.n_pairs"}, "data.n_symbols = {} gives task needle {} keys (a quarter of the vocabulary), fewer than "
                 "data.n_pairs = {}; raise data.n_symbols to at least {}", n, n_keys_, p_, 4 * p_);
    if (L_ < 2 * p_ + 1 || L_ > kMaxLenLimit)
      key_error({"data.max_len", "data.n_pairs"}, "data.max_len (the needle sequence length) must be in {}..{} for data.n_pairs = {} (the pairs "
                 "take 2 n_pairs tokens, the query one more), got {}", 2 * p_ + 1, kMaxLenLimit, p_, L_);
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i)
      names.push_back(i < n_fill_ ? fmt::format("f{}", i) : fmt::format("{}{}", i < n_fill_ + n_keys_ ? 'k' : 'v', i));
    tok = Tokenizer::symbols(std::move(names));
    format = TaskFormat::labelled;
    pad = 0;
    max_in = L_;
    length_keys = "data.max_len";
  }
  void draw(Rng& rng, TaskExample& ex) const override {
    std::vector<int> keys, vals, blocks, scratch;
    sample_distinct(rng, n_keys_, p_, keys, scratch);
    sample_distinct(rng, n_vals_, p_, vals, scratch);
    // L-1 places hold p blocks of 2 and L-1-2p fillers: L-1-p items, of which p are blocks
    const int items = L_ - 1 - p_;
    sample_distinct(rng, items, p_, blocks, scratch);
    std::vector<int> pair_at(size_t(items), -1);
    for (int i = 0; i < p_; ++i) pair_at[size_t(blocks[size_t(i)])] = i;
    ex = TaskExample{};
    ex.input.reserve(size_t(L_));
    for (int it = 0; it < items; ++it) {
      const int i = pair_at[size_t(it)];
      if (i < 0) {
        ex.input.push_back(int(rng.below(uint64_t(n_fill_))));
      } else {
        ex.input.push_back(n_fill_ + keys[size_t(i)]);
        ex.input.push_back(n_fill_ + n_keys_ + vals[size_t(i)]);
      }
    }
    const int q = int(rng.below(uint64_t(p_)));
    ex.input.push_back(n_fill_ + keys[size_t(q)]);
    ex.labels.assign(size_t(L_), -1);
    ex.labels[size_t(L_ - 1)] = n_fill_ + n_keys_ + vals[size_t(q)];
  }
  uint64_t space() const override {
    return sat_from_double(falling(n_keys_, p_) * falling(n_vals_, p_) * choose(L_ - 1 - p_, p_) *
                           std::pow(double(n_fill_), L_ - 1 - 2 * p_) * p_);
  }
  std::string describe() const override {
    return fmt::format("vocabulary {} (filler 0..{}, keys {}..{}, values {}..{}), {} pairs, length {}", o_.n_symbols,
                       n_fill_ - 1, n_fill_, n_fill_ + n_keys_ - 1, n_fill_ + n_keys_, o_.n_symbols - 1, p_, L_);
  }

 private:
  TaskOptions o_;
  int p_, L_, n_fill_ = 0, n_keys_ = 0, n_vals_ = 0;
};

}  // namespace

std::unique_ptr<TaskGen> make_recall_task(const TaskOptions& o) {
  if (o.name == "mqar") return std::make_unique<Mqar>(o);
  if (o.name == "needle") return std::make_unique<Needle>(o);
  return nullptr;
}

}  // namespace attnlab
