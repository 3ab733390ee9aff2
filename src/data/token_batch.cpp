// Length-sorted train batches with a token budget (data.batch_tokens), as translation trainers
// (Marian, fairseq) make them: rows of similar length, as many as fit in the budget, so that little
// of each batch is padding.
//
// The train pairs are sorted once by (source length, target length, a hash of the line and the
// seed). A batch starts at a position drawn with the data Rng and takes the pairs that follow in
// that order while rows × (longest source + longest target row) stays within the budget; at the
// end of the order it goes on with the pairs before the start. The row count is then rounded down
// to a multiple of the micro-batches of the step (train.grad_accum × processes), so that every
// micro-batch has the same rows. One draw per batch: the batches depend on the seed alone, a
// resumed run continues them, and every process of an MPI job forms the same batch.
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "data/task_gen.h"
#include "data/tasks.h"

namespace attnlab {

void Dataset::next_token_batch(Batch&, int, int, Rng&) const {
  user_error("data.batch_tokens is for data.task parallel (sentence pairs read from files); set it to 0 for "
             "this data");
}

int TaskDataset::row_tokens(const TaskExample& ex, int* S, int* T) const {
  const int in = int(ex.input.size()), out = int(ex.output.size());
  if (kind_ == "encoder_decoder") {
    *S = in;
    *T = out + 1;  // x = sep output; y = output end
  } else {
    *S = 0;
    *T = in + 1 + out;  // x = input sep output
  }
  return *S + *T;
}

void TaskDataset::sort_by_length() {
  const auto& train = *gen_->examples(Split::train);
  by_length_.resize(train.size());
  std::iota(by_length_.begin(), by_length_.end(), 0);
  const auto tie = [&](int i) { return (uint64_t(train[size_t(i)].line) + 1) * 0x9E3779B97F4A7C15ull ^ opt_.seed; };
  std::sort(by_length_.begin(), by_length_.end(), [&](int a, int b) {
    const TaskExample &x = train[size_t(a)], &y = train[size_t(b)];
    if (x.input.size() != y.input.size()) return x.input.size() < y.input.size();
    if (x.output.size() != y.output.size()) return x.output.size() < y.output.size();
    return tie(a) != tie(b) ? tie(a) < tie(b) : a < b;
  });
}

void TaskDataset::next_token_batch(Batch& batch, int tokens, int multiple, Rng& rng) const {
  const auto* train = gen_->examples(Split::train);
  if (!train)
    user_error("data.batch_tokens is for data.task parallel; task {} is generated (every row the same size): use "
               "train.batch_size and set data.batch_tokens to 0", opt_.name);
  ATTNLAB_CHECK(multiple >= 1);
  const int longest = batch_S() + batch_T();  // the padded tokens of the longest row
  if (int64_t(tokens) < int64_t(multiple) * longest)
    user_error("data.batch_tokens = {} cannot hold {} row{} of the longest pair ({} tokens, source and target "
               "padded){}; raise data.batch_tokens to at least {}", tokens, multiple, multiple > 1 ? "s" : "", longest,
               multiple > 1 ? " (one per micro-batch: train.grad_accum × processes)" : "", int64_t(multiple) * longest);
  const size_t n = by_length_.size();
  const size_t start = size_t(rng.below(n));
  std::vector<int> rows;
  int S = 0, T = 0;
  for (size_t k = 0; k < n; ++k) {  // start, start+1, ..., n-1, then start-1, start-2, ...
    const size_t pos = start + k < n ? start + k : n - 1 - k;
    const TaskExample& ex = (*train)[size_t(by_length_[pos])];
    int s = 0, t = 0;
    row_tokens(ex, &s, &t);
    const int S2 = std::max(S, s), T2 = std::max(T, t);
    if (int64_t(rows.size() + 1) * (S2 + T2) > tokens) break;
    S = S2, T = T2;
    rows.push_back(by_length_[pos]);
  }
  if (rows.size() < size_t(multiple))
    user_error("data.task parallel has {} train pairs, fewer than the {} micro-batches of a step (train.grad_accum × "
               "processes)", n, multiple);
  if (rows.size() > size_t(multiple)) rows.resize(rows.size() / size_t(multiple) * size_t(multiple));
  ATTNLAB_CHECK(rows.size() % size_t(multiple) == 0 && !rows.empty());
  // the batch's own S and T (recomputed: rounding down may have left out the longest rows)
  S = 0, T = 0;
  for (int r : rows) {
    int s = 0, t = 0;
    row_tokens((*train)[size_t(r)], &s, &t);
    S = std::max(S, s), T = std::max(T, t);
  }
  prepare(batch, int(rows.size()), T, S);
  for (size_t b = 0; b < rows.size(); ++b) add_row(batch, int(b), (*train)[size_t(rows[b])]);
}

}  // namespace attnlab
