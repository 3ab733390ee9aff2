// Internal interface between TaskDataset (tasks.cpp: splits, batching, errors) and the task
// generators (task_strings.cpp, task_arith.cpp, task_recall.cpp). Not part of the public API.
//
// A generator owns the task's vocabulary and its example distribution: draw() is the train
// distribution; space() counts the distinct inputs draw() can give (saturating at kSpaceCap);
// small tasks can also enumerate() every input once, which TaskDataset uses to count the val and
// test shares exactly and to pick eval sets when rejection sampling would crawl.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "data/tasks.h"
#include "data/tokenizer.h"

namespace attnlab {

constexpr uint64_t kSpaceCap = uint64_t(1) << 62;   // input-space sizes saturate here
constexpr uint64_t kEnumLimit = uint64_t(1) << 22;  // spaces up to this size are enumerated
constexpr int kMaxLenLimit = 4096;                  // longest input any task accepts

inline uint64_t sat_mul(uint64_t a, uint64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kSpaceCap / b ? kSpaceCap : std::min(kSpaceCap, a * b);
}
inline uint64_t sat_add(uint64_t a, uint64_t b) { return a > kSpaceCap - b ? kSpaceCap : a + b; }
inline uint64_t sat_from_double(double v) {
  return !(v < double(kSpaceCap)) ? kSpaceCap : uint64_t(v);
}
// sum over L in [lo, hi] (step `step`) of n^L, saturating
inline uint64_t sum_of_powers(uint64_t n, int lo, int hi, int step = 1) {
  uint64_t total = 0;
  for (int L = lo; L <= hi; L += step) {
    uint64_t p = 1;
    for (int i = 0; i < L && p < kSpaceCap; ++i) p = sat_mul(p, n);
    total = sat_add(total, p);
  }
  return total;
}

class TaskGen {
 public:
  virtual ~TaskGen() = default;

  TaskFormat format = TaskFormat::seq2seq;
  Tokenizer tok;
  int sep = -1, end = -1, pad = -1;  // -1 where the task has none
  int n_classes = 0;
  int max_in = 0, max_out = 0;       // longest input / output (tokens, output without end)
  std::string length_keys;           // the data.* keys that set max_in / max_out (for errors)

  virtual void draw(Rng& rng, TaskExample& ex) const = 0;  // one example of the train distribution
  virtual uint64_t space() const = 0;                      // distinct inputs, saturating
  virtual bool enumerable() const { return false; }
  // Calls f once per distinct input, with its full example (only when enumerable()).
  virtual void enumerate(const std::function<void(const TaskExample&)>& f) const {}
  // Eval sets picked from an enumeration draw a stratum uniformly, then an example within it, so
  // they keep the shape of draw()'s distribution (by default: lengths uniform).
  virtual int stratum(const TaskExample& ex) const { return int(ex.input.size()); }
  // seq2seq: the correct output; UserError when `input` is not an input of this task.
  virtual std::vector<int> answer(const std::vector<int>& input) const { return {}; }
  virtual std::string describe() const = 0;  // the task-specific part of TaskDataset::describe
  // File-backed tasks (parallel): the fixed examples of a split (train: all of them; val and test:
  // at most n_val each), which TaskDataset uses instead of drawing; nullptr for generated tasks.
  virtual const std::vector<TaskExample>* examples(Split split) const { return nullptr; }
  // The text BLEU and chrF score an output against: the decoded answer, or the file's line.
  virtual std::string reference(const TaskExample& ex) const { return tok.decode(ex.output); }
};

// Each returns nullptr when the name is not one of its tasks; UserError on bad options.
std::unique_ptr<TaskGen> make_string_task(const TaskOptions& o);  // copy reverse sort induction parity balanced_parens
std::unique_ptr<TaskGen> make_arith_task(const TaskOptions& o);   // addition dates
std::unique_ptr<TaskGen> make_recall_task(const TaskOptions& o);  // mqar needle
std::unique_ptr<TaskGen> make_parallel_task(const TaskOptions& o);  // parallel (task_parallel.cpp)

// Option checks shared by the generators (messages name the data.* key).
void check_lengths(const TaskOptions& o, const std::string& task, int min_allowed, int max_allowed);

// k distinct values from [0, n) in random order (partial Fisher-Yates over `scratch`).
void sample_distinct(Rng& rng, int n, int k, std::vector<int>& out, std::vector<int>& scratch);

}  // namespace attnlab
