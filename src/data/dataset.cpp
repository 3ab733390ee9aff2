// TextDataset (see dataset.h): a char-level corpus split once into a train
// prefix and a val suffix; batches are random windows inside one split.
#include "data/dataset.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"

namespace attnlab {

namespace {

// A path for an error message: long strings (someone passed text where a path was expected) are cut.
std::string show_path(const std::string& path) {
  constexpr size_t kMax = 200;
  if (path.size() <= kMax) return path;
  return path.substr(0, kMax) + "...";
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    user_error("cannot read text file '{}': it is a directory", show_path(path));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    user_error("cannot read text file '{}': {}", show_path(path),
               errno ? std::strerror(errno) : "cannot open it");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) user_error("cannot read text file '{}': read error", show_path(path));
  return std::move(ss).str();
}

}  // namespace

TextDataset::TextDataset(const std::string& path, double val_fraction, int block_size) {
  const std::string text = read_text_file(path);
  name_ = std::filesystem::path(path).filename().string();
  if (name_.empty()) name_ = path;
  init(text, val_fraction, block_size, nullptr);
}

TextDataset::TextDataset(std::string text, double val_fraction, int block_size,
                         const Tokenizer* tokenizer) {
  name_ = "(in-memory text)";
  init(text, val_fraction, block_size, tokenizer);
}

void TextDataset::init(std::string_view text, double val_fraction, int block_size,
                       const Tokenizer* tokenizer) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    user_error("text {}: val_fraction must be in (0, 1), got {}", name_, val_fraction);
  if (block_size < 1) user_error("text {}: block_size must be at least 1, got {}", name_, block_size);

  if (tokenizer) {
    tok_ = *tokenizer;
    try {
      ids_ = tok_.encode(text);
    } catch (const UserError& e) {
      user_error("text {}: {} (the given tokenizer cannot encode this text)", name_, e.what());
    }
  } else {
    tok_ = Tokenizer::build(text);
    ids_ = tok_.encode(text);
  }

  const size_t n = ids_.size();
  n_train_ = size_t(std::floor((1.0 - val_fraction) * double(n)));
  if (n_train_ > n) n_train_ = n;  // guards against rounding; cannot happen for val_fraction > 0
  const size_t need = size_t(block_size) + 1;
  if (n_train_ < need || n - n_train_ < need)
    user_error(
        "text {} is too short for block_size {}: {} chars give train {} / val {} "
        "(val_fraction {}), and each split needs at least {} chars",
        name_, block_size, n, n_train_, n - n_train_, val_fraction, need);
}

void TextDataset::next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const {
  ATTNLAB_CHECK(B >= 1 && T >= 1);
  const size_t begin = split == Split::train ? 0 : n_train_;
  const size_t len = split == Split::train ? n_train_ : ids_.size() - n_train_;
  if (len < size_t(T) + 1)
    user_error("text {}: the {} split has {} chars, too few for windows of {} (context {} + 1)", name_,
               split == Split::train ? "train" : "val", len, T + 1, T);

  batch.B = B;
  batch.T = T;
  batch.x.resize(size_t(B) * size_t(T));
  batch.y.resize(size_t(B) * size_t(T));
  const uint64_t n_starts = uint64_t(len - size_t(T));  // s in [0, len - T - 1], so s + T < len
  for (int b = 0; b < B; ++b) {
    const size_t s = begin + size_t(rng.below(n_starts));
    const int* src = ids_.data() + s;
    int* x = batch.x.data() + size_t(b) * size_t(T);
    int* y = batch.y.data() + size_t(b) * size_t(T);
    for (int t = 0; t < T; ++t) {
      x[t] = src[t];
      y[t] = src[t + 1];
    }
  }
}

std::string TextDataset::describe() const {
  return fmt::format("text {}: {} chars, vocab {}, train {} / val {}", name_, ids_.size(), tok_.size(),
                     train_size(), val_size());
}

}  // namespace attnlab
