// Datasets: what the models train and evaluate on.
//
// A Batch (below) holds B rows in the layout of one model kind.
//
//  * TextDataset: a text file, char-level (one token per byte) or byte-level BPE
//    (data.tokenizer). The first (1 - val_fraction) of the tokens are train, the
//    rest val (deterministic split, no shuffling across the boundary; there is no
//    test split). Batches are B random windows inside one split, drawn with the
//    given Rng:
//      decoder: windows of T+1 tokens; x = the first T, y = x shifted by one.
//      encoder: masked-token prediction (BERT, Devlin et al. 2019) on windows of
//               T characters: each position is chosen with probability mask_prob
//               (at least one per row); y = the original token at chosen positions,
//               -1 elsewhere; a chosen x becomes "<mask>" with probability 0.8, a
//               uniformly random ordinary token with 0.1, and stays as it is with
//               0.1. "<mask>" is a special token appended to the vocabulary only
//               for encoder models.
//      encoder_decoder: not supported (UserError).
//  * TaskDataset: a synthetic task generated from a seed (tasks.h, docs/tasks.md).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "data/tokenizer.h"

namespace attnlab {

enum class Split { train, val, test };

class TaskDataset;

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
  // Whether next_batch can draw from `split` (a text file has no test split).
  virtual bool has_split(Split split) const { return true; }
  // The metrics train/evaluate.h reports on this data, in display order.
  virtual std::vector<std::string> metrics() const { return {"loss", "ppl", "token_acc"}; }
  // What a model for this data is built with: the padded row length of a batch (given the
  // config's block_size), the encoder_decoder source length (0: none) and the size of the
  // classification head (0: none).
  virtual int row_length(int block_size) const { return block_size; }
  virtual int source_length() const { return 0; }
  virtual int n_classes() const { return 0; }
  // The synthetic task behind the data (its examples, special tokens and answers, for seq2seq
  // decoding), or nullptr for text.
  virtual const TaskDataset* task() const { return nullptr; }
  // data.batch_tokens > 0: a train batch of rows of similar length within a budget of padded
  // tokens (TaskDataset, parallel task); here a UserError: other data has no such batches.
  virtual void next_token_batch(Batch& batch, int tokens, int multiple, Rng& rng) const;
};

class TextDataset : public Dataset {
 public:
  // Reads `path`; throws UserError if it cannot be read or is too short for one window in each
  // split, if model_kind is not decoder or encoder, or if mask_prob is outside [0, 1].
  // `tokenizer` (chars or bpe) encodes the text; nullptr builds a chars one from the text.
  TextDataset(const std::string& path, double val_fraction, int block_size,
              const std::string& model_kind = "decoder", double mask_prob = 0.15,
              const Tokenizer* tokenizer = nullptr);
  // From text in memory (tests); `tokenizer` may be given to reuse a saved vocabulary, nullptr builds
  // one from the text (for an encoder, "<mask>" is appended when the given tokenizer lacks it).
  // (The tokenizer argument has no default: with one, every 3-argument call would be ambiguous
  // with the path constructor above.)
  TextDataset(std::string text, double val_fraction, int block_size, const Tokenizer* tokenizer,
              const std::string& model_kind = "decoder", double mask_prob = 0.15);
  const Tokenizer& tokenizer() const override { return tok_; }
  // split must be train or val; T <= the split's length (decoder: T+1).
  void next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const override;
  std::string describe() const override;
  bool has_split(Split split) const override { return split != Split::test; }
  size_t train_size() const { return n_train_; }
  size_t val_size() const { return ids_.size() - n_train_; }
  // The first n token ids of the val split (fewer when it is shorter).
  std::vector<int> val_prefix(size_t n) const {
    return {ids_.begin() + long(n_train_), ids_.begin() + long(n_train_ + std::min(n, val_size()))};
  }
  const std::string& model_kind() const { return kind_; }
  // text data also reports loss_per_char (nats per byte of text, train/evaluate.cpp)
  std::vector<std::string> metrics() const override { return {"loss", "ppl", "token_acc", "loss_per_char"}; }
  int mask_id() const { return mask_id_; }  // encoder: the id of "<mask>"; decoder: -1

 private:
  void init(std::string_view text, double val_fraction, int block_size, const Tokenizer* tokenizer);

  std::string name_;
  std::string kind_;
  double mask_prob_ = 0.15;
  Tokenizer tok_;
  std::vector<int> ids_;
  std::vector<int> ordinary_;  // ids of the ordinary (non-special) tokens: MLM random replacements
  int mask_id_ = -1;
  size_t n_train_ = 0;
};

}  // namespace attnlab
