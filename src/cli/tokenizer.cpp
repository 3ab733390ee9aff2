// attnlab tokenizer train|encode|decode|bench: byte-level BPE files (docs/tokenizer.md).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "data/bpe.h"
#include "data/tokenizer.h"

namespace attnlab::cli {

namespace {

std::string read_input(const std::string& path) {
  if (path.empty() || path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

Run add_tokenizer(CLI::App& app) {
  struct Opts {
    std::vector<std::string> files;
    int vocab_size = 0;
    std::string out, tokenizer, input;
    std::vector<int> ids;
    bool quiet = false, json = false;
    int runs = 5, train_vocab = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("tokenizer", "Byte-level BPE tokenizers: train one, encode, decode, time it");
  sub->require_subcommand(1);
  auto* train = sub->add_subcommand("train", "Learn byte-level BPE merges from text files (the tokenizers JSON format)");
  train->add_option("files", o->files, "Text files")->required()->check(CLI::ExistingFile);
  train->add_option("--vocab-size", o->vocab_size, "Tokens in the vocabulary (at least 256: the bytes)")->required();
  train->add_option("-o,--output", o->out, "The JSON file to write (atomically)")->required();
  train->add_flag("--quiet", o->quiet, "No progress line");
  auto* enc = sub->add_subcommand("encode", "Print the token ids of a text (a file, or stdin)");
  auto* dec = sub->add_subcommand("decode", "Write the text of token ids (arguments, or whitespace-separated on stdin)");
  auto* bench = sub->add_subcommand("bench", "Time encoding a file (single-threaded) and, with --train-vocab, training");
  for (auto* s : {enc, dec, bench})
    s->add_option("--tokenizer", o->tokenizer, "The tokenizer JSON file")->required();
  enc->add_option("input", o->input, "Text file ('-' or none: stdin)");
  dec->add_option("ids", o->ids, "Token ids");
  bench->add_option("input", o->input, "Text file")->required()->check(CLI::ExistingFile);
  bench->add_option("--runs", o->runs, "Timed runs; the median is printed")->capture_default_str();
  bench->add_option("--train-vocab", o->train_vocab, "Also time training a vocabulary of this size on the file");
  bench->add_flag("--json", o->json, "One JSON line instead of text");
  return [o, train, enc, dec, bench]() {
    if (train->parsed()) {
      const Bpe model = train_bpe_files(o->files, o->vocab_size, o->quiet);
      write_file_atomic(o->out, Tokenizer::from_bpe(model).to_json());
      if (!o->quiet)
        fmt::print("wrote {}: {} tokens, {} merges\n", o->out, model.size(), model.merges().size());
      return 0;
    }
    const Tokenizer tok = Tokenizer::load_bpe_file(o->tokenizer);
    if (enc->parsed()) {
      const std::vector<int> ids = tok.encode(read_input(o->input));
      std::string line;
      for (int id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
      fmt::print("{}\n", line);
      return 0;
    }
    if (dec->parsed()) {
      std::vector<int> ids = o->ids;
      if (ids.empty()) {
        std::istringstream in(read_input("-"));
        for (std::string w; in >> w;) {
          char* end = nullptr;
          const long v = std::strtol(w.c_str(), &end, 10);
          if (*end) user_error("decode: '{}' is not a token id", w);
          ids.push_back(int(v));
        }
      }
      for (size_t k = 0; k < ids.size(); ++k)
        if (ids[k] < 0 || ids[k] >= tok.size())
          user_error("decode: token id {} (position {}) is outside the vocabulary [0, {})", ids[k], k, tok.size());
      const std::string text = tok.decode(ids);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
    if (o->runs < 1) user_error("--runs must be at least 1, got {}", o->runs);
    const std::string text = read_input(o->input);
    std::vector<double> enc_s, train_s;
    size_t n_tokens = 0;
    for (int r = 0; r < o->runs; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      n_tokens = tok.encode(text).size();
      enc_s.push_back(seconds_since(t0));
      if (o->train_vocab > 0) {
        t0 = std::chrono::steady_clock::now();
        const Bpe model = Bpe::train({std::string_view(text)}, o->train_vocab, nullptr);
        train_s.push_back(seconds_since(t0));
      }
    }
    const double e = median(enc_s), mbs = double(text.size()) / 1e6 / e;
    if (o->json) {
      fmt::print("{{\"bytes\": {}, \"tokens\": {}, \"encode_s\": {:.6f}, \"encode_mb_s\": {:.3f}, \"train_s\": {}}}\n",
                 text.size(), n_tokens, e, mbs, train_s.empty() ? "null" : fmt::format("{:.4f}", median(train_s)));
      return 0;
    }
    fmt::print("encode {}: {} bytes -> {} tokens ({:.2f} bytes/token); median of {} runs {:.4f} s = {:.1f} MB/s\n",
               o->input, text.size(), n_tokens, double(text.size()) / double(std::max<size_t>(n_tokens, 1)), o->runs,
               e, mbs);
    if (!train_s.empty())
      fmt::print("train vocab {}: median of {} runs {:.3f} s\n", o->train_vocab, o->runs, median(train_s));
    return 0;
  };
}

}  // namespace attnlab::cli
