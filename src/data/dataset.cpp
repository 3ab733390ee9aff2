// TextDataset (see dataset.h): a char-level corpus split once into a train
// prefix and a val suffix; batches are random windows inside one split, as
// next-token prediction (decoder) or masked-token prediction (encoder, BERT).
#include "data/dataset.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "config/config.h"
#include "core/error.h"

namespace attnlab {

namespace {

// A path for an error message: long strings (someone passed text where a path was expected) are cut.
std::string show_path(const std::string& path) {
  constexpr size_t kMax = 200;
  if (path.size() <= kMax) return path;
  return path.substr(0, kMax) + "...";
}

// The corpora scripts/get_data.sh fetches are not in the repository: a missing one is the first
// thing a fresh clone meets, so the error names the command.
std::string missing_file_hint(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  if (name == "tinyshakespeare.txt")
    return "; fetch it with `scripts/get_data.sh tinyshakespeare` (from the repository root, into data/)";
  return "; point data.path at a text file (`scripts/get_data.sh tinyshakespeare` fetches the Shakespeare "
         "corpus into data/)";
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    key_error({"data.path"}, "cannot read text file '{}': it is a directory", show_path(path));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    key_error({"data.path"}, "cannot read text file '{}': {}{}", show_path(path),
              err ? std::strerror(err) : "cannot open it",
              err == ENOENT || !std::filesystem::exists(path, ec) ? missing_file_hint(path) : "");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) key_error({"data.path"}, "cannot read text file '{}': read error", show_path(path));
  return std::move(ss).str();
}

}  // namespace

TextDataset::TextDataset(const std::string& path, double val_fraction, int block_size,
                         const std::string& model_kind, double mask_prob, const Tokenizer* tokenizer)
    : kind_(model_kind), mask_prob_(mask_prob) {
  name_ = std::filesystem::path(path).filename().string();
  if (name_.empty()) name_ = path;
  const std::string text = read_text_file(path);
  init(text, val_fraction, block_size, tokenizer);
}

TextDataset::TextDataset(std::string text, double val_fraction, int block_size, const Tokenizer* tokenizer,
                         const std::string& model_kind, double mask_prob)
    : kind_(model_kind), mask_prob_(mask_prob) {
  name_ = "(in-memory text)";
  init(text, val_fraction, block_size, tokenizer);
}

void TextDataset::init(std::string_view text, double val_fraction, int block_size,
                       const Tokenizer* tokenizer) {
  if (kind_ == "encoder_decoder")
    key_error({"data.task", "model.kind"},
        "data.task 'text' is character language modelling: it needs model.kind decoder (next-token) or "
        "encoder (masked-token), got encoder_decoder");
  if (kind_ != "decoder" && kind_ != "encoder")
    user_error("text {}: model.kind must be decoder or encoder, got '{}'", name_, kind_);
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    user_error("text {}: val_fraction must be in (0, 1), got {}", name_, val_fraction);
  if (block_size < 1) user_error("text {}: block_size must be at least 1, got {}", name_, block_size);
  if (kind_ == "encoder" && !(mask_prob_ >= 0.0 && mask_prob_ <= 1.0))
    key_error({"data.mask_prob"}, "text {}: data.mask_prob must be in [0, 1], got {}", name_, mask_prob_);

  if (tokenizer) {
    tok_ = *tokenizer;
    if (tok_.kind() == Tokenizer::Kind::symbols)
      user_error("text {}: the given tokenizer is of kind {}, text needs chars or bpe", name_,
                 Tokenizer::kind_name(tok_.kind()));
    try {
      ids_ = tok_.encode(text);
    } catch (const UserError& e) {
      user_error("text {}: {} (the given tokenizer cannot encode this text)", name_, e.what());
    }
  } else {
    tok_ = Tokenizer::build(text);
    ids_ = tok_.encode(text);
  }
  if (kind_ == "encoder") {
    mask_id_ = tok_.find("<mask>");
    if (mask_id_ < 0) mask_id_ = tok_.add_special("<mask>");
  }
  for (int i = 0; i < tok_.size(); ++i)
    if (!tok_.is_special(i)) ordinary_.push_back(i);

  const size_t n = ids_.size();
  n_train_ = size_t(std::floor((1.0 - val_fraction) * double(n)));
  if (n_train_ > n) n_train_ = n;  // guards against rounding; cannot happen for val_fraction > 0
  const size_t need = size_t(block_size) + (kind_ == "decoder" ? 1 : 0);
  if (n_train_ < need || n - n_train_ < need)
    key_error({"model.block_size", "data.val_fraction"},
        "text {} is too short for block_size {}: {} tokens give train {} / val {} "
        "(val_fraction {}), and each split needs at least {} tokens",
        name_, block_size, n, n_train_, n - n_train_, val_fraction, need);
}

void TextDataset::next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const {
  ATTNLAB_CHECK(B >= 1 && T >= 1);
  if (split == Split::test)
    user_error("text {}: a text dataset has a train and a val split only, no test split", name_);
  const bool mlm = kind_ == "encoder";
  const size_t window = size_t(T) + (mlm ? 0 : 1);
  const size_t begin = split == Split::train ? 0 : n_train_;
  const size_t len = split == Split::train ? n_train_ : ids_.size() - n_train_;
  if (len < window)
    user_error("text {}: the {} split has {} chars, too few for windows of {}", name_,
               split == Split::train ? "train" : "val", len, window);

  batch.S = 0;  // clear what another layout may have left (clear() keeps the capacity)
  batch.x_len.clear();
  batch.src.clear();
  batch.src_len.clear();
  batch.cls.clear();
  batch.B = B;
  batch.T = T;
  batch.x.resize(size_t(B) * size_t(T));
  batch.y.resize(size_t(B) * size_t(T));
  const uint64_t n_starts = uint64_t(len - window) + 1;  // s + window <= len
  for (int b = 0; b < B; ++b) {
    const size_t s = begin + size_t(rng.below(n_starts));
    const int* src = ids_.data() + s;
    int* x = batch.x.data() + size_t(b) * size_t(T);
    int* y = batch.y.data() + size_t(b) * size_t(T);
    if (!mlm) {
      for (int t = 0; t < T; ++t) {
        x[t] = src[t];
        y[t] = src[t + 1];
      }
      continue;
    }
    // masked-token prediction: choose positions, then corrupt the chosen inputs 80/10/10
    int chosen = 0;
    for (int t = 0; t < T; ++t) {
      x[t] = src[t];
      const bool pick = double(rng.uniform()) < mask_prob_;
      y[t] = pick ? src[t] : -1;
      chosen += pick;
    }
    if (chosen == 0) {
      const int t = int(rng.below(uint64_t(T)));
      y[t] = src[t];
    }
    for (int t = 0; t < T; ++t) {
      if (y[t] < 0) continue;
      const float u = rng.uniform();
      if (u < 0.8f)
        x[t] = mask_id_;
      else if (u < 0.9f)
        x[t] = ordinary_[size_t(rng.below(ordinary_.size()))];
    }
  }
}

std::string TextDataset::describe() const {
  const bool bpe = tok_.kind() == Tokenizer::Kind::bpe;
  std::string d = fmt::format("text {}: {} {}, vocab {}{}, train {} / val {}", name_, ids_.size(),
                              bpe ? "tokens" : "chars", tok_.size(), bpe ? " (bpe)" : "", train_size(), val_size());
  if (kind_ == "encoder") d += fmt::format(", masked-token prediction (mask_prob {})", mask_prob_);
  return d;
}

}  // namespace attnlab
