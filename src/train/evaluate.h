// Evaluation: the metrics a task declares, on its val or test split.
//
//   loss, ppl        mean cross-entropy over the targets of eval_batches batches drawn from a fixed
//                    seed (the same batches at every evaluation), and exp(loss)
//   token_acc        teacher-forced argmax accuracy over those targets (text, seq2seq tasks)
//   label_acc        the same at the labelled positions of mqar / needle / induction
//   class_acc        classification accuracy (parity, balanced_parens)
//   exact_match      seq2seq: the output decoded from the input alone (greedy, or beam search)
//                    equals the answer, over the fixed examples of the split
//   greedy_token_acc seq2seq: share of answer positions (plus the end token) the decoded output
//                    gets right, position by position; named beam_token_acc instead when the
//                    outputs come from beam search (beam_width > 1)
//   bleu, chrf       seq2seq: corpus BLEU and chrF (0..100, sacreBLEU's defaults: text_metrics.h) of
//                    those decoded outputs against the answers (parallel: the target lines as read)
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/dataset.h"
#include "model/generate.h"
#include "model/model.h"

namespace attnlab {

class TaskDataset;

struct Prediction {
  std::string input, expected, predicted;
  bool correct = false;
};

struct EvalOptions {
  Split split = Split::val;
  int max_examples = -1;  // seq2seq decoding: how many of the split's examples (-1 = all)
  bool decode = true;     // seq2seq: run the decoding metrics
  int beam_width = 1;
  float length_penalty = 1.0f;
  // called after each loss batch and each decoded example: (done, total)
  std::function<void(long, long)> progress;
};

struct EvalReport {
  std::string task;
  std::vector<std::string> names;        // metric names in display order
  std::map<std::string, double> values;  // name -> value
  std::vector<Prediction> examples;      // seq2seq: every decoded example
  double get(const std::string& name) const { return values.at(name); }
  bool has(const std::string& name) const { return values.count(name) > 0; }
};

// Every metric the data's task declares (text: loss, ppl, token_acc).
EvalReport evaluate(Model& model, const Dataset& data, const Config& cfg, const EvalOptions& opt);

// Answers one seq2seq input with `opt` (its stop_token becomes the task's end token): an
// encoder_decoder reads the input as its source, a decoder continues input + separator. The end
// token is not returned.
std::vector<int> answer_seq2seq(Model& model, const TaskDataset& task, const std::vector<int>& input,
                                SampleOptions opt, Rng& rng);

// The answer evaluation scores: greedy (or beam search), up to the task's longest row.
std::vector<int> decode_output(Model& model, const TaskDataset& task, const std::vector<int>& input, int beam_width = 1,
                               float length_penalty = 1.0f);

}  // namespace attnlab
