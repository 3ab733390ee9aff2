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
