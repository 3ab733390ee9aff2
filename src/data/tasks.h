// Synthetic sequence tasks for the decoder demo: no download needed.
//
//   reverse:  "cadb" -> "bdac"
//   sort:     "cadb" -> "abcd"
//
// Symbols are the first `n_symbols` lowercase letters; lengths are drawn
// uniformly in [min_len, max_len]. A text example is input + '=' + output + '.'
// ('=' is the separator, '.' ends the answer; both are in the vocabulary).
//
// Splits are disjoint by construction: an input belongs to val iff a hash of
// (input, seed) falls in the val bucket (val_fraction), so the train stream
// never yields a val input, and the set does not depend on generation order.
// The train stream draws from the caller's Rng; the val set is a fixed list
// of n_val distinct examples generated from the seed alone.
#pragma once
#include <string>
#include <vector>

#include "data/dataset.h"

namespace attnlab {

struct TaskOptions {
  std::string name = "reverse";  // reverse | sort
  int n_symbols = 8;             // 2..26
  int min_len = 4;
  int max_len = 8;
  double val_fraction = 0.1;     // share of the input space reserved for val
  int n_val = 256;               // size of the fixed val set
  uint64_t seed = 1234;
};

struct TaskExample {
  std::string input, output;
  std::string text() const { return input + "=" + output + "."; }
};

class TaskDataset : public Dataset {
 public:
  explicit TaskDataset(const TaskOptions& opt);  // throws UserError on bad options
  const Tokenizer& tokenizer() const override { return tok_; }
  void next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const override;
  std::string describe() const override;

  const TaskOptions& options() const { return opt_; }
  TaskExample sample_train(Rng& rng) const;               // one train example (never in val)
  const std::vector<TaskExample>& val_set() const { return val_; }
  bool is_val_input(const std::string& input) const;
  std::string answer(const std::string& input) const;     // the correct output for an input
  int max_example_len() const { return 2 * opt_.max_len + 2; }  // tokens in input=output.

 private:
  TaskOptions opt_;
  Tokenizer tok_;
  std::vector<TaskExample> val_;
};

}  // namespace attnlab
