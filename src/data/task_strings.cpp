// Tasks over random strings of a small alphabet (docs/tasks.md):
//
//   copy / reverse / sort  x -> x, reverse(x), sorted(x)             (seq2seq)
//   induction              s s: at position L+j of the second copy predict s[j+1]
//                          (Olsson et al. 2022, "induction heads")  (labelled)
//   parity                 bits -> (number of 1s) mod 2             (classify)
//   balanced_parens        '(' ')' string -> 1 if balanced           (classify)
//
// Lengths are uniform in [min_len, max_len] (balanced_parens: uniform over the even lengths),
// symbols uniform. Alphabets of up to 26 symbols are the letters a..z (chars tokenizer), larger
// ones the symbols s0..s{n-1} (symbols tokenizer).
//
// balanced_parens draws a balanced string with probability 1/2, uniformly among the balanced
// strings of its length (cycle lemma: a uniform arrangement of n '(' and n+1 ')' has exactly one
// rotation whose proper prefixes never go below zero; that rotation minus its last ')' is a
// uniform Dyck word). Otherwise it corrupts such a string so it is hard to tell apart: flip one
// bracket (the counts then differ), or swap a '(' with a ')' (counts stay equal; redrawn until the
// result is unbalanced).
#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "data/task_gen.h"

namespace attnlab {

namespace {

// The alphabet of the symbol tasks: ids of symbol 0..n-1 in `sym`, plus the task's extra tokens.
struct Alphabet {
  Tokenizer tok;
  int first = 0;  // id of symbol 0; symbols are consecutive ids
};

// chars: `prefix` then a..z[:n]; symbols: s0..s{n-1} then `specials` (the same roles as prefix).
Alphabet make_alphabet(int n, const std::string& prefix, const std::vector<std::string>& specials) {
  Alphabet a;
  if (n <= 26) {
    std::string v = prefix;
    for (int i = 0; i < n; ++i) v.push_back(char('a' + i));
    a.tok = Tokenizer::from_vocab(v);
    a.first = int(prefix.size());
  } else {
    std::vector<std::string> names;
    for (int i = 0; i < n; ++i) names.push_back(fmt::format("s{}", i));
    a.tok = Tokenizer::symbols(std::move(names));
    for (const auto& s : specials) a.tok.add_special(s);
    a.first = 0;
  }
  return a;
}

// Calls f(s) for every string over [first, first+n) with length in [lo, hi] (step `step`).
template <typename F>
void for_each_string(int first, int n, int lo, int hi, int step, F&& f) {
  for (int L = lo; L <= hi; L += step) {
    std::vector<int> s(size_t(L), first);
    while (true) {
      f(s);
      int k = L - 1;
      while (k >= 0 && s[size_t(k)] == first + n - 1) s[size_t(k--)] = first;
      if (k < 0) break;
      ++s[size_t(k)];
    }
  }
}

void check_symbols(const TaskOptions& o, int lo, int hi) {
  if (o.n_symbols < lo || o.n_symbols > hi)
    key_error({"data.n_symbols"}, "data.n_symbols must be in {}..{} for task '{}', got {}", lo, hi, o.name, o.n_symbols);
}

// ---------------------------------------------------------------- copy / reverse / sort

class Transduce : public TaskGen {
 public:
  explicit Transduce(const TaskOptions& o) : o_(o) {
    check_symbols(o, 2, 65536);
    check_lengths(o, o.name, 1, kMaxLenLimit);
    const Alphabet a = make_alphabet(o.n_symbols, ".=", {"<sep>", "<end>"});
    tok = a.tok;
    first_ = a.first;
    format = TaskFormat::seq2seq;
    sep = o.n_symbols <= 26 ? tok.id('=') : tok.find("<sep>");
    end = o.n_symbols <= 26 ? tok.id('.') : tok.find("<end>");
    pad = end;
    max_in = max_out = o.max_len;
    length_keys = "data.max_len";
  }

  void draw(Rng& rng, TaskExample& ex) const override {
    const int L = o_.min_len + int(rng.below(uint64_t(o_.max_len - o_.min_len + 1)));
    ex = TaskExample{};
    ex.input.resize(size_t(L));
    for (auto& t : ex.input) t = first_ + int(rng.below(uint64_t(o_.n_symbols)));
    ex.output = transform(ex.input);
  }
  uint64_t space() const override { return sum_of_powers(uint64_t(o_.n_symbols), o_.min_len, o_.max_len); }
  bool enumerable() const override { return true; }
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for_each_string(first_, o_.n_symbols, o_.min_len, o_.max_len, 1, [&](const std::vector<int>& s) {
      ex.input = s;
      ex.output = transform(s);
      f(ex);
    });
  }
  std::vector<int> answer(const std::vector<int>& input) const override {
    const int L = int(input.size());
    if (L < o_.min_len || L > o_.max_len)
      user_error("task {}: an input has {} tokens, expected {}..{}", o_.name, L, o_.min_len, o_.max_len);
    for (int t : input)
      if (t < first_ || t >= first_ + o_.n_symbols)
        user_error("task {}: token id {} is not a symbol of the alphabet", o_.name, t);
    return transform(input);
  }
  std::string describe() const override {
    return fmt::format("{} symbols, input length {}..{}", o_.n_symbols, o_.min_len, o_.max_len);
  }

 private:
  std::vector<int> transform(const std::vector<int>& in) const {
    std::vector<int> out = in;
    if (o_.name == "reverse") std::reverse(out.begin(), out.end());
    if (o_.name == "sort") std::sort(out.begin(), out.end());  // symbol ids follow the alphabet
    return out;
  }
  TaskOptions o_;
  int first_ = 0;
};

// ---------------------------------------------------------------- induction

class Induction : public TaskGen {
 public:
  explicit Induction(const TaskOptions& o) : o_(o) {
    check_symbols(o, 2, 65536);
    check_lengths(o, o.name, 2, kMaxLenLimit / 2);
    const Alphabet a = make_alphabet(o.n_symbols, ".", {"<pad>"});
    tok = a.tok;
    first_ = a.first;
    format = TaskFormat::labelled;
    pad = o.n_symbols <= 26 ? tok.id('.') : tok.find("<pad>");
    max_in = 2 * o.max_len;
    length_keys = "data.max_len";
  }

  void draw(Rng& rng, TaskExample& ex) const override {
    const int L = o_.min_len + int(rng.below(uint64_t(o_.max_len - o_.min_len + 1)));
    std::vector<int> s(static_cast<size_t>(L));
    for (auto& t : s) t = first_ + int(rng.below(uint64_t(o_.n_symbols)));
    fill(s, ex);
  }
  uint64_t space() const override { return sum_of_powers(uint64_t(o_.n_symbols), o_.min_len, o_.max_len); }
  bool enumerable() const override { return true; }
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for_each_string(first_, o_.n_symbols, o_.min_len, o_.max_len, 1, [&](const std::vector<int>& s) {
      fill(s, ex);
      f(ex);
    });
  }
  std::string describe() const override {
    return fmt::format("{} symbols, first copy length {}..{}", o_.n_symbols, o_.min_len, o_.max_len);
  }

 private:
  static void fill(const std::vector<int>& s, TaskExample& ex) {
    const size_t L = s.size();
    ex = TaskExample{};
    ex.input = s;
    ex.input.insert(ex.input.end(), s.begin(), s.end());
    ex.labels.assign(2 * L, -1);
    for (size_t j = 0; j + 1 < L; ++j) ex.labels[L + j] = s[j + 1];
  }
  TaskOptions o_;
  int first_ = 0;
};

// ---------------------------------------------------------------- parity / balanced_parens

class Parity : public TaskGen {
 public:
  explicit Parity(const TaskOptions& o) : o_(o) {
    check_lengths(o, o.name, 1, kMaxLenLimit);
    tok = Tokenizer::from_vocab("01");
    sep = tok.add_special("<cls>");
    pad = tok.add_special("<pad>");
    format = TaskFormat::classify;
    n_classes = 2;
    max_in = o.max_len;
    length_keys = "data.max_len";
  }
  void draw(Rng& rng, TaskExample& ex) const override {
    const int L = o_.min_len + int(rng.below(uint64_t(o_.max_len - o_.min_len + 1)));
    ex = TaskExample{};
    ex.input.resize(size_t(L));
    for (auto& t : ex.input) t = int(rng.below(2));  // ids 0/1 are '0'/'1'
    label(ex);
  }
  uint64_t space() const override { return sum_of_powers(2, o_.min_len, o_.max_len); }
  bool enumerable() const override { return true; }
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for_each_string(0, 2, o_.min_len, o_.max_len, 1, [&](const std::vector<int>& s) {
      ex.input = s;
      label(ex);
      f(ex);
    });
  }
  std::string describe() const override { return fmt::format("bit strings of length {}..{}", o_.min_len, o_.max_len); }

 private:
  static void label(TaskExample& ex) {
    int ones = 0;
    for (int t : ex.input) ones += t;
    ex.cls = ones % 2;
  }
  TaskOptions o_;
};

class BalancedParens : public TaskGen {
 public:
  explicit BalancedParens(const TaskOptions& o) : o_(o) {
    check_lengths(o, o.name, 1, kMaxLenLimit);
    lo_ = o.min_len + (o.min_len % 2);
    hi_ = o.max_len - (o.max_len % 2);
    if (lo_ < 2) lo_ = 2;
    if (lo_ > hi_)
      key_error({"data.max_len", "data.min_len"}, "task balanced_parens needs an even length of at least 2 in data.min_len..data.max_len, got {}..{}",
                 o.min_len, o.max_len);
    tok = Tokenizer::from_vocab("()");
    sep = tok.add_special("<cls>");
    pad = tok.add_special("<pad>");
    format = TaskFormat::classify;
    n_classes = 2;
    max_in = hi_;
    length_keys = "data.max_len";
  }

  void draw(Rng& rng, TaskExample& ex) const override {
    const int L = lo_ + 2 * int(rng.below(uint64_t((hi_ - lo_) / 2 + 1)));
    ex = TaskExample{};
    dyck(rng, L / 2, ex.input);
    if (rng.below(2) == 1) {  // the unbalanced half
      auto& s = ex.input;
      if (rng.below(2) == 0) {
        s[size_t(rng.below(s.size()))] ^= 1;  // flip one bracket: ids 0/1 are '('/')'
      } else {
        std::vector<size_t> open, close;
        for (size_t i = 0; i < s.size(); ++i) (s[i] == 0 ? open : close).push_back(i);
        for (int tries = 0; tries < 64 && balanced(s); ++tries) {
          const size_t i = open[size_t(rng.below(open.size()))], j = close[size_t(rng.below(close.size()))];
          std::swap(s[i], s[j]);
          if (balanced(s)) std::swap(s[i], s[j]);  // undo and redraw the pair
        }
        if (balanced(s)) std::swap(s.front(), s.back());  // s = "(...)": now it starts with ')'
      }
    }
    ex.cls = balanced(ex.input) ? 1 : 0;
  }
  uint64_t space() const override { return sum_of_powers(2, lo_, hi_, 2); }
  bool enumerable() const override { return true; }
  void enumerate(const std::function<void(const TaskExample&)>& f) const override {
    TaskExample ex;
    for_each_string(0, 2, lo_, hi_, 2, [&](const std::vector<int>& s) {
      ex.input = s;
      ex.cls = balanced(s) ? 1 : 0;
      f(ex);
    });
  }
  int stratum(const TaskExample& ex) const override { return 2 * int(ex.input.size()) + ex.cls; }
  std::string describe() const override {
    return fmt::format("bracket strings of even length {}..{}, about half balanced", lo_, hi_);
  }

 private:
  static bool balanced(const std::vector<int>& s) {
    int depth = 0;
    for (int t : s) {
      depth += t == 0 ? 1 : -1;
      if (depth < 0) return false;
    }
    return depth == 0;
  }
  // A uniform balanced string of n pairs (cycle lemma, see the file comment).
  static void dyck(Rng& rng, int n, std::vector<int>& out) {
    std::vector<int> s(size_t(2 * n + 1), 1);  // n '(' (id 0, +1) and n+1 ')' (id 1, -1)
    for (int i = 0; i < n; ++i) s[size_t(i)] = 0;
    for (size_t i = s.size() - 1; i > 0; --i) std::swap(s[i], s[size_t(rng.below(i + 1))]);
    int sum = 0, best = 1, at = 0;  // first k >= 1 where the prefix sum P_k is smallest
    for (size_t k = 0; k < s.size(); ++k) {
      sum += s[k] == 0 ? 1 : -1;
      if (sum < best) best = sum, at = int(k) + 1;
    }
    out.clear();
    for (size_t k = 0; k + 1 < s.size(); ++k) out.push_back(s[(size_t(at) + k) % s.size()]);
  }
  TaskOptions o_;
  int lo_ = 2, hi_ = 2;
};

}  // namespace

void check_lengths(const TaskOptions& o, const std::string& task, int min_allowed, int max_allowed) {
  if (o.min_len < min_allowed)
    key_error({"data.min_len"}, "data.min_len must be at least {} for task '{}', got {}", min_allowed, task, o.min_len);
  if (o.max_len < o.min_len)
    key_error({"data.max_len", "data.min_len"}, "data.max_len ({}) must be at least data.min_len ({})", o.max_len, o.min_len);
  if (o.max_len > max_allowed)
    key_error({"data.max_len"}, "data.max_len must be at most {} for task '{}', got {}", max_allowed, task, o.max_len);
}

void sample_distinct(Rng& rng, int n, int k, std::vector<int>& out, std::vector<int>& scratch) {
  scratch.resize(size_t(n));
  for (int i = 0; i < n; ++i) scratch[size_t(i)] = i;
  out.resize(size_t(k));
  for (int i = 0; i < k; ++i) {
    const int j = i + int(rng.below(uint64_t(n - i)));
    std::swap(scratch[size_t(i)], scratch[size_t(j)]);
    out[size_t(i)] = scratch[size_t(i)];
  }
}

std::unique_ptr<TaskGen> make_string_task(const TaskOptions& o) {
  if (o.name == "copy" || o.name == "reverse" || o.name == "sort") return std::make_unique<Transduce>(o);
  if (o.name == "induction") return std::make_unique<Induction>(o);
  if (o.name == "parity") return std::make_unique<Parity>(o);
  if (o.name == "balanced_parens") return std::make_unique<BalancedParens>(o);
  return nullptr;
}

}  // namespace attnlab
