// Synthetic tasks: generated from a seed, no download needed (docs/tasks.md has one section each).
//
//   seq2seq (input -> output; decoder or encoder_decoder)
//     copy       "cadb" -> "cadb"          reverse  "cadb" -> "bdac"       sort "cadb" -> "abcd"
//     addition   "123+45" -> "168"         dates    "tuesday 3 march 1987" -> "1987-03-03"
//   labelled (a target at some positions; decoder or encoder)
//     mqar       multi-query associative recall (Arora et al. 2024, Zoology)
//     needle     key-value pairs among random filler, one query at the end
//     induction  a random sequence then the same again (decoder only: an encoder would see the
//                token it must predict)
//   classify (one class per input; encoder)
//     parity           bit string -> number of 1s mod 2
//     balanced_parens  string of '(' ')' -> balanced or not
//
// Splits are disjoint by construction: an input belongs to val iff a hash of (input token ids,
// seed) maps below val_fraction in [0,1), to test iff it maps in [val_fraction, 2 val_fraction),
// and to train otherwise. The train stream redraws until it meets a train input; val and test
// are fixed lists of n_val distinct examples drawn from generators derived from the seed alone.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace attnlab {

enum class TaskFormat { seq2seq, labelled, classify };

struct TaskOptions {
  std::string name = "reverse";  // one of TaskDataset::names()
  int n_symbols = 8;             // alphabet (copy/reverse/sort/induction) or vocabulary (mqar/needle)
  int min_len = 4;
  int max_len = 8;
  double val_fraction = 0.1;     // share of the input space for val (and as much again for test)
  int n_val = 256;               // size of the fixed val set and of the fixed test set
  int n_pairs = 4;               // mqar / needle
  bool random_filler = false;    // mqar: uniform ids 1..n-1 instead of filler 0 (data.filler random)
  int n_digits = 3;              // addition
  std::string path;              // parallel: one TSV file, source<TAB>target per line
  std::string src_path, tgt_path;  // parallel: or two files, one sentence per line
  std::string tokenizer = "chars";  // parallel: chars | bpe (data.tokenizer)
  std::string tokenizer_file;       // parallel, bpe: the `tokenizers` JSON file
  bool shared_vocab = true;         // parallel: false = disjoint source and target ids (Tokenizer::split)
  // parallel: the tokenizer to use as it is (a checkpoint's, specials included) instead of making
  // one from the train lines or tokenizer_file; null = make one
  std::shared_ptr<const Tokenizer> given_tokenizer;
  uint64_t seed = 1234;
};

struct TaskExample {
  std::vector<int> input;   // token ids
  std::vector<int> output;  // seq2seq: the answer without the end token; else empty
  std::vector<int> labels;  // labelled: size == input.size(), labels[i] = token the model must
                            // predict AT position i (for a causal decoder: the next token), -1 = none
  int cls = -1;             // classify: the class
  int line = -1;            // parallel: the example's line in its file (0-based), else -1
};

class TaskGen;  // one per task (task_gen.h, internal)

class TaskDataset : public Dataset {
 public:
  // UserError for an unknown task, a model kind the task does not suit, an option out of range
  // for the task, a block_size too small for the task's longest row, or an n_val the input
  // space cannot supply.
  TaskDataset(const TaskOptions& opt, const std::string& model_kind, int block_size);
  ~TaskDataset() override;
  TaskDataset(TaskDataset&&) noexcept;

  static std::vector<std::string> names();  // every synthetic task (not parallel, read from files)
  static std::vector<std::string> kinds_for(const std::string& task);  // also accepts "text"
  static TaskFormat format_of(const std::string& task);               // UserError if unknown
  // The data.* keys (without "data.") that shape this task's examples, in docs/tasks.md's order;
  // every task also uses val_fraction and n_val. UserError if unknown.
  static std::vector<std::string> option_keys(const std::string& task);

  TaskFormat format() const;
  const std::string& name() const { return opt_.name; }
  const TaskOptions& options() const { return opt_; }
  const std::string& model_kind() const { return kind_; }
  // The metrics train/evaluate.h computes for this task, in display order: seq2seq: loss, ppl,
  // token_acc, exact_match, greedy_token_acc, bleu, chrf; labelled: loss, ppl, label_acc; classify: loss, class_acc.
  std::vector<std::string> metrics() const override;
  int sep_id() const;    // seq2seq: separator (decoder start token in encoder_decoder);
                         // classify: [CLS]; labelled: -1 (none)
  int end_id() const;    // seq2seq: ends an output; else -1
  int pad_id() const;    // pads x / src
  int n_classes() const override;  // classify: 2; else 0
  int max_input_len() const;   // longest input (tokens)
  int max_output_len() const;  // seq2seq: longest output without the end token; else 0

  const std::vector<TaskExample>& eval_set(Split split) const;  // val or test: fixed, n_val each
  TaskExample sample_train(Rng& rng) const;                      // never in val or test
  bool in_split(const std::vector<int>& input, Split split) const;
  std::vector<int> answer(const std::vector<int>& input) const;  // seq2seq: the correct output
  std::string show(const std::vector<int>& ids) const;           // tokenizer decode
  std::string reference(const TaskExample& ex) const;  // seq2seq: the answer's text for BLEU / chrF

  int batch_T() const;  // the padded row length next_batch needs for this model kind
  int batch_S() const;  // encoder_decoder: padded source length; else 0
  int row_length(int block_size) const override { return batch_T(); }
  int source_length() const override { return batch_S(); }
  const TaskDataset* task() const override { return this; }
  // Rows are right-padded to T (>= batch_T()) and, for encoder_decoder, S = batch_S(). Layout:
  //   decoder + seq2seq:   x = (input sep output end) without its last token; y[i] = the next token
  //                        for i >= len(input) (the output and end), -1 before and on padding
  //   encoder_decoder:     src = input; x = sep output; y = output end
  //   decoder/encoder + labelled: x = input, y = labels
  //   encoder + classify:  x = sep input (sep = [CLS] at position 0), cls = the class, y empty
  // Padding: pad_id in x/src, -1 in y; x_len/src_len count the non-padding tokens.
  void next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const override;
  // parallel (token_batch.cpp): train rows of similar length from a random point of the train
  // pairs sorted by length, as many as fit in `tokens` padded tokens (rows × (S + T), the batch's
  // own S and T), rounded down to a multiple of `multiple`. UserError when `tokens` cannot hold
  // `multiple` rows of the longest pair, or for a generated task.
  void next_token_batch(Batch& batch, int tokens, int multiple, Rng& rng) const override;
  const Tokenizer& tokenizer() const override;
  std::string describe() const override;

 private:
  void build_eval_sets();
  void add_row(Batch& batch, int b, const TaskExample& ex) const;
  void prepare(Batch& batch, int B, int T, int S) const;  // sizes and padding of an empty batch
  void sort_by_length();  // file-backed tasks: by_length_
  int row_tokens(const TaskExample& ex, int* S, int* T) const;  // a row's S and T; returns S + T

  TaskOptions opt_;
  std::string kind_;
  int block_size_ = 0;
  std::unique_ptr<TaskGen> gen_;
  std::vector<TaskExample> val_, test_;
  std::vector<int> by_length_;  // file-backed: train examples by (source, target) length
};

}  // namespace attnlab
