// Synthetic sequence tasks (see tasks.h).
//
// Train/val disjointness: an input is val iff mix(FNV-1a(seed, input)) maps
// below val_fraction in [0,1). The train stream rejects val inputs; the val
// set is n_val distinct val inputs drawn from a generator derived from the
// seed alone. When the input space is small enough to enumerate
// (<= 2^22 inputs) the val share is counted exactly; otherwise its size is
// estimated as val_fraction * |space|, and n_val may use at most a quarter of
// it so that drawing distinct val inputs by rejection stays fast.
#include "data/tasks.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.h"

namespace attnlab {

namespace {

constexpr uint64_t kSpaceCap = uint64_t(1) << 62;   // input-space sizes saturate here
constexpr uint64_t kEnumLimit = uint64_t(1) << 22;  // spaces up to this size are enumerated
constexpr int kMaxLenLimit = 4096;                  // keeps 2*max_len+2 and the space loop sane
constexpr uint64_t kValStream = 0x76616c5f736574ull;  // "val_set": Rng stream of the val set

// Number of inputs: sum over L in [min_len, max_len] of n^L, saturating at kSpaceCap.
uint64_t input_space_size(int n, int min_len, int max_len) {
  uint64_t total = 0, p = 1;
  for (int L = 1; L <= max_len; ++L) {
    p = p > kSpaceCap / uint64_t(n) ? kSpaceCap : p * uint64_t(n);
    if (L >= min_len) total = total > kSpaceCap - p ? kSpaceCap : total + p;
    if (total >= kSpaceCap) return kSpaceCap;
  }
  return total;
}

std::string show_space(uint64_t s) {
  return s >= kSpaceCap ? std::string("more than 4.6e18") : fmt::format("{}", s);
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a over the 8 seed bytes then the input bytes, then a finalizer so the top bits are well mixed.
uint64_t input_hash(const std::string& input, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull;
  constexpr uint64_t prime = 0x100000001b3ull;
  for (int i = 0; i < 8; ++i) {
    h ^= (seed >> (8 * i)) & 0xff;
    h *= prime;
  }
  for (char c : input) {
    h ^= uint8_t(c);
    h *= prime;
  }
  return mix64(h);
}

bool in_val_bucket(const std::string& input, uint64_t seed, double val_fraction) {
  const double u = double(input_hash(input, seed) >> 11) * (1.0 / 9007199254740992.0);  // [0,1)
  return u < val_fraction;
}

// Length uniform in [min_len, max_len], then each symbol uniform.
std::string draw_input(const TaskOptions& o, Rng& rng) {
  const int L = o.min_len + int(rng.below(uint64_t(o.max_len - o.min_len + 1)));
  std::string s(size_t(L), 'a');
  for (auto& c : s) c = char('a' + int(rng.below(uint64_t(o.n_symbols))));
  return s;
}

// Calls f(s) for every input (lengths min_len..max_len, lexicographic within a length).
template <typename F>
void for_each_input(const TaskOptions& o, F&& f) {
  const char last = char('a' + o.n_symbols - 1);
  for (int L = o.min_len; L <= o.max_len; ++L) {
    std::string s(size_t(L), 'a');
    while (true) {
      f(s);
      int k = L - 1;
      while (k >= 0 && s[size_t(k)] == last) s[size_t(k--)] = 'a';
      if (k < 0) break;
      ++s[size_t(k)];
    }
  }
}

}  // namespace

TaskDataset::TaskDataset(const TaskOptions& opt) : opt_(opt) {
  const auto& o = opt_;
  if (o.name != "reverse" && o.name != "sort")
    user_error("task option name: unknown task '{}' (expected reverse or sort)", o.name);
  if (o.n_symbols < 2 || o.n_symbols > 26)
    user_error("task option n_symbols must be in 2..26, got {}", o.n_symbols);
  if (o.min_len < 1) user_error("task option min_len must be at least 1, got {}", o.min_len);
  if (o.max_len < o.min_len)
    user_error("task option max_len ({}) must be at least min_len ({})", o.max_len, o.min_len);
  if (o.max_len > kMaxLenLimit)
    user_error("task option max_len must be at most {}, got {}", kMaxLenLimit, o.max_len);
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0))
    user_error("task option val_fraction must be in (0, 1), got {}", o.val_fraction);
  if (o.n_val < 1) user_error("task option n_val must be at least 1, got {}", o.n_val);

  std::string vocab = ".=";
  for (int i = 0; i < o.n_symbols; ++i) vocab.push_back(char('a' + i));
  tok_ = Tokenizer::from_vocab(vocab);

  const uint64_t space = input_space_size(o.n_symbols, o.min_len, o.max_len);
  const uint64_t n_val = uint64_t(o.n_val);
  const auto space_desc = [&] {
    return fmt::format("{} symbols, lengths {}..{}: {} inputs", o.n_symbols, o.min_len, o.max_len,
                       show_space(space));
  };
  bool by_enumeration = false;
  if (space <= kEnumLimit) {
    uint64_t val_count = 0;
    for_each_input(o, [&](const std::string& s) { val_count += in_val_bucket(s, o.seed, o.val_fraction); });
    if (n_val > val_count)
      user_error(
          "task option n_val = {} is larger than the val share of the input space: val_fraction {} of "
          "the input space ({}) holds only {} inputs; lower n_val or raise val_fraction, n_symbols or "
          "max_len",
          o.n_val, o.val_fraction, space_desc(), val_count);
    if (val_count == space)
      user_error(
          "task option val_fraction = {} leaves no train inputs ({}, all in val); lower val_fraction "
          "or enlarge the task",
          o.val_fraction, space_desc());
    by_enumeration = 4 * n_val > val_count;  // rejection sampling would crawl: pick from the list
  } else {
    const double expected_val = o.val_fraction * double(space);
    const double expected_train = (1.0 - o.val_fraction) * double(space);
    if (4.0 * double(n_val) > expected_val)
      user_error(
          "task option n_val = {} is too large for the val share of the input space: val_fraction {} of "
          "the input space ({}) is about {:.0f} inputs, and n_val may be at most a quarter of that; "
          "lower n_val or raise val_fraction",
          o.n_val, o.val_fraction, space_desc(), expected_val);
    if (expected_train < 1000.0)
      user_error(
          "task option val_fraction = {} leaves almost no train inputs (about {:.0f} of {}); lower "
          "val_fraction",
          o.val_fraction, expected_train, space_desc());
  }

  Rng r = Rng(o.seed).fork(kValStream);
  val_.reserve(size_t(n_val));
  if (by_enumeration) {
    // Distinct val inputs without replacement: a length uniformly among those with inputs left,
    // then an input of that length uniformly (the same shape as the train distribution).
    std::vector<std::vector<std::string>> by_len(size_t(o.max_len - o.min_len + 1));
    for_each_input(o, [&](const std::string& s) {
      if (in_val_bucket(s, o.seed, o.val_fraction)) by_len[s.size() - size_t(o.min_len)].push_back(s);
    });
    std::vector<size_t> open;
    for (size_t i = 0; i < by_len.size(); ++i)
      if (!by_len[i].empty()) open.push_back(i);
    while (val_.size() < size_t(n_val)) {
      const size_t k = size_t(r.below(open.size()));
      auto& bucket = by_len[open[k]];
      const size_t j = size_t(r.below(bucket.size()));
      std::string s = std::move(bucket[j]);
      bucket[j] = std::move(bucket.back());
      bucket.pop_back();
      if (bucket.empty()) {
        open[k] = open.back();
        open.pop_back();
      }
      TaskExample ex{s, answer(s)};
      val_.push_back(std::move(ex));
    }
  } else {
    std::unordered_set<std::string> seen;
    seen.reserve(size_t(n_val) * 2);
    while (val_.size() < size_t(n_val)) {
      std::string s = draw_input(o, r);
      if (!in_val_bucket(s, o.seed, o.val_fraction) || !seen.insert(s).second) continue;
      TaskExample ex{s, answer(s)};
      val_.push_back(std::move(ex));
    }
  }
}

bool TaskDataset::is_val_input(const std::string& input) const {
  return in_val_bucket(input, opt_.seed, opt_.val_fraction);
}

std::string TaskDataset::answer(const std::string& input) const {
  std::string out = input;
  if (opt_.name == "sort")
    std::sort(out.begin(), out.end());
  else
    std::reverse(out.begin(), out.end());
  return out;
}

TaskExample TaskDataset::sample_train(Rng& rng) const {
  while (true) {
    std::string s = draw_input(opt_, rng);
    if (is_val_input(s)) continue;  // redraw length and symbols
    TaskExample ex{s, answer(s)};
    return ex;
  }
}

void TaskDataset::next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const {
  ATTNLAB_CHECK(B >= 1 && T >= 1);
  const int need = max_example_len() - 1;
  if (T < need)
    user_error(
        "context too short for task {}: block_size {} < {} (examples are input '=' output '.', up to "
        "2*max_len+2 = {} tokens, and the model sees all but the last); raise block_size or lower "
        "max_len",
        opt_.name, T, need, max_example_len());

  batch.B = B;
  batch.T = T;
  batch.x.resize(size_t(B) * size_t(T));
  batch.y.resize(size_t(B) * size_t(T));
  const int pad = tok_.id('.');
  for (int b = 0; b < B; ++b) {
    const TaskExample ex = split == Split::train ? sample_train(rng) : val_[size_t(rng.below(val_.size()))];
    const std::string text = ex.text();
    const int n = int(text.size()) - 1;  // positions used
    const int n_in = int(ex.input.size());
    int* x = batch.x.data() + size_t(b) * size_t(T);
    int* y = batch.y.data() + size_t(b) * size_t(T);
    for (int i = 0; i < n; ++i) {
      x[i] = tok_.id(text[size_t(i)]);
      // target text[i+1]: input chars (i+1 < n_in) and '=' (i+1 == n_in) carry no loss
      y[i] = i >= n_in ? tok_.id(text[size_t(i) + 1]) : -1;
    }
    for (int i = n; i < T; ++i) {
      x[i] = pad;
      y[i] = -1;
    }
  }
}

std::string TaskDataset::describe() const {
  const uint64_t space = input_space_size(opt_.n_symbols, opt_.min_len, opt_.max_len);
  return fmt::format(
      "task {}: {} symbols, input length {}..{}, {} possible inputs, val_fraction {}, {} val examples, "
      "vocab {}, examples up to {} tokens, seed {}",
      opt_.name, opt_.n_symbols, opt_.min_len, opt_.max_len, show_space(space), opt_.val_fraction,
      val_.size(), tok_.size(), max_example_len(), opt_.seed);
}

}  // namespace attnlab
