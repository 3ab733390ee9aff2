// Tests for src/data: Tokenizer and TextDataset (TaskDataset: test_tasks.cpp).
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
#include "corpus.h"
#include "data/dataset.h"
#include "data/factory.h"
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

TEST_CASE("text dataset: tinyshakespeare (the corpus in ATTNLAB_DATA_DIR, default data/)") {
  const auto corpus = test::find_corpus("tinyshakespeare.txt");
  if (!corpus.path) {
    if (corpus.must_exist) FAIL(corpus.missing);
    MESSAGE("SKIPPED tinyshakespeare test: " << corpus.missing);
    return;
  }
  const std::string& path = *corpus.path;
  TextDataset ds(path, 0.1, 256);
  CHECK(ds.describe() == "text tinyshakespeare.txt: 1115394 chars, vocab 65, train 1003854 / val 111540");
  Batch b;
  Rng r(0);
  ds.next_batch(b, 4, 256, Split::val, r);
  for (int t = 0; t + 1 < 256; ++t) CHECK(b.y[size_t(t)] == b.x[size_t(t) + 1]);
}

TEST_CASE("tokenizer: symbols kind splits on whitespace and joins with one space") {
  const auto tok = Tokenizer::symbols({"k1", "v2", "_", "s10"});
  CHECK(tok.kind() == Tokenizer::Kind::symbols);
  CHECK(tok.size() == 4);
  CHECK(tok.encode("k1 v2\t_\n\n  s10 ") == std::vector<int>{0, 1, 2, 3});
  CHECK(tok.encode("") == std::vector<int>{});
  CHECK(tok.encode("   ") == std::vector<int>{});
  CHECK(tok.decode({3, 0, 0}) == "s10 k1 k1");
  CHECK(tok.decode({}) == "");
  CHECK(tok.find("v2") == 1);
  CHECK(tok.find("v3") == -1);
  CHECK(tok.vocab().empty());
  CHECK(tok.contains('_'));
  CHECK(tok.id('_') == 2);
  CHECK_THROWS_WITH_AS(tok.encode("k1 k9"), doctest::Contains("'k9'"), UserError);
  CHECK_THROWS_AS(tok.decode({4}), std::out_of_range);
  CHECK_THROWS_WITH_AS(Tokenizer::symbols({"a", "b", "a"}), doctest::Contains("duplicate"), UserError);
  CHECK_THROWS_AS(Tokenizer::symbols({"a", ""}), UserError);
  CHECK_THROWS_WITH_AS(Tokenizer::symbols({"a b"}), doctest::Contains("whitespace"), UserError);
}

TEST_CASE("tokenizer: special tokens") {
  auto tok = Tokenizer::from_vocab("ab");
  const int mask = tok.add_special("<mask>");
  CHECK(mask == 2);
  CHECK(tok.size() == 3);
  CHECK(tok.find("<mask>") == 2);
  CHECK(tok.is_special(2));
  CHECK_FALSE(tok.is_special(0));
  CHECK(tok.vocab() == "ab");  // ordinary bytes only
  CHECK(tok.decode({0, 2, 1}) == "a<mask>b");
  CHECK(tok.encode("ab") == std::vector<int>{0, 1});  // chars: byte by byte, never a special
  CHECK_THROWS_AS(tok.encode("<mask>"), UserError);
  CHECK_THROWS_WITH_AS(tok.add_special("<mask>"), doctest::Contains("duplicate"), UserError);
  CHECK_THROWS_AS(tok.add_special("mask"), UserError);
  CHECK_THROWS_AS(tok.add_special("<a b>"), UserError);
  CHECK_THROWS_AS(tok.add_special("<>"), UserError);

  auto sym = Tokenizer::symbols({"s0", "s1"});
  CHECK(sym.add_special("<sep>") == 2);
  CHECK(sym.encode("s1 <sep> s0") == std::vector<int>{1, 2, 0});  // symbols: specials are words like any other
  CHECK(sym.decode({0, 2}) == "s0 <sep>");
}

TEST_CASE("tokenizer: from_tokens rebuilds an identical tokenizer") {
  auto chars = Tokenizer::build("hello world\n");
  chars.add_special("<mask>");
  auto sym = Tokenizer::symbols({"_", "k1", "v2"});
  sym.add_special("<end>");
  for (const Tokenizer* t : {&chars, &sym}) {
    const auto copy = Tokenizer::from_tokens(Tokenizer::parse_kind(Tokenizer::kind_name(t->kind())), t->tokens());
    CHECK(copy == *t);
    CHECK(copy.tokens() == t->tokens());
    CHECK(copy.vocab() == t->vocab());
    for (int i = 0; i < t->size(); ++i) CHECK(copy.is_special(i) == t->is_special(i));
    std::vector<int> all(size_t(t->size()));
    for (int i = 0; i < t->size(); ++i) all[size_t(i)] = i;
    CHECK(copy.decode(all) == t->decode(all));
  }
  CHECK(chars.encode("hello") == Tokenizer::from_tokens(Tokenizer::Kind::chars, chars.tokens()).encode("hello"));
  CHECK_FALSE(chars == sym);
  CHECK_THROWS_WITH_AS(Tokenizer::from_tokens(Tokenizer::Kind::chars, {"a", "bc"}), doctest::Contains("'bc'"),
                       UserError);
  CHECK_THROWS_AS(Tokenizer::parse_kind("bytes"), UserError);
  CHECK(Tokenizer::from_tokens(Tokenizer::Kind::chars, {}).size() == 0);
}

// ---------------------------------------------------------------- text dataset: encoder (MLM)

TEST_CASE("text dataset: decoder vocabulary has no <mask>; encoder appends it") {
  const std::string text = repeat("the cat sat on the mat. ", 40);
  TextDataset dec(text, 0.1, 16, nullptr);
  TextDataset enc(text, 0.1, 16, nullptr, "encoder", 0.15);
  CHECK(dec.tokenizer().find("<mask>") == -1);
  CHECK(dec.mask_id() == -1);
  CHECK(enc.tokenizer().size() == dec.tokenizer().size() + 1);
  CHECK(enc.mask_id() == dec.tokenizer().size());
  CHECK(enc.tokenizer().vocab() == dec.tokenizer().vocab());  // ordinary ids unchanged
  CHECK(enc.describe().find("mask_prob") != std::string::npos);
  // a saved encoder tokenizer (with <mask>) is reused as it is
  TextDataset again(text, 0.1, 16, &enc.tokenizer(), "encoder", 0.15);
  CHECK(again.tokenizer() == enc.tokenizer());
  CHECK(again.mask_id() == enc.mask_id());
  CHECK_THROWS_WITH_AS(TextDataset(text, 0.1, 16, nullptr, "encoder_decoder", 0.15),
                       doctest::Contains("got encoder_decoder"), UserError);
  CHECK_THROWS_AS(TextDataset(text, 0.1, 16, nullptr, "encoder", 1.5), UserError);
  CHECK_FALSE(enc.has_split(Split::test));
  Batch b;
  Rng r(1);
  CHECK_THROWS_WITH_AS(enc.next_batch(b, 2, 16, Split::test, r), doctest::Contains("no test split"), UserError);
  // an encoder window is T chars (a decoder's T+1): 10 chars at val 0.5 give splits of 5
  CHECK_NOTHROW(TextDataset("abcdefghij", 0.5, 5, nullptr, "encoder", 0.15));
  CHECK_THROWS_AS(TextDataset("abcdefghij", 0.5, 5, nullptr), UserError);
}

TEST_CASE("text dataset: masked-token batches (choice rate, 80/10/10, targets, windows)") {
  std::string text;
  for (int i = 0; i < 20000; ++i) text.push_back(char('a' + (i * 7 + i / 13 + i / 101) % 26));
  const double p = 0.15;
  TextDataset ds(text, 0.1, 64, nullptr, "encoder", p);
  const Tokenizer& tok = ds.tokenizer();
  const auto ids = ds.tokenizer().encode(text);
  const int mask = ds.mask_id();
  const int B = 64, T = 64;
  long chosen = 0, total = 0, n_mask = 0, n_same = 0, n_other = 0;
  Rng rng(5);
  for (int rep = 0; rep < 12; ++rep) {
    Batch b;
    ds.next_batch(b, B, T, Split::train, rng);
    REQUIRE(b.x.size() == size_t(B * T));
    REQUIRE(b.y.size() == size_t(B * T));
    CHECK(b.cls.empty());
    CHECK(b.S == 0);
    for (int row = 0; row < B; ++row) {
      const int* x = b.x.data() + row * T;
      const int* y = b.y.data() + row * T;
      std::vector<int> orig(static_cast<size_t>(T));
      int row_chosen = 0;
      for (int t = 0; t < T; ++t) {
        orig[size_t(t)] = y[t] >= 0 ? y[t] : x[t];
        CHECK(orig[size_t(t)] != mask);
        if (y[t] < 0) continue;
        ++row_chosen;
        if (x[t] == mask)
          ++n_mask;
        else if (x[t] == y[t])
          ++n_same;
        else {
          ++n_other;
          CHECK_FALSE(tok.is_special(x[t]));
        }
      }
      CHECK(row_chosen >= 1);
      chosen += row_chosen;
      total += T;
      // unchosen inputs and the targets rebuild a real window of the train split
      bool found = false;
      for (size_t s = 0; s + size_t(T) <= ds.train_size() && !found; ++s)
        found = std::equal(orig.begin(), orig.end(), ids.begin() + long(s));
      CHECK(found);
    }
  }
  const double rate = double(chosen) / double(total);
  CHECK(rate > 0.13);
  CHECK(rate < 0.17);
  const double c = double(chosen);
  CHECK(n_mask / c > 0.76);
  CHECK(n_mask / c < 0.84);
  CHECK(n_other / c > 0.07);  // a random token equal to the original counts as unchanged (1/26 of 10%)
  CHECK(n_other / c < 0.12);
  CHECK(n_same / c > 0.07);
  CHECK(n_same / c < 0.13);

  // determinism, and mask_prob 0 still chooses exactly one position per row
  Batch a1, a2;
  Rng r1(9), r2(9);
  ds.next_batch(a1, 8, 32, Split::val, r1);
  ds.next_batch(a2, 8, 32, Split::val, r2);
  CHECK(same_batch(a1, a2));
  TextDataset none(text, 0.1, 32, nullptr, "encoder", 0.0);
  Batch z;
  Rng r3(2);
  none.next_batch(z, 16, 32, Split::train, r3);
  for (int row = 0; row < 16; ++row)
    CHECK(std::count_if(z.y.begin() + row * 32, z.y.begin() + row * 32 + 32, [](int v) { return v >= 0; }) == 1);
}

TEST_CASE("factory: text for decoder and encoder") {
  TempFile f(repeat("to be or not to be\n", 20));
  Config cfg;
  cfg.data.task = "text";
  cfg.data.path = f.path;
  cfg.model.block_size = 16;
  cfg.model.kind = ModelConfig::Kind::decoder;
  auto dec = make_dataset(cfg);
  REQUIRE(dynamic_cast<TextDataset*>(dec.get()) != nullptr);
  CHECK(dec->tokenizer().find("<mask>") == -1);
  cfg.model.kind = ModelConfig::Kind::encoder;
  auto enc = make_dataset(cfg);
  CHECK(enc->tokenizer().find("<mask>") >= 0);
  cfg.model.kind = ModelConfig::Kind::encoder_decoder;
  CHECK_THROWS_AS(make_dataset(cfg), UserError);
}
