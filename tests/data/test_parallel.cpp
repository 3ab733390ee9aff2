// The parallel task (task_parallel.cpp) and its token-budget batches (token_batch.cpp): the split
// rule, the dropped lines, the vocabulary, and batches that keep to data.batch_tokens, repeat for a
// seed and group similar lengths. File errors are tested end to end in tests/e2e/parallel.sh.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "data/bpe.h"
#include "data/tasks.h"

using namespace attnlab;

namespace {

struct TempTsv {
  std::string path;
  explicit TempTsv(const std::string& content) {
    path = (std::filesystem::temp_directory_path() / ("attnlab_test_parallel_" + std::to_string(::getpid()) + ".tsv"))
               .string();
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempTsv() { std::remove(path.c_str()); }
};

// n pairs "word -> its reverse", lengths 1..20, a few over `long_from` characters
std::string corpus(int n, int long_from, int* n_long) {
  Rng r(5);
  std::string s;
  *n_long = 0;
  for (int i = 0; i < n; ++i) {
    const int len = 1 + int(r.below(i % 10 == 0 ? 30 : 20));
    std::string w;
    for (int k = 0; k < len; ++k) w += char('a' + r.below(26));
    *n_long += len > long_from;
    s += w + "\t" + std::string(w.rbegin(), w.rend()) + "\n";
  }
  return s;
}

TaskOptions options(const std::string& path) {
  TaskOptions o;
  o.name = "parallel";
  o.path = path;
  o.max_len = 20;
  o.val_fraction = 0.1;
  o.n_val = 1000;
  return o;
}

}  // namespace

TEST_CASE("parallel: disjoint splits by the source line, long pairs dropped and counted") {
  int n_long = 0;
  const TempTsv f(corpus(600, 20, &n_long));
  REQUIRE(n_long > 0);
  const TaskDataset ds(options(f.path), "encoder_decoder", 32);
  CHECK(ds.format() == TaskFormat::seq2seq);
  std::set<int> lines[3];
  Rng r(1);
  for (int i = 0; i < 5000; ++i) lines[0].insert(ds.sample_train(r).line);
  for (Split s : {Split::val, Split::test})
    for (const auto& ex : ds.eval_set(s)) {
      CHECK(int(ex.input.size()) <= 20);
      CHECK(ds.reference(ex) == std::string(ds.show(ex.output)));
      lines[int(s)].insert(ex.line);
    }
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      for (int l : lines[a]) CHECK(lines[b].count(l) == 0);
  CHECK(ds.eval_set(Split::val).size() > 20);  // about 10% of 600
  CHECK(ds.eval_set(Split::val).size() < 110);
  CHECK(ds.describe().find(fmt::format("{} dropped", n_long)) != std::string::npos);
  // the answer of a source line is its target
  const auto& ex = ds.eval_set(Split::test)[0];
  CHECK(ds.answer(ex.input) == ex.output);
  // another seed, another split
  TaskOptions o = options(f.path);
  o.seed = 99;
  const TaskDataset other(o, "encoder_decoder", 32);
  CHECK(other.eval_set(Split::val).front().line != ds.eval_set(Split::val).front().line);
}

TEST_CASE("parallel: the vocabulary is the train lines' bytes; other bytes are <unk>") {
  std::string s;
  for (int i = 0; i < 200; ++i) s += "ab" + std::to_string(i) + "\tba\n";
  s += "zzz-only-here\tq\n";  // one line: in whichever split, its bytes are in no other line
  const TempTsv f(s);
  const TaskDataset ds(options(f.path), "encoder_decoder", 32);
  const Tokenizer& tok = ds.tokenizer();
  CHECK(tok.find("<unk>") >= 0);
  CHECK(tok.find("<sep>") == ds.sep_id());
  CHECK(tok.find("<end>") == ds.end_id());
  bool in_train = tok.contains('z');
  bool unk_seen = false;
  for (Split sp : {Split::val, Split::test})
    for (const auto& ex : ds.eval_set(sp))
      if (ds.reference(ex) == "q") {
        unk_seen = true;
        CHECK(std::count(ex.input.begin(), ex.input.end(), tok.find("<unk>")) == 13);
      }
  CHECK(in_train != unk_seen);  // in train: in the vocabulary; else read as <unk>
}

TEST_CASE("parallel: token-budget batches keep the budget, repeat for a seed, group lengths") {
  int n_long = 0;
  const TempTsv f(corpus(800, 20, &n_long));
  for (const char* kind : {"encoder_decoder", "decoder"}) {
    CAPTURE(kind);
    const TaskDataset ds(options(f.path), kind, 48);
    for (int multiple : {1, 2, 4}) {
      const int budget = 400;
      Rng a(3), b(3);
      Batch x, y;
      double spread = 0.0;
      for (int i = 0; i < 200; ++i) {
        ds.next_token_batch(x, budget, multiple, a);
        ds.next_token_batch(y, budget, multiple, b);
        CHECK(x.x == y.x);  // the same draws give the same batch
        CHECK(x.src == y.src);
        REQUIRE(x.B >= multiple);
        CHECK(x.B % multiple == 0);
        CHECK(x.B * (x.S + x.T) <= budget);
        // the batch is as wide as its longest row, no wider
        int longest = 0, shortest = 1 << 30;
        for (int r = 0; r < x.B; ++r) {
          const int len = x.S > 0 ? x.src_len[size_t(r)] : x.x_len[size_t(r)];
          longest = std::max(longest, len);
          shortest = std::min(shortest, len);
        }
        CHECK(longest == (x.S > 0 ? x.S : x.T));
        spread += longest - shortest;
      }
      // similar lengths: sources range over 1..20, a batch over far less
      CHECK(spread / 200 < 4.0);
    }
    Batch z;
    Rng r(1);
    CHECK_THROWS_AS(ds.next_token_batch(z, 10, 1, r), UserError);  // less than the longest row
  }
}

TEST_CASE("split tokenizer: disjoint source and target ids, one decode, specials after both sides") {
  const Tokenizer src = Tokenizer::build("abc "), tgt = Tokenizer::build("123 ");
  Tokenizer tok = Tokenizer::split(src, tgt);
  const int sep = tok.add_special("<sep>");
  REQUIRE(tok.is_split());
  CHECK(tok.target_offset() == 4);
  CHECK(tok.size() == 9);
  CHECK(sep == 8);
  CHECK(tok.encode("ab c") == std::vector<int>{1, 2, 0, 3});      // the source side: ' ' a b c
  CHECK(tok.encode_target("12 3") == std::vector<int>{5, 6, 4, 7});  // the target side, offset by 4
  CHECK(tok.decode({1, 2, 4, 5, 8}) == "ab 1<sep>");
  for (int id = 0; id < 8; ++id) CHECK_FALSE(tok.is_special(id));
  CHECK(tok.is_special(sep));
  CHECK_THROWS_AS(tok.encode_target("a"), UserError);  // 'a' is not a target token
  CHECK_FALSE(tok == Tokenizer::split(src, Tokenizer::build("1234 ")));
  CHECK_THROWS_AS(Tokenizer::split(tok, tgt), UserError);  // specials come after the split
  // BPE: one model on both sides, the target's ids offset by its size; decode is byte-exact
  const std::string text = "le chat mange, der Hund schläft \xff\xfe";
  const Tokenizer bpe = Tokenizer::from_bpe(Bpe::train({text}, 270, nullptr));
  const Tokenizer both = Tokenizer::split(bpe, bpe);
  CHECK(both.size() == 2 * bpe.size());
  const std::vector<int> t = both.encode_target(text);
  CHECK(std::all_of(t.begin(), t.end(), [&](int i) { return i >= bpe.size(); }));
  CHECK(both.decode(t) == text);
  CHECK(both.decode(both.encode(text)) == text);
}

TEST_CASE("parallel with BPE and separate vocabularies: references are the decoded targets, byte for byte") {
  std::string s;
  for (int i = 0; i < 300; ++i)
    s += fmt::format("{} chats noirs, été {}\t{} ÉTÉ {}\n", i, i % 7, i, std::string(size_t(i % 3 + 1), 'x'));
  const TempTsv f(s);
  const std::string tok_path = f.path + ".tok.json";
  std::ofstream(tok_path, std::ios::binary) << Tokenizer::from_bpe(Bpe::train({s}, 300, nullptr)).to_json();
  for (bool shared : {true, false}) {
    CAPTURE(shared);
    TaskOptions o = options(f.path);
    o.tokenizer = "bpe";
    o.tokenizer_file = tok_path;
    o.shared_vocab = shared;
    o.max_len = 40;
    const TaskDataset ds(o, "encoder_decoder", 64);
    const Tokenizer& tok = ds.tokenizer();
    CHECK(tok.kind() == Tokenizer::Kind::bpe);
    CHECK(tok.size() == (shared ? 300 : 600) + 4);  // the specials follow the BPE ids
    CHECK(ds.sep_id() == tok.size() - 4);
    CHECK(ds.describe().find(shared ? "BPE tokens, one vocabulary" : "BPE tokens, separate source") !=
          std::string::npos);
    for (Split sp : {Split::val, Split::test})
      for (const auto& ex : ds.eval_set(sp)) {
        CHECK(tok.decode(ex.output) == ds.reference(ex));  // what BLEU and chrF compare
        for (int id : ex.output) CHECK((id >= 300) == !shared);
        for (int id : ex.input) CHECK(id < 300);
      }
    // the tokenizer given back (a checkpoint's) makes the same data, without the file
    TaskOptions again = o;
    again.tokenizer_file = "/nonexistent/tok.json";
    again.given_tokenizer = std::make_shared<const Tokenizer>(tok);
    const TaskDataset ds2(again, "encoder_decoder", 64);
    CHECK(ds2.tokenizer() == tok);
    CHECK(ds2.eval_set(Split::val).front().output == ds.eval_set(Split::val).front().output);
  }
  std::remove(tok_path.c_str());
}

TEST_CASE("parallel with chars and separate vocabularies: each side its own bytes") {
  std::string s;
  for (int i = 0; i < 200; ++i) s += fmt::format("abc{}\tXYZ\n", i);
  const TempTsv f(s);
  TaskOptions o = options(f.path);
  o.shared_vocab = false;
  const TaskDataset ds(o, "encoder_decoder", 32);
  const Tokenizer& tok = ds.tokenizer();
  REQUIRE(tok.is_split());
  CHECK(tok.target_offset() == 13);  // a b c 0..9
  CHECK(tok.target()->vocab() == "XYZ");
  const TaskExample& ex = ds.eval_set(Split::val).front();
  CHECK(ex.output == std::vector<int>{13, 14, 15});
  CHECK(tok.decode(ex.output) == "XYZ");
}
