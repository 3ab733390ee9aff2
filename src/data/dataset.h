// Datasets for the decoder (causal LM) model.
//
// A Batch holds B rows of T token ids: inputs x[B,T] and targets y[B,T]
// (y = -1 where no loss is taken: prompt positions and padding).
//
//  * TextDataset: a text file, char-level. The first (1 - val_fraction) of the
//    characters are train, the rest val (deterministic split, no shuffling
//    across the boundary). A batch is B random windows of T+1 characters
//    drawn with the given Rng; y is x shifted by one.
//  * TaskDataset: a synthetic sequence task generated from a seed (see
//    tasks.h). Each example is "<input><sep><output><end>"; x is the example
//    without its last token, y the example shifted by one with the input part
//    (and <sep>) masked to -1, right-padded to T with pad tokens (x) and -1 (y).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "data/tokenizer.h"

namespace attnlab {

enum class Split { train, val, test };

// One batch, in the layout every model kind reads (model/model.h):
//   decoder          x [B,T] tokens, y [B,T] next-token targets (-1 = no loss)
//   encoder          x [B,T] tokens (x_len gives the padding), y [B,T] per-position targets
//                    (MLM / labelled tasks, -1 = no loss) or cls [B] (classification)
//   encoder_decoder  src [B,S] source tokens (src_len), x [B,T] decoder inputs (starting with the
//                    task's separator token), y [B,T] targets (-1 = no loss)
struct Batch {
  int B = 0, T = 0;
  std::vector<int> x;        // [B,T]
  std::vector<int> y;        // [B,T], -1 = ignored; empty for classification
  std::vector<int> x_len;    // [B] tokens of each row of x that are not padding; empty = all T
  int S = 0;                 // encoder_decoder: source length
  std::vector<int> src;      // [B,S]
  std::vector<int> src_len;  // [B] non-padding source tokens
  std::vector<int> cls;      // [B] class targets (encoder classification), else empty
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  // Fill `batch` with B rows of length T (T ≤ the dataset's max length).
  // `rng` supplies all randomness; the same rng state gives the same batch.
  virtual void next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const = 0;
  virtual std::string describe() const = 0;  // one line for logs
};

class TextDataset : public Dataset {
 public:
  // Reads `path`; throws UserError if it cannot be read or is too short for T+1 windows in both splits.
  TextDataset(const std::string& path, double val_fraction, int block_size);
  // From text in memory (tests); `tokenizer` may be given to reuse a saved vocabulary, nullptr builds
  // one from the text. (No default: with one, every 3-argument call would be ambiguous with the
  // path constructor above.)
  TextDataset(std::string text, double val_fraction, int block_size, const Tokenizer* tokenizer);
  const Tokenizer& tokenizer() const override { return tok_; }
  void next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const override;
  std::string describe() const override;
  size_t train_size() const { return n_train_; }
  size_t val_size() const { return ids_.size() - n_train_; }

 private:
  void init(std::string_view text, double val_fraction, int block_size, const Tokenizer* tokenizer);

  std::string name_;
  Tokenizer tok_;
  std::vector<int> ids_;
  size_t n_train_ = 0;
};

}  // namespace attnlab
