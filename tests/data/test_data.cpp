// Tests for src/data: Tokenizer, TextDataset, TaskDataset.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "data/tasks.h"
#include "data/tokenizer.h"

using namespace attnlab;

namespace {

bool same_batch(const Batch& a, const Batch& b) { return a.B == b.B && a.T == b.T && a.x == b.x && a.y == b.y; }

// A temp file removed at scope end.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& content) {
    path = (std::filesystem::temp_directory_path() /
            ("attnlab_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++) + ".txt"))
               .string();
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() { std::remove(path.c_str()); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

// ---------------------------------------------------------------- tokenizer

TEST_CASE("tokenizer: build gives the sorted distinct bytes and round-trips") {
  const std::string text = "hello, world!\nHELLO\t\xc3\xa9";  // includes a UTF-8 two-byte char
  const auto tok = Tokenizer::build(text);
  const std::string& v = tok.vocab();
  CHECK(std::is_sorted(v.begin(), v.end(), [](char a, char b) { return uint8_t(a) < uint8_t(b); }));
  CHECK(std::set<char>(v.begin(), v.end()).size() == v.size());
  CHECK(std::set<char>(v.begin(), v.end()) == std::set<char>(text.begin(), text.end()));
  CHECK(tok.size() == int(v.size()));
  for (int i = 0; i < tok.size(); ++i) CHECK(tok.id(v[size_t(i)]) == i);

  const auto ids = tok.encode(text);
  REQUIRE(ids.size() == text.size());
  for (int id : ids) CHECK((id >= 0 && id < tok.size()));
  CHECK(tok.decode(ids) == text);
  CHECK(tok.contains('h'));
  CHECK_FALSE(tok.contains('z'));
  CHECK(Tokenizer::build("cba").vocab() == "abc");
  CHECK(Tokenizer::build("").size() == 0);
}

TEST_CASE("tokenizer: unknown characters and bad ids") {
  const auto tok = Tokenizer::build("abc");
  CHECK_THROWS_AS(tok.id('z'), UserError);
  CHECK_THROWS_AS(tok.encode("abz"), UserError);
  CHECK_THROWS_WITH_AS(tok.encode("abz"), doctest::Contains("'z'"), UserError);
  CHECK_THROWS_AS(tok.decode({0, 3}), std::out_of_range);
  CHECK_THROWS_AS(tok.decode({-1}), std::out_of_range);
  CHECK(tok.decode({2, 1, 0}) == "cba");

  const Tokenizer empty;
  CHECK(empty.size() == 0);
  CHECK_FALSE(empty.contains('a'));
  CHECK_FALSE(empty.contains('\0'));
  CHECK_THROWS_AS(empty.encode("a"), UserError);
}

TEST_CASE("tokenizer: from_vocab keeps the given order and rejects duplicates") {
  const auto tok = Tokenizer::from_vocab("zyx.");
  CHECK(tok.vocab() == "zyx.");
  CHECK(tok.id('z') == 0);
  CHECK(tok.id('.') == 3);
  CHECK(tok.encode("xz.") == std::vector<int>{2, 0, 3});
  CHECK(tok.decode({1, 1}) == "yy");
  CHECK_THROWS_AS(Tokenizer::from_vocab("abca"), UserError);
  CHECK_THROWS_WITH_AS(Tokenizer::from_vocab("abca"), doctest::Contains("duplicate"), UserError);
}

// ---------------------------------------------------------------- text dataset

TEST_CASE("text dataset: split sizes and describe") {
  const std::string text = repeat("abcdefghij", 100);  // 1000 chars
  TextDataset ds(text, 0.1, 16, nullptr);
  CHECK(ds.train_size() == 900);
  CHECK(ds.val_size() == 100);
  CHECK(ds.tokenizer().vocab() == "abcdefghij");
  CHECK(ds.describe().find("1000 chars, vocab 10, train 900 / val 100") != std::string::npos);

  TextDataset ds2(std::string(1001, 'q'), 0.25, 8, nullptr);  // floor(0.75 * 1001) = 750
  CHECK(ds2.train_size() == 750);
  CHECK(ds2.val_size() == 251);
}

TEST_CASE("text dataset: batches are deterministic and y is x shifted by one") {
  std::string text;
  for (int i = 0; i < 3000; ++i) text.push_back(char('a' + (i * 7 + i / 13) % 26));
  TextDataset ds(text, 0.2, 32, nullptr);
  const auto ids = ds.tokenizer().encode(text);
  for (Split split : {Split::train, Split::val}) {
    Batch a, b;
    Rng r1(42), r2(42);
    ds.next_batch(a, 8, 32, split, r1);
    ds.next_batch(b, 8, 32, split, r2);
    CHECK(same_batch(a, b));
    CHECK(r1.state() == r2.state());
    REQUIRE(a.B == 8);
    REQUIRE(a.T == 32);
    REQUIRE(a.x.size() == 8u * 32u);
    REQUIRE(a.y.size() == 8u * 32u);
    for (int row = 0; row < 8; ++row) {
      const int* x = a.x.data() + row * 32;
      const int* y = a.y.data() + row * 32;
      for (int t = 0; t + 1 < 32; ++t) CHECK(y[t] == x[t + 1]);
      // the row is a real window of the text: find it
      bool found = false;
      for (size_t s = 0; s + 33 <= ids.size() && !found; ++s)
        found = std::equal(x, x + 32, ids.begin() + long(s)) && ids[s + 32] == y[31];
      CHECK(found);
    }
    Batch c;
    Rng r3(43);
    ds.next_batch(c, 8, 32, split, r3);
    CHECK_FALSE(same_batch(a, c));  // a different seed gives different windows
  }
}

TEST_CASE("text dataset: windows stay inside their split") {
  // train part uses only lowercase, val part only digits: any crossing window would mix them
  const std::string train_part = repeat("abcdefghijklmnopqrstuvwxyz", 30);  // 780
  std::string val_part;
  for (int i = 0; i < 220; ++i) val_part.push_back(char('0' + (i * 3) % 10));
  const std::string text = train_part + val_part;  // 1000 chars, val_fraction 0.22 -> 780 / 220
  TextDataset ds(text, 0.22, 40, nullptr);
  REQUIRE(ds.train_size() == 780);
  REQUIRE(ds.val_size() == 220);
  const auto& tok = ds.tokenizer();
  Rng rng(7);
  std::set<int> first_train, first_val;
  for (int rep = 0; rep < 50; ++rep) {
    Batch bt, bv;
    ds.next_batch(bt, 16, 40, Split::train, rng);
    ds.next_batch(bv, 16, 40, Split::val, rng);
    for (size_t i = 0; i < bt.x.size(); ++i) {
      CHECK(std::islower(uint8_t(tok.vocab()[size_t(bt.x[i])])));
      CHECK(std::islower(uint8_t(tok.vocab()[size_t(bt.y[i])])));
      CHECK(std::isdigit(uint8_t(tok.vocab()[size_t(bv.x[i])])));
      CHECK(std::isdigit(uint8_t(tok.vocab()[size_t(bv.y[i])])));
    }
    // windows reaching the last char of each split are possible (y ends there)
    for (int row = 0; row < 16; ++row) {
      first_train.insert(bt.x[size_t(row) * 40]);
      first_val.insert(bv.x[size_t(row) * 40]);
    }
  }
  CHECK(first_train.size() == 26);  // starts spread over the split
  CHECK(first_val.size() == 10);

  // the smallest legal split: exactly T+1 chars => one window, the whole split
  TextDataset tight(std::string("abcd") + "wxyz", 0.5, 3, nullptr);
  Batch b;
  Rng r(1);
  tight.next_batch(b, 4, 3, Split::val, r);
  for (int row = 0; row < 4; ++row) {
    CHECK(tight.tokenizer().decode({b.x.begin() + row * 3, b.x.begin() + row * 3 + 3}) == "wxy");
    CHECK(tight.tokenizer().decode({b.y.begin() + row * 3, b.y.begin() + row * 3 + 3}) == "xyz");
  }
}

TEST_CASE("text dataset: errors") {
  // too short: 20 chars at val 0.1 => val 2 < 9
  CHECK_THROWS_AS(TextDataset(std::string(20, 'a'), 0.1, 8, nullptr), UserError);
  CHECK_THROWS_WITH_AS(TextDataset(std::string(20, 'a'), 0.1, 8, nullptr), doctest::Contains("too short"),
                       UserError);
  // train too short
  CHECK_THROWS_AS(TextDataset(std::string(20, 'a'), 0.9, 8, nullptr), UserError);
  CHECK_NOTHROW(TextDataset(std::string(20, 'a'), 0.5, 9, nullptr));
  CHECK_THROWS_AS(TextDataset(std::string(20, 'a'), 0.5, 10, nullptr), UserError);
  // bad options
  CHECK_THROWS_AS(TextDataset(std::string(100, 'a'), 0.0, 4, nullptr), UserError);
  CHECK_THROWS_AS(TextDataset(std::string(100, 'a'), 1.0, 4, nullptr), UserError);
  CHECK_THROWS_AS(TextDataset(std::string(100, 'a'), 0.1, 0, nullptr), UserError);
  // a given tokenizer that lacks a char of the text
  const auto tok = Tokenizer::build("ab");
  CHECK_THROWS_AS(TextDataset(repeat("abc", 50), 0.1, 4, &tok), UserError);
  CHECK_NOTHROW(TextDataset(repeat("ab", 50), 0.1, 4, &tok));
  // a batch longer than a split allows
  TextDataset ds(repeat("ab", 50), 0.1, 4, &tok);  // val = 10 chars
  Batch b;
  Rng r(1);
  CHECK_THROWS_AS(ds.next_batch(b, 2, 10, Split::val, r), UserError);
  CHECK_NOTHROW(ds.next_batch(b, 2, 9, Split::val, r));
  // unreadable file names the file
  CHECK_THROWS_WITH_AS(TextDataset("/nonexistent/dir/corpus.txt", 0.1, 8), doctest::Contains("corpus.txt"),
                       UserError);
  CHECK_THROWS_AS(TextDataset(std::filesystem::temp_directory_path().string(), 0.1, 8), UserError);
}

TEST_CASE("text dataset: reuses a saved tokenizer's ids") {
  const auto tok = Tokenizer::from_vocab("zyxabc");  // not sorted: ids follow this order
  TextDataset ds(repeat("abcxyz", 20), 0.5, 4, &tok);
  CHECK(ds.tokenizer().vocab() == "zyxabc");
  Batch b;
  Rng r(3);
  ds.next_batch(b, 2, 4, Split::train, r);
  const std::string row = ds.tokenizer().decode({b.x.begin(), b.x.begin() + 4});
  CHECK(repeat("abcxyz", 3).find(row) != std::string::npos);
}

TEST_CASE("text dataset: reads a file") {
  TempFile f(repeat("to be or not to be\n", 20));  // 380 chars
  TextDataset ds(f.path, 0.1, 16);
  CHECK(ds.train_size() == 342);
  CHECK(ds.val_size() == 38);
  CHECK(ds.describe().rfind("text attnlab_test_data_", 0) == 0);
  TempFile small("tiny");
  CHECK_THROWS_WITH_AS(TextDataset(small.path, 0.1, 16), doctest::Contains("attnlab_test_data_"), UserError);
}

TEST_CASE("text dataset: tinyshakespeare (shared reference data)") {
  const std::string path = std::string(ATTNLAB_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipped: " << path << " not found");
    return;
  }
  TextDataset ds(path, 0.1, 256);
  CHECK(ds.describe() == "text tinyshakespeare.txt: 1115394 chars, vocab 65, train 1003854 / val 111540");
  Batch b;
  Rng r(0);
  ds.next_batch(b, 4, 256, Split::val, r);
  for (int t = 0; t + 1 < 256; ++t) CHECK(b.y[size_t(t)] == b.x[size_t(t) + 1]);
}

// ---------------------------------------------------------------- task dataset

namespace {

TaskOptions small_opts(const std::string& name) {
  TaskOptions o;
  o.name = name;
  o.n_symbols = 6;
  o.min_len = 3;
  o.max_len = 6;
  o.val_fraction = 0.1;
  o.n_val = 128;
  o.seed = 99;
  return o;
}

// Decodes the non-masked targets of one row.
std::string targets(const Tokenizer& tok, const Batch& b, int row) {
  std::string s;
  for (int t = 0; t < b.T; ++t) {
    const int y = b.y[size_t(row) * size_t(b.T) + size_t(t)];
    if (y >= 0) s.push_back(tok.vocab()[size_t(y)]);
  }
  return s;
}

}  // namespace

TEST_CASE("task dataset: vocabulary and answers") {
  TaskDataset rev(small_opts("reverse"));
  CHECK(rev.tokenizer().vocab() == ".=abcdef");
  CHECK(rev.max_example_len() == 14);
  CHECK(rev.answer("cadb") == "bdac");
  TaskDataset srt(small_opts("sort"));
  CHECK(srt.answer("cadb") == "abcd");
  CHECK(srt.answer("ffa") == "aff");
  TaskExample ex{"abc", "cba"};
  CHECK(ex.text() == "abc=cba.");
  CHECK(rev.describe().find("reverse") != std::string::npos);
  CHECK(rev.describe().find('\n') == std::string::npos);
}

TEST_CASE("task dataset: deterministic") {
  for (const char* name : {"reverse", "sort"}) {
    TaskDataset a(small_opts(name)), b(small_opts(name));
    REQUIRE(a.val_set().size() == b.val_set().size());
    for (size_t i = 0; i < a.val_set().size(); ++i) CHECK(a.val_set()[i].input == b.val_set()[i].input);
    for (Split split : {Split::train, Split::val}) {
      Batch ba, bb;
      Rng r1(5), r2(5);
      a.next_batch(ba, 16, 20, split, r1);
      b.next_batch(bb, 16, 20, split, r2);
      CHECK(same_batch(ba, bb));
    }
    Rng r1(11), r2(11);
    for (int i = 0; i < 100; ++i) CHECK(a.sample_train(r1).input == b.sample_train(r2).input);
  }
  // a different seed gives a different val set
  auto o = small_opts("reverse");
  o.seed = 100;
  TaskDataset c(o), d(small_opts("reverse"));
  int same = 0;
  for (size_t i = 0; i < c.val_set().size(); ++i) same += c.val_set()[i].input == d.val_set()[i].input;
  CHECK(same < 10);
}

TEST_CASE("task dataset: val set is distinct, of size n_val, in the val bucket, and correct") {
  for (const char* name : {"reverse", "sort"}) {
    TaskDataset ds(small_opts(name));
    const auto& val = ds.val_set();
    CHECK(val.size() == 128);
    std::set<std::string> inputs;
    for (const auto& ex : val) {
      inputs.insert(ex.input);
      CHECK(ds.is_val_input(ex.input));
      CHECK(ex.output == ds.answer(ex.input));
      CHECK(ex.input.size() >= 3);
      CHECK(ex.input.size() <= 6);
    }
    CHECK(inputs.size() == val.size());
  }
  // the enumerate-and-pick path: n_val equal to the whole val share of a small space
  TaskOptions o;
  o.name = "sort";
  o.n_symbols = 3;
  o.min_len = 1;
  o.max_len = 4;  // 3 + 9 + 27 + 81 = 120 inputs
  o.val_fraction = 0.3;
  o.seed = 7;
  int val_count = 0;
  {
    o.n_val = 1;
    TaskDataset probe(o);
    for (int L = 1; L <= 4; ++L) {
      std::string s(size_t(L), 'a');
      while (true) {
        val_count += probe.is_val_input(s);
        int k = L - 1;
        while (k >= 0 && s[size_t(k)] == 'c') s[size_t(k--)] = 'a';
        if (k < 0) break;
        ++s[size_t(k)];
      }
    }
  }
  REQUIRE(val_count > 10);
  o.n_val = val_count;
  TaskDataset full(o);
  std::set<std::string> inputs;
  for (const auto& ex : full.val_set()) {
    inputs.insert(ex.input);
    CHECK(full.is_val_input(ex.input));
  }
  CHECK(int(inputs.size()) == val_count);
  o.n_val = val_count + 1;
  CHECK_THROWS_WITH_AS(TaskDataset{o}, doctest::Contains("n_val"), UserError);
}

TEST_CASE("task dataset: train and val are disjoint") {
  for (const char* name : {"reverse", "sort"}) {
    TaskDataset ds(small_opts(name));
    std::set<std::string> val;
    for (const auto& ex : ds.val_set()) val.insert(ex.input);
    Rng rng(2024);
    int n_lengths[7] = {};
    for (int i = 0; i < 5000; ++i) {
      const auto ex = ds.sample_train(rng);
      CHECK_FALSE(ds.is_val_input(ex.input));
      CHECK(val.count(ex.input) == 0);
      CHECK(ex.output == ds.answer(ex.input));
      REQUIRE(ex.input.size() >= 3);
      REQUIRE(ex.input.size() <= 6);
      for (char c : ex.input) CHECK((c >= 'a' && c <= 'f'));
      ++n_lengths[ex.input.size()];
    }
    for (int L = 3; L <= 6; ++L) CHECK(n_lengths[L] > 1000);  // lengths roughly uniform
    // batches: no train row decodes to a val input
    Batch b;
    ds.next_batch(b, 64, 13, Split::train, rng);
    for (int row = 0; row < 64; ++row) {
      std::string input;
      for (int t = 0; t < 13; ++t) {
        const char c = ds.tokenizer().vocab()[size_t(b.x[size_t(row) * 13 + size_t(t)])];
        if (c == '=') break;
        input.push_back(c);
      }
      CHECK(val.count(input) == 0);
      CHECK_FALSE(ds.is_val_input(input));
    }
  }
}

TEST_CASE("task dataset: batch layout, answers and masks") {
  for (const char* name : {"reverse", "sort"}) {
    TaskDataset ds(small_opts(name));
    const auto& tok = ds.tokenizer();
    const int dot = tok.id('.');
    const int T = 16;  // max_example_len 14 -> 13 positions needed, plus padding
    for (Split split : {Split::train, Split::val}) {
      Batch b;
      Rng rng(31);
      ds.next_batch(b, 32, T, split, rng);
      REQUIRE(b.B == 32);
      REQUIRE(b.T == T);
      for (int row = 0; row < 32; ++row) {
        const int* x = b.x.data() + row * T;
        const int* y = b.y.data() + row * T;
        // recover the input from x (up to '=')
        std::string input;
        int t = 0;
        while (t < T && x[t] != tok.id('=')) input.push_back(tok.vocab()[size_t(x[t++])]);
        REQUIRE(t < T);
        const int L = int(input.size());
        REQUIRE(L >= 3);
        REQUIRE(L <= 6);
        CHECK(ds.is_val_input(input) == (split == Split::val));
        const std::string answer = name == std::string("sort") ? [&] {
          std::string s = input;
          std::sort(s.begin(), s.end());
          return s;
        }()
                                                               : std::string(input.rbegin(), input.rend());
        const std::string text = input + "=" + answer + ".";
        // x = text without its last char, then '.' padding
        const int n = int(text.size()) - 1;
        for (int i = 0; i < T; ++i) CHECK(x[i] == (i < n ? tok.id(text[size_t(i)]) : dot));
        // y: -1 on the input and '=' targets and the padding, the shifted text elsewhere
        for (int i = 0; i < T; ++i) {
          if (i < L || i >= n)
            CHECK(y[i] == -1);
          else
            CHECK(y[i] == tok.id(text[size_t(i) + 1]));
        }
        CHECK(targets(tok, b, row) == answer + ".");
      }
    }
  }
}

TEST_CASE("task dataset: exact context fits, shorter is an error") {
  TaskDataset ds(small_opts("reverse"));
  Batch b;
  Rng rng(1);
  CHECK_NOTHROW(ds.next_batch(b, 4, 13, Split::train, rng));
  CHECK_THROWS_WITH_AS(ds.next_batch(b, 4, 12, Split::train, rng), doctest::Contains("context too short"),
                       UserError);
}

TEST_CASE("task dataset: option errors") {
  auto bad = [](auto edit) {
    TaskOptions o;
    edit(o);
    return o;
  };
  CHECK_NOTHROW(TaskDataset{TaskOptions{}});  // defaults are valid
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.name = "copy"; })}, doctest::Contains("name"),
                       UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.n_symbols = 1; })},
                       doctest::Contains("n_symbols"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.n_symbols = 27; })},
                       doctest::Contains("n_symbols"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.min_len = 0; })}, doctest::Contains("min_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.max_len = 3; })}, doctest::Contains("max_len"),
                       UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.max_len = 1000000; })},
                       doctest::Contains("max_len"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.val_fraction = 0.0; })},
                       doctest::Contains("val_fraction"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.val_fraction = 1.0; })},
                       doctest::Contains("val_fraction"), UserError);
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) { o.n_val = 0; })}, doctest::Contains("n_val"),
                       UserError);
  // more val examples than the space holds: 2 symbols, length 2 => 4 inputs
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) {
                         o.n_symbols = 2;
                         o.min_len = o.max_len = 2;
                         o.val_fraction = 0.5;
                         o.n_val = 5;
                       })},
                       doctest::Contains("n_val"), UserError);
  // a large space (26 symbols up to length 40 overflows 64 bits: saturates, no crash)
  CHECK_NOTHROW(TaskDataset{bad([](TaskOptions& o) {
    o.n_symbols = 26;
    o.min_len = 1;
    o.max_len = 40;
    o.n_val = 1000;
  })});
  // a large space with n_val beyond the estimated val share
  CHECK_THROWS_WITH_AS(TaskDataset{bad([](TaskOptions& o) {
                         o.n_symbols = 10;
                         o.min_len = o.max_len = 7;  // 1e7 inputs
                         o.val_fraction = 0.001;     // ~1e4 val
                         o.n_val = 5000;
                       })},
                       doctest::Contains("n_val"), UserError);
}
