// Tests for src/data/tasks*: every synthetic task's determinism, split disjointness, labels
// (recomputed here independently of the generators), batch layouts for each model kind, and the
// user errors (kind mismatch, block_size, options).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"

using namespace attnlab;

namespace {

// Small but non-trivial options for each task (n_val 64 everywhere).
TaskOptions opts(const std::string& name) {
  TaskOptions o;
  o.name = name;
  o.n_symbols = 6;
  o.min_len = 3;
  o.max_len = 6;
  o.val_fraction = 0.1;
  o.n_val = 64;
  o.seed = 99;
  if (name == "addition") o.n_digits = 2;
  if (name == "mqar") o.n_symbols = 64, o.n_pairs = 4, o.max_len = 24;
  if (name == "needle") o.n_symbols = 64, o.n_pairs = 3, o.max_len = 20;
  if (name == "induction") o.n_symbols = 8;
  if (name == "parity") o.min_len = 6, o.max_len = 12;
  if (name == "balanced_parens") o.min_len = 6, o.max_len = 14;
  return o;
}

const std::string& first_kind(const std::string& name) {
  static std::map<std::string, std::string> k;
  if (!k.count(name)) k[name] = TaskDataset::kinds_for(name).front();
  return k[name];
}

TaskDataset make(const std::string& name, const std::string& kind = "", int block_size = 4096) {
  return TaskDataset(opts(name), kind.empty() ? first_kind(name) : kind, block_size);
}

bool same(const TaskExample& a, const TaskExample& b) {
  return a.input == b.input && a.output == b.output && a.labels == b.labels && a.cls == b.cls;
}

std::string key(const std::vector<int>& v) {
  std::string s;
  for (int t : v) s += std::to_string(t) + ",";
  return s;
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string t; in >> t;) w.push_back(t);
  return w;
}

// ---- independent date parsing (format by format) and the weekday from std::chrono

const char* kMonthNames[12] = {"january", "february", "march",     "april",   "may",      "june",
                               "july",    "august",   "september", "october", "november", "december"};
const char* kDayNames[7] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};  // c_encoding

int month_of(const std::string& w, bool abbrev) {
  for (int m = 0; m < 12; ++m)
    if (abbrev ? w == std::string(kMonthNames[m]).substr(0, 3) : w == kMonthNames[m]) return m + 1;
  return 0;
}

std::string day_name(int y, int m, int d, bool abbrev) {
  using namespace std::chrono;
  const weekday wd{sys_days{year{y} / month{unsigned(m)} / day{unsigned(d)}}};
  const std::string n = kDayNames[wd.c_encoding()];
  return abbrev ? n.substr(0, 3) : n;
}

std::string suffix(int d) {
  if (d >= 11 && d <= 13) return "th";
  return d % 10 == 1 ? "st" : d % 10 == 2 ? "nd" : d % 10 == 3 ? "rd" : "th";
}

// Returns "yyyy-mm-dd" for a date text in any of the task's formats and checks it; "" if unparsable.
std::string parse_date(const std::string& s, int* format_seen) {
  int y = 0, m = 0, d = 0, fmt = -1;
  char tail[8];
  const auto w = words(s);
  if (s.find('/') != std::string::npos) {
    int yy = 0;
    if (std::sscanf(s.c_str(), "%d/%d/%d%1s", &m, &d, &yy, tail) != 3 || s.size() - s.rfind('/') != 3) return "";
    y = yy < 50 ? 2000 + yy : 1900 + yy;
    fmt = 1;
  } else if (s.find('.') != std::string::npos) {
    if (std::sscanf(s.c_str(), "%d.%d.%d%1s", &d, &m, &y, tail) != 3 || s.size() != 10 || s[2] != '.') return "";
    fmt = 3;
  } else if (w.size() == 5 && w[0] == "the" && w[2] == "of") {
    d = std::atoi(w[1].c_str());
    if (w[1] != std::to_string(d) + suffix(d)) return "";
    m = month_of(w[3], false);
    y = std::atoi(w[4].c_str());
    fmt = 5;
  } else if (w.size() == 4 && w[0].size() == 4 && w[0][3] == ',') {
    d = std::atoi(w[1].c_str());
    m = month_of(w[2], true);
    y = std::atoi(w[3].c_str());
    if (w[0].substr(0, 3) != day_name(y, m, d, true)) return "";
    fmt = 4;
  } else if (w.size() == 4) {
    d = std::atoi(w[1].c_str());
    m = month_of(w[2], false);
    y = std::atoi(w[3].c_str());
    if (w[0] != day_name(y, m, d, false)) return "";
    fmt = 0;
  } else if (w.size() == 3 && w[1].back() == ',') {
    m = month_of(w[0], false);
    d = std::atoi(w[1].c_str());
    y = std::atoi(w[2].c_str());
    fmt = 2;
  } else {
    return "";
  }
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{unsigned(m)}, day{unsigned(d)}};
  if (m < 1 || !ymd.ok() || y < 1950 || y > 2049) return "";
  if (format_seen) *format_seen = fmt;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, d);
  return buf;
}

bool balanced(const std::string& s) {
  int depth = 0;
  for (char c : s) {
    depth += c == '(' ? 1 : -1;
    if (depth < 0) return false;
  }
  return depth == 0;
}

// Checks one example of `ds` against the task's definition, recomputed here.
void check_example(const TaskDataset& ds, const TaskExample& ex) {
  const std::string& name = ds.name();
  const TaskOptions& o = ds.options();
  const Tokenizer& tok = ds.tokenizer();
  const std::string in = ds.show(ex.input);
  for (int t : ex.input) REQUIRE((t >= 0 && t < tok.size()));
  if (ds.format() == TaskFormat::seq2seq) {
    REQUIRE(ex.labels.empty());
    CHECK(ds.answer(ex.input) == ex.output);
  }
  if (ds.format() != TaskFormat::labelled) CHECK(ex.labels.empty());
  const std::string out = ds.show(ex.output);
  if (name == "copy" || name == "reverse" || name == "sort") {
    REQUIRE(int(in.size()) >= o.min_len);
    REQUIRE(int(in.size()) <= o.max_len);
    for (char c : in) CHECK((c >= 'a' && c < 'a' + o.n_symbols));
    std::string want = in;
    if (name == "reverse") std::reverse(want.begin(), want.end());
    if (name == "sort") std::sort(want.begin(), want.end());
    CHECK(out == want);
  } else if (name == "addition") {
    const size_t plus = in.find('+');
    REQUIRE(plus != std::string::npos);
    const std::string a = in.substr(0, plus), b = in.substr(plus + 1);
    for (const std::string& p : {a, b}) {
      REQUIRE(!p.empty());
      CHECK(int(p.size()) <= o.n_digits);
      CHECK(p.find_first_not_of("0123456789") == std::string::npos);
      CHECK((p.size() == 1 || p[0] != '0'));  // no leading zeros
    }
    CHECK(out == std::to_string(std::stoull(a) + std::stoull(b)));
  } else if (name == "dates") {
    CHECK(parse_date(in, nullptr) == out);
  } else if (name == "mqar") {
    const int n = o.n_symbols, p = o.n_pairs;
    REQUIRE(int(ex.input.size()) == o.max_len);
    REQUIRE(ex.labels.size() == ex.input.size());
    std::map<int, int> value_of;
    std::set<int> values;
    for (int i = 0; i < p; ++i) {
      const int k = ex.input[size_t(2 * i)], v = ex.input[size_t(2 * i + 1)];
      CHECK((k >= 1 && k < n / 2));
      CHECK((v >= n / 2 && v < n));
      CHECK(value_of.count(k) == 0);
      CHECK(values.count(v) == 0);
      value_of[k] = v;
      values.insert(v);
      CHECK(ex.labels[size_t(2 * i)] == -1);
      CHECK(ex.labels[size_t(2 * i + 1)] == -1);
    }
    std::map<int, int> queried;
    for (int i = 2 * p; i < o.max_len; ++i) {
      const int t = ex.input[size_t(i)];
      if (t == 0) {
        CHECK(ex.labels[size_t(i)] == -1);
        continue;
      }
      REQUIRE(value_of.count(t) == 1);
      ++queried[t];
      CHECK(ex.labels[size_t(i)] == value_of[t]);
    }
    CHECK(int(queried.size()) == p);
    for (auto& [k, c] : queried) CHECK(c == 1);
  } else if (name == "needle") {
    const int n = o.n_symbols, L = o.max_len;
    const int nf = n / 2, nk = n / 4;
    REQUIRE(int(ex.input.size()) == L);
    REQUIRE(int(ex.labels.size()) == L);
    for (int i = 0; i + 1 < L; ++i) CHECK(ex.labels[size_t(i)] == -1);
    std::map<int, int> value_of;
    for (int i = 0; i + 1 < L; ++i) {
      const int t = ex.input[size_t(i)];
      if (t < nf) continue;  // random filler
      REQUIRE(t < nf + nk);  // a key, followed by its value
      REQUIRE(i + 2 < L);
      const int v = ex.input[size_t(i + 1)];
      CHECK(v >= nf + nk);
      CHECK(value_of.count(t) == 0);
      value_of[t] = v;
      ++i;
    }
    CHECK(int(value_of.size()) == o.n_pairs);
    const int q = ex.input[size_t(L - 1)];
    REQUIRE(value_of.count(q) == 1);
    CHECK(ex.labels[size_t(L - 1)] == value_of[q]);
  } else if (name == "induction") {
    const size_t L = ex.input.size() / 2;
    REQUIRE(ex.input.size() == 2 * L);
    REQUIRE(ex.labels.size() == ex.input.size());
    CHECK(int(L) >= o.min_len);
    CHECK(int(L) <= o.max_len);
    CHECK(in.substr(0, L) == in.substr(L));
    for (size_t i = 0; i < 2 * L; ++i) {
      const bool second = i >= L && i + 1 < 2 * L;
      CHECK(ex.labels[i] == (second ? ex.input[i + 1] : -1));
    }
  } else if (name == "parity") {
    CHECK(int(in.size()) >= o.min_len);
    CHECK(int(in.size()) <= o.max_len);
    CHECK(in.find_first_not_of("01") == std::string::npos);
    CHECK(ex.cls == int(std::count(in.begin(), in.end(), '1')) % 2);
  } else if (name == "balanced_parens") {
    CHECK(in.size() % 2 == 0);
    CHECK(int(in.size()) >= o.min_len);
    CHECK(int(in.size()) <= o.max_len);
    CHECK(in.find_first_not_of("()") == std::string::npos);
    CHECK(ex.cls == (balanced(in) ? 1 : 0));
  } else {
    FAIL("no checker for task " << name);
  }
}

}  // namespace

TEST_CASE("tasks: registry, formats and the kinds each suits") {
  const auto names = TaskDataset::names();
  CHECK(names == std::vector<std::string>{"copy", "reverse", "sort", "addition", "dates", "mqar", "needle",
                                          "induction", "parity", "balanced_parens"});
  using V = std::vector<std::string>;
  CHECK(TaskDataset::kinds_for("reverse") == V{"decoder", "encoder_decoder"});
  CHECK(TaskDataset::kinds_for("dates") == V{"decoder", "encoder_decoder"});
  CHECK(TaskDataset::kinds_for("mqar") == V{"decoder", "encoder"});
  CHECK(TaskDataset::kinds_for("induction") == V{"decoder"});
  CHECK(TaskDataset::kinds_for("parity") == V{"encoder"});
  CHECK(TaskDataset::kinds_for("text") == V{"decoder", "encoder"});
  CHECK_THROWS_WITH_AS(TaskDataset::kinds_for("copying"), doctest::Contains("unknown task 'copying'"), UserError);
  for (const auto& n : names) {
    const auto ds = make(n);
    CHECK(ds.format() == TaskDataset::format_of(n));
    CHECK(ds.name() == n);
    CHECK(ds.describe().find(n) != std::string::npos);
    CHECK(ds.describe().find('\n') == std::string::npos);
    const auto m = ds.metrics();
    CHECK(m.front() == "loss");
    switch (ds.format()) {
      case TaskFormat::seq2seq:
        CHECK(m == V{"loss", "ppl", "token_acc", "exact_match", "greedy_token_acc", "bleu", "chrf"});
        CHECK(ds.sep_id() >= 0);
        CHECK(ds.end_id() >= 0);
        CHECK(ds.sep_id() != ds.end_id());
        CHECK(ds.n_classes() == 0);
        break;
      case TaskFormat::labelled:
        CHECK(m == V{"loss", "ppl", "label_acc"});
        CHECK(ds.end_id() == -1);
        CHECK(ds.n_classes() == 0);
        break;
      case TaskFormat::classify:
        CHECK(m == V{"loss", "class_acc"});
        CHECK(ds.sep_id() >= 0);
        CHECK(ds.n_classes() == 2);
        break;
    }
    CHECK((ds.pad_id() >= 0 && ds.pad_id() < ds.tokenizer().size()));
  }
}

TEST_CASE("tasks: vocabularies keep today's char look, symbols past 26") {
  const auto rev = make("reverse");
  CHECK(rev.tokenizer().vocab() == ".=abcdef");
  CHECK(rev.tokenizer().kind() == Tokenizer::Kind::chars);
  CHECK(rev.sep_id() == rev.tokenizer().id('='));
  CHECK(rev.end_id() == rev.tokenizer().id('.'));
  CHECK(rev.answer(rev.tokenizer().encode("cadb")) == rev.tokenizer().encode("bdac"));
  auto o = opts("sort");
  o.n_symbols = 40;
  o.n_val = 16;
  const TaskDataset big(o, "decoder", 64);
  const Tokenizer& t = big.tokenizer();
  CHECK(t.kind() == Tokenizer::Kind::symbols);
  CHECK(t.size() == 42);
  CHECK(t.find("s39") >= 0);
  CHECK(big.sep_id() == t.find("<sep>"));
  CHECK(big.end_id() == t.find("<end>"));
  CHECK(big.answer(t.encode("s12 s3 s39 s3")) == t.encode("s3 s3 s12 s39"));  // sorted by symbol number
  CHECK(big.show(t.encode("s1  s2")) == "s1 s2");
  CHECK_THROWS_AS(big.answer(t.encode("<sep> s1 s2")), UserError);
  const auto mqar = make("mqar");
  CHECK(mqar.tokenizer().size() == 64);
  CHECK(mqar.tokenizer().tokens()[0] == "_");
  CHECK(mqar.tokenizer().tokens()[31] == "k31");
  CHECK(mqar.tokenizer().tokens()[32] == "v32");
  const auto needle = make("needle");
  CHECK(needle.tokenizer().tokens()[31] == "f31");
  CHECK(needle.tokenizer().tokens()[32] == "k32");
  CHECK(needle.tokenizer().tokens()[48] == "v48");
  const auto add = make("addition");
  CHECK(add.answer(add.tokenizer().encode("99+7")) == add.tokenizer().encode("106"));
  CHECK_THROWS_AS(add.answer(add.tokenizer().encode("099+7")), UserError);  // leading zero
  CHECK_THROWS_AS(add.answer(add.tokenizer().encode("100+7")), UserError);  // 3 digits, n_digits 2
  const auto dates = make("dates");
  const Tokenizer& dt = dates.tokenizer();
  CHECK(dates.answer(dt.encode("tuesday 3 march 1987")) == dt.encode("1987-03-03"));
  CHECK(dates.answer(dt.encode("3/3/87")) == dt.encode("1987-03-03"));
  CHECK(dates.answer(dt.encode("the 1st of january 2049")) == dt.encode("2049-01-01"));
  CHECK_THROWS_AS(dates.answer(dt.encode("wednesday 3 march 1987")), UserError);  // wrong weekday
  CHECK_THROWS_AS(dates.answer(dt.encode("31.04.1987")), UserError);              // no 31 april
  CHECK_THROWS_AS(dates.answer(dt.encode("01.01.1949")), UserError);              // out of range
  CHECK_THROWS_AS(make("mqar").answer({1, 2}), UserError);                       // not seq2seq
}

TEST_CASE("tasks: same seed gives the same val/test sets and train stream; another seed differs") {
  for (const auto& name : TaskDataset::names()) {
    CAPTURE(name);
    const auto a = make(name), b = make(name);
    for (Split s : {Split::val, Split::test}) {
      REQUIRE(a.eval_set(s).size() == b.eval_set(s).size());
      for (size_t i = 0; i < a.eval_set(s).size(); ++i) CHECK(same(a.eval_set(s)[i], b.eval_set(s)[i]));
    }
    Rng r1(11), r2(11);
    for (int i = 0; i < 50; ++i) CHECK(same(a.sample_train(r1), b.sample_train(r2)));
    for (Split s : {Split::train, Split::val, Split::test}) {
      Batch ba, bb;
      Rng q1(5), q2(5);
      a.next_batch(ba, 8, a.batch_T(), s, q1);
      b.next_batch(bb, 8, b.batch_T(), s, q2);
      CHECK(ba.x == bb.x);
      CHECK(ba.y == bb.y);
      CHECK(ba.cls == bb.cls);
    }
    auto o = opts(name);
    o.seed = 100;
    const TaskDataset c(o, first_kind(name), 4096);
    std::set<std::string> va;
    for (const auto& ex : a.eval_set(Split::val)) va.insert(key(ex.input));
    int shared = 0;
    for (const auto& ex : c.eval_set(Split::val)) shared += int(va.count(key(ex.input)));
    CHECK(shared < 32);  // of 64
    Rng r3(11), r4(11);
    int same_train = 0;
    for (int i = 0; i < 50; ++i) same_train += same(a.sample_train(r3), c.sample_train(r4));
    CHECK(same_train < 50);  // the stream skips another seed's val/test inputs
  }
}

TEST_CASE("tasks: val, test and train are disjoint; eval sets are n_val distinct examples") {
  for (const auto& name : TaskDataset::names()) {
    CAPTURE(name);
    const auto ds = make(name);
    std::set<std::string> val, test;
    for (Split s : {Split::val, Split::test}) {
      auto& set = s == Split::val ? val : test;
      CHECK(ds.eval_set(s).size() == 64);
      for (const auto& ex : ds.eval_set(s)) {
        set.insert(key(ex.input));
        CHECK(ds.in_split(ex.input, s));
        CHECK_FALSE(ds.in_split(ex.input, Split::train));
      }
      CHECK(set.size() == 64);
    }
    for (const auto& k : val) CHECK(test.count(k) == 0);
    Rng rng(2024);
    for (int i = 0; i < 2000; ++i) {
      const auto ex = ds.sample_train(rng);
      CHECK(ds.in_split(ex.input, Split::train));
      CHECK(val.count(key(ex.input)) == 0);
      CHECK(test.count(key(ex.input)) == 0);
    }
    CHECK_THROWS_AS(ds.eval_set(Split::train), std::logic_error);
  }
}

TEST_CASE("tasks: labels and answers are right (recomputed independently)") {
  for (const auto& name : TaskDataset::names()) {
    CAPTURE(name);
    const auto ds = make(name);
    for (Split s : {Split::val, Split::test})
      for (const auto& ex : ds.eval_set(s)) check_example(ds, ex);
    Rng rng(77);
    for (int i = 0; i < 300; ++i) check_example(ds, ds.sample_train(rng));
  }
}

TEST_CASE("tasks: mqar with random filler keeps the pairs and queries, and fills the rest with uniform ids 1..n-1") {
  TaskOptions o = opts("mqar");
  o.random_filler = true;
  const TaskDataset plain(opts("mqar"), "decoder", 4096), noisy(o, "decoder", 4096);
  const int n = o.n_symbols, p = o.n_pairs;
  std::vector<int> count(size_t(n), 0);
  int filler_positions = 0;
  for (const auto& ex : noisy.eval_set(Split::val)) {
    REQUIRE(int(ex.input.size()) == o.max_len);
    int queries = 0;
    for (int j = 0; j < o.max_len; ++j) {
      const int id = ex.input[size_t(j)], lab = ex.labels[size_t(j)];
      if (j < 2 * p) {
        CHECK(lab == -1);
        CHECK((j % 2 == 0 ? (id >= 1 && id < n / 2) : (id >= n / 2 && id < n)));
      } else if (lab >= 0) {
        queries++;
        bool found = false;  // the query is a pair key and its label that key's value
        for (int i = 0; i < p; ++i) found |= ex.input[size_t(2 * i)] == id && ex.input[size_t(2 * i + 1)] == lab;
        CHECK(found);
      } else {
        CHECK((id >= 1 && id < n));  // never the zero filler
        count[size_t(id)]++;
        filler_positions++;
      }
    }
    CHECK(queries == p);
  }
  REQUIRE(filler_positions == 64 * (o.max_len - 3 * p));
  // uniform over 1..n-1: each id's count within 5 standard deviations of its expectation
  const double e = double(filler_positions) / (n - 1), sd = std::sqrt(e * (1.0 - 1.0 / (n - 1)));
  CHECK(count[0] == 0);
  for (int id = 1; id < n; ++id) CHECK(std::fabs(count[size_t(id)] - e) < 5 * sd);
  // the plain task: zeros there
  for (const auto& ex : plain.eval_set(Split::val))
    for (int j = 2 * p; j < o.max_len; ++j)
      if (ex.labels[size_t(j)] < 0) CHECK(ex.input[size_t(j)] == 0);
  CHECK(noisy.describe().find("random filler 1..63") != std::string::npos);
}

TEST_CASE("tasks: distributions (lengths, date formats, parentheses classes)") {
  Rng rng(3);
  {
    const auto ds = make("reverse");
    int n_len[7] = {};
    for (int i = 0; i < 4000; ++i) ++n_len[ds.sample_train(rng).input.size()];
    for (int L = 3; L <= 6; ++L) CHECK(n_len[L] > 800);  // uniform: about 1000 each
  }
  {
    const auto ds = make("dates");
    int n_fmt[6] = {}, years_19 = 0;
    for (int i = 0; i < 3000; ++i) {
      const auto ex = ds.sample_train(rng);
      int f = -1;
      REQUIRE(parse_date(ds.show(ex.input), &f) == ds.show(ex.output));
      ++n_fmt[f];
      years_19 += ds.show(ex.output)[1] == '9';
    }
    for (int f = 0; f < 6; ++f) CHECK(n_fmt[f] > 400);  // about 500 each
    CHECK(years_19 > 1300);                            // about half the years are 19xx
    CHECK(years_19 < 1700);
  }
  {
    const auto ds = make("balanced_parens");
    int pos = 0, neg = 0, neg_equal_counts = 0;
    for (int i = 0; i < 4000; ++i) {
      const auto ex = ds.sample_train(rng);
      const std::string s = ds.show(ex.input);
      if (ex.cls == 1) {
        ++pos;
      } else {
        ++neg;
        neg_equal_counts += std::count(s.begin(), s.end(), '(') * 2 == long(s.size());
      }
    }
    CHECK(pos > 1800);
    CHECK(pos < 2200);
    // hard negatives: about half keep equal counts (a swap), so counting alone cannot solve the task
    CHECK(neg_equal_counts > neg * 35 / 100);
    CHECK(neg_equal_counts < neg * 65 / 100);
    int val_pos = 0;
    for (const auto& ex : ds.eval_set(Split::val)) val_pos += ex.cls;
    CHECK(val_pos > 16);
    CHECK(val_pos < 48);
  }
  {
    const auto ds = make("parity");
    int odd = 0;
    for (int i = 0; i < 2000; ++i) odd += ds.sample_train(rng).cls;
    CHECK(odd > 900);
    CHECK(odd < 1100);
  }
}

namespace {

// Checks every row of a batch against the layout of (task format, model kind), recovering the
// example from the row itself and checking it with check_example.
void check_batch(const TaskDataset& ds, const Batch& b, Split split, int T) {
  const int pad = ds.pad_id(), sep = ds.sep_id(), end = ds.end_id();
  const std::string& kind = ds.model_kind();
  REQUIRE(b.T == T);
  REQUIRE(b.x.size() == size_t(b.B) * size_t(T));
  REQUIRE(b.x_len.size() == size_t(b.B));
  std::set<std::string> eval;
  if (split != Split::train)
    for (const auto& ex : ds.eval_set(split)) eval.insert(key(ex.input));
  for (int r = 0; r < b.B; ++r) {
    const int* x = b.x.data() + size_t(r) * size_t(T);
    const int* y = b.y.empty() ? nullptr : b.y.data() + size_t(r) * size_t(T);  // no y: a class label per row
    const int n = b.x_len[size_t(r)];
    REQUIRE((n >= 1 && n <= T));
    for (int i = n; i < T; ++i) CHECK(x[i] == pad);
    TaskExample ex;
    if (ds.format() == TaskFormat::seq2seq && kind == "decoder") {
      REQUIRE(b.S == 0);
      const int p = int(std::find(x, x + n, sep) - x);  // inputs never hold the separator
      REQUIRE(p < n);
      ex.input.assign(x, x + p);
      ex.output = ds.answer(ex.input);
      const int m = int(ex.output.size());
      CHECK(n == p + 1 + m);  // input sep output (the end token is only a target)
      for (int k = 0; k < m; ++k) CHECK(x[p + 1 + k] == ex.output[size_t(k)]);
      for (int i = 0; i < T; ++i) {
        const int want = i < p ? -1 : i < p + m ? ex.output[size_t(i - p)] : i == p + m ? end : -1;
        CHECK(y[i] == want);
      }
    } else if (ds.format() == TaskFormat::seq2seq) {  // encoder_decoder
      REQUIRE(b.S == ds.batch_S());
      REQUIRE(b.src.size() == size_t(b.B) * size_t(b.S));
      const int* src = b.src.data() + size_t(r) * size_t(b.S);
      const int ns = b.src_len[size_t(r)];
      REQUIRE((ns >= 1 && ns <= b.S));
      for (int i = ns; i < b.S; ++i) CHECK(src[i] == pad);
      ex.input.assign(src, src + ns);
      ex.output = ds.answer(ex.input);
      const int m = int(ex.output.size());
      CHECK(n == m + 1);
      CHECK(x[0] == sep);
      for (int k = 0; k < m; ++k) CHECK(x[1 + k] == ex.output[size_t(k)]);
      for (int i = 0; i < T; ++i) CHECK(y[i] == (i < m ? ex.output[size_t(i)] : i == m ? end : -1));
    } else if (ds.format() == TaskFormat::labelled) {
      REQUIRE(b.S == 0);
      ex.input.assign(x, x + n);
      ex.labels.assign(y, y + n);
      for (int i = n; i < T; ++i) CHECK(y[i] == -1);
    } else {  // classify
      REQUIRE(b.y.empty());
      REQUIRE(b.cls.size() == size_t(b.B));
      CHECK(x[0] == sep);
      ex.input.assign(x + 1, x + n);
      ex.cls = b.cls[size_t(r)];
    }
    check_example(ds, ex);
    CHECK(ds.in_split(ex.input, split));
    if (split != Split::train) CHECK(eval.count(key(ex.input)) == 1);
  }
}

}  // namespace

TEST_CASE("tasks: batch layout for every kind each task suits") {
  for (const auto& name : TaskDataset::names())
    for (const auto& kind : TaskDataset::kinds_for(name)) {
      CAPTURE(name);
      CAPTURE(kind);
      const auto ds = make(name, kind);
      for (Split split : {Split::train, Split::val, Split::test})
        for (int extra : {0, 3}) {  // exact length and with extra padding
          Batch b;
          b.cls = {7};  // stale fields from another layout must not survive
          b.src = {1, 2};
          Rng rng(31);
          const int T = ds.batch_T() + extra;
          ds.next_batch(b, 24, T, split, rng);
          REQUIRE(b.B == 24);
          if (ds.format() != TaskFormat::classify) CHECK(b.cls.empty());
          if (kind != "encoder_decoder") CHECK(b.src.empty());
          check_batch(ds, b, split, T);
        }
      Batch b;
      Rng rng(1);
      CHECK_THROWS_WITH_AS(ds.next_batch(b, 2, ds.batch_T() - 1, Split::train, rng),
                           doctest::Contains("context too short"), UserError);
    }
  // the padded lengths, spelled out for a decoder and an encoder_decoder on reverse (max_len 6)
  CHECK(make("reverse", "decoder").batch_T() == 13);  // 6 + sep + 6 (+ end as a target only)
  CHECK(make("reverse", "decoder").batch_S() == 0);
  CHECK(make("reverse", "encoder_decoder").batch_T() == 7);  // sep + 6
  CHECK(make("reverse", "encoder_decoder").batch_S() == 6);
  CHECK(make("parity", "encoder").batch_T() == 13);  // [CLS] + 12
  CHECK(make("induction").batch_T() == 12);
  CHECK(make("mqar", "encoder").batch_T() == 24);
}

TEST_CASE("tasks: a kind the task does not suit is a config error naming both") {
  CHECK_THROWS_WITH_AS(TaskDataset(opts("parity"), "decoder", 64),
                       "data.task 'parity' is a classification task: it needs model.kind encoder, got decoder",
                       UserError);
  CHECK_THROWS_WITH_AS(TaskDataset(opts("reverse"), "encoder", 64),
                       doctest::Contains("sequence-to-sequence task: it needs model.kind decoder or encoder_decoder, "
                                         "got encoder"),
                       UserError);
  CHECK_THROWS_WITH_AS(TaskDataset(opts("mqar"), "encoder_decoder", 64),
                       doctest::Contains("needs model.kind decoder or encoder, got encoder_decoder"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset(opts("balanced_parens"), "encoder_decoder", 64),
                       doctest::Contains("got encoder_decoder"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset(opts("induction"), "encoder", 64),
                       doctest::Contains("bidirectional encoder would see"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset(opts("reverse"), "gpt", 64), doctest::Contains("model.kind"), UserError);
  auto o = opts("reverse");
  o.name = "copying";
  CHECK_THROWS_WITH_AS(TaskDataset(o, "decoder", 64), doctest::Contains("unknown task 'copying'"), UserError);
}

TEST_CASE("tasks: block_size too small names the length needed and the keys") {
  struct Case {
    std::string name, kind, keys;
  };
  for (const auto& c : std::vector<Case>{{"reverse", "decoder", "data.max_len"},
                                         {"reverse", "encoder_decoder", "data.max_len"},
                                         {"addition", "decoder", "data.n_digits"},
                                         {"dates", "encoder_decoder", "fixed"},
                                         {"mqar", "encoder", "data.max_len"},
                                         {"parity", "encoder", "data.max_len"}}) {
    CAPTURE(c.name);
    CAPTURE(c.kind);
    const auto ds = make(c.name, c.kind);
    const int need = std::max(ds.batch_T(), ds.batch_S());
    CHECK_NOTHROW(TaskDataset(opts(c.name), c.kind, need));
    CHECK_THROWS_WITH_AS(TaskDataset(opts(c.name), c.kind, need - 1),
                         doctest::Contains(("needs model.block_size >= " + std::to_string(need)).c_str()), UserError);
    CHECK_THROWS_WITH_AS(TaskDataset(opts(c.name), c.kind, need - 1), doctest::Contains(c.keys.c_str()), UserError);
  }
  CHECK(make("addition").batch_T() == 2 + 1 + 2 + 1 + 3);  // "99+99" = "198": 5 + sep + 3
  CHECK(make("dates", "encoder_decoder").batch_S() == int(std::string("wednesday 30 september 1953").size()));
}

TEST_CASE("tasks: options out of range for the task") {
  auto err = [](const std::string& name, auto edit, const std::string& kind = "") {
    auto o = opts(name);
    edit(o);
    return TaskDataset(o, kind.empty() ? first_kind(name) : kind, 4096);
  };
  CHECK_THROWS_WITH_AS(err("reverse", [](TaskOptions& o) { o.n_symbols = 1; }), doctest::Contains("data.n_symbols"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("copy", [](TaskOptions& o) { o.min_len = 0; }), doctest::Contains("data.min_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("copy", [](TaskOptions& o) { o.max_len = 2; }), doctest::Contains("data.max_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("induction", [](TaskOptions& o) { o.min_len = 1; }), doctest::Contains("data.min_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("induction", [](TaskOptions& o) { o.max_len = 3000; }), doctest::Contains("data.max_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("addition", [](TaskOptions& o) { o.n_digits = 19; }), doctest::Contains("data.n_digits"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("mqar", [](TaskOptions& o) { o.n_pairs = 40; }), doctest::Contains("data.n_pairs"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("mqar", [](TaskOptions& o) { o.max_len = 11; }), doctest::Contains("data.max_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("needle", [](TaskOptions& o) { o.n_symbols = 8; }), doctest::Contains("data.n_symbols"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("needle", [](TaskOptions& o) { o.max_len = 6; }), doctest::Contains("data.max_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(err("balanced_parens", [](TaskOptions& o) { o.min_len = o.max_len = 3; }),
                       doctest::Contains("even length"), UserError);
  CHECK_THROWS_WITH_AS(err("parity", [](TaskOptions& o) { o.val_fraction = 0.5; }),
                       doctest::Contains("data.val_fraction"), UserError);
  CHECK_THROWS_WITH_AS(err("parity", [](TaskOptions& o) { o.n_val = 0; }), doctest::Contains("data.n_val"), UserError);
  // a small input space: parity of 3 bits has 8 inputs
  CHECK_THROWS_WITH_AS(err("parity", [](TaskOptions& o) { o.min_len = o.max_len = 3; }),
                       doctest::Contains("data.n_val = 64 is larger"), UserError);
  // a large space with n_val beyond a quarter of the estimated share
  CHECK_THROWS_WITH_AS(err("mqar", [](TaskOptions& o) {
                         o.n_symbols = 8, o.n_pairs = 1, o.max_len = 3;  // 3 keys x 4 values x 1 place = 12
                       }),
                       doctest::Contains("data.n_val"), UserError);
  // saturating spaces do not crash
  CHECK_NOTHROW(err("copy", [](TaskOptions& o) { o.n_symbols = 26, o.min_len = 1, o.max_len = 40; }));
  CHECK_NOTHROW(err("addition", [](TaskOptions& o) { o.n_digits = 18; }));
}

TEST_CASE("tasks: n_val equal to the whole val share is picked from the enumeration") {
  auto o = opts("balanced_parens");
  o.min_len = 2, o.max_len = 8;  // 4 + 16 + 64 + 256 = 340 inputs
  o.val_fraction = 0.2;
  o.n_val = 1;
  const TaskDataset probe(o, "encoder", 64);
  int n_val = 0, n_test = 0;
  for (int L = 2; L <= 8; L += 2)
    for (int bits = 0; bits < (1 << L); ++bits) {
      std::vector<int> in(static_cast<size_t>(L));
      for (int i = 0; i < L; ++i) in[size_t(i)] = (bits >> i) & 1;
      n_val += probe.in_split(in, Split::val);
      n_test += probe.in_split(in, Split::test);
    }
  REQUIRE(n_val > 20);
  o.n_val = std::min(n_val, n_test);
  const TaskDataset full(o, "encoder", 64);
  for (Split s : {Split::val, Split::test}) {
    std::set<std::string> seen;
    for (const auto& ex : full.eval_set(s)) {
      seen.insert(key(ex.input));
      CHECK(full.in_split(ex.input, s));
      check_example(full, ex);
    }
    CHECK(int(seen.size()) == o.n_val);
  }
  o.n_val = std::max(n_val, n_test) + 1;
  CHECK_THROWS_WITH_AS(TaskDataset(o, "encoder", 64), doctest::Contains("data.n_val"), UserError);
}

TEST_CASE("factory: task options and datasets from a config") {
  Config cfg;
  cfg.data.task = "needle";
  cfg.data.n_symbols = 128;
  cfg.data.n_pairs = 5;
  cfg.data.max_len = 40;
  cfg.data.n_val = 32;
  cfg.train.seed = 5;
  cfg.model.kind = ModelConfig::Kind::encoder;
  cfg.model.block_size = 40;
  const TaskOptions o = task_options(cfg);
  CHECK(o.name == "needle");
  CHECK(o.n_pairs == 5);
  CHECK(o.n_symbols == 128);
  CHECK(o.seed == 5);
  auto ds = make_dataset(cfg);
  auto* task = dynamic_cast<TaskDataset*>(ds.get());
  REQUIRE(task != nullptr);
  CHECK(task->model_kind() == "encoder");
  CHECK(task->eval_set(Split::val).size() == 32);
  cfg.model.block_size = 39;
  CHECK_THROWS_AS(make_dataset(cfg), UserError);
  cfg.data.task = "addition";
  cfg.data.n_digits = 4;
  cfg.model.block_size = 64;
  cfg.model.kind = ModelConfig::Kind::encoder_decoder;
  auto add = make_dataset(cfg);
  CHECK(dynamic_cast<TaskDataset&>(*add).batch_S() == 9);
}
