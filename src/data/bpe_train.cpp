// Byte-level BPE training (see bpe.h): count the pre-tokenizer's pieces, then merge the most
// frequent adjacent pair until the vocabulary is full. Pair counts are kept up to date
// incrementally: a merge re-counts only the words that held the merged pair, and the heap of
// candidate pairs is corrected lazily (an entry whose count went stale is pushed again with the
// current count when it reaches the top; counts of old pairs only ever fall, so the top entry,
// once current, is the true maximum).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "data/bpe.h"

namespace attnlab {

namespace {

uint64_t key(int a, int b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

struct Word {
  std::vector<int> sym;
  int64_t count;
};

struct Candidate {
  int64_t count;
  uint64_t pair;
};
// the heap's top: the highest count, then the smallest (left id, right id)
struct Lower {
  bool operator()(const Candidate& x, const Candidate& y) const {
    return x.count != y.count ? x.count < y.count : x.pair > y.pair;
  }
};

}  // namespace

Bpe Bpe::train(const std::vector<std::string_view>& texts, int vocab_size, ProgressMeter* meter) {
  if (vocab_size < 256) user_error("BPE vocabulary size must be at least 256 (the bytes), got {}", vocab_size);
  std::unordered_map<std::string_view, int64_t> piece_count;
  std::vector<std::string_view> pieces;
  for (const std::string_view t : texts) {
    pieces.clear();
    bpe_pretokenize(t, pieces);
    for (const std::string_view p : pieces) ++piece_count[p];
  }
  // the 256 bytes, in the alphabet's order: printable bytes first (GPT-2's vocabulary order)
  std::vector<std::string> vocab;
  std::unordered_map<std::string, int> index;
  int byte_id[256];
  for (int pass = 0; pass < 2; ++pass)
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      if (printable != (pass == 0)) continue;
      byte_id[b] = int(vocab.size());
      index.emplace(std::string(1, char(b)), int(vocab.size()));
      vocab.emplace_back(1, char(b));
    }

  std::vector<Word> words;
  words.reserve(piece_count.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int>> where;  // pair -> words that hold (or held) it
  for (const auto& [p, c] : piece_count) {
    Word w{{}, c};
    for (char ch : p) w.sym.push_back(byte_id[uint8_t(ch)]);
    const int wi = int(words.size());
    for (size_t i = 0; i + 1 < w.sym.size(); ++i) {
      const uint64_t k = key(w.sym[i], w.sym[i + 1]);
      pair_count[k] += c;
      auto& ws = where[k];
      if (ws.empty() || ws.back() != wi) ws.push_back(wi);
    }
    words.push_back(std::move(w));
  }
  std::priority_queue<Candidate, std::vector<Candidate>, Lower> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::pair<int, int>> merges;
  std::vector<uint64_t> touched;
  std::vector<int> merged;
  while (int(vocab.size()) < vocab_size && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const int64_t now = pair_count[top.pair];
    if (now != top.count) {
      if (now > 0) heap.push({now, top.pair});
      continue;
    }
    if (now <= 0) continue;
    const int a = int(top.pair >> 32), b = int(uint32_t(top.pair));
    std::string bytes = vocab[size_t(a)] + vocab[size_t(b)];
    auto [it, fresh] = index.emplace(bytes, int(vocab.size()));
    if (fresh) vocab.push_back(std::move(bytes));
    const int id = it->second;
    merges.emplace_back(a, b);

    std::vector<int> ws = std::move(where[top.pair]);
    where.erase(top.pair);
    touched.clear();
    for (const int wi : ws) {
      Word& w = words[size_t(wi)];
      auto& s = w.sym;
      merged.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          i += 2;
        } else {
          merged.push_back(s[i++]);
        }
      }
      if (merged.size() == s.size()) continue;  // the word no longer holds the pair
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_count[key(s[i], s[i + 1])] -= w.count;
      s.swap(merged);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = key(s[i], s[i + 1]);
        pair_count[k] += w.count;
        if (s[i] != id && s[i + 1] != id) continue;  // an old pair: its count did not grow
        auto& wk = where[k];
        if (wk.empty() || wk.back() != wi) wk.push_back(wi);
        touched.push_back(k);
      }
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (const uint64_t k : touched)
      if (pair_count[k] > 0) heap.push({pair_count[k], k});
    if (meter) meter->tick();
  }
  return Bpe(std::move(vocab), std::move(merges), false, "BPE training");
}

Bpe train_bpe_files(const std::vector<std::string>& files, int vocab_size, bool quiet) {
  if (files.empty()) user_error("tokenizer train: give at least one text file");
  if (vocab_size < 256) user_error("--vocab-size must be at least 256 (the bytes), got {}", vocab_size);
  std::vector<std::string> texts;
  for (const auto& path : files) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) user_error("cannot read text file '{}': it is a directory", path);
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) user_error("cannot read text file '{}': {}", path, errno ? std::strerror(errno) : "cannot open it");
    std::ostringstream ss;
    ss << in.rdbuf();
    texts.push_back(std::move(ss).str());
  }
  std::vector<std::string_view> views(texts.begin(), texts.end());
  ProgressMeter meter("tokenizer train", vocab_size - 256, "merges", quiet);
  Bpe model = Bpe::train(views, vocab_size, &meter);
  meter.done();
  return model;
}

}  // namespace attnlab
