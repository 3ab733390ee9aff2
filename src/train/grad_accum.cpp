#include "train/grad_accum.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace attnlab {

namespace {

// rows [r0, r1) of a [B, width] array (an empty array stays empty)
void rows_of(const std::vector<int>& in, int width, int r0, int r1, std::vector<int>& out) {
  if (in.empty()) {
    out.clear();
    return;
  }
  out.assign(in.begin() + size_t(r0) * width, in.begin() + size_t(r1) * width);
}

}  // namespace

void slice_rows(const Batch& in, int r0, int r1, Batch& out) {
  ATTNLAB_CHECK(0 <= r0 && r0 < r1 && r1 <= in.B);
  out.B = r1 - r0;
  out.T = in.T;
  out.S = in.S;
  rows_of(in.x, in.T, r0, r1, out.x);
  rows_of(in.y, in.T, r0, r1, out.y);
  rows_of(in.x_len, 1, r0, r1, out.x_len);
  rows_of(in.src, in.S, r0, r1, out.src);
  rows_of(in.src_len, 1, r0, r1, out.src_len);
  rows_of(in.cls, 1, r0, r1, out.cls);
}

Rng dropout_stream(const Rng& root, int k) { return root.fork(uint64_t(k)); }

void advance_dropout_root(Rng& root) { root.next_u64(); }

float micro_step(Model& model, const Batch& micro, Rng* rng, float label_smoothing, int denom, int* count) {
  const float loss = model.forward(micro, true, rng, label_smoothing);
  *count = model.loss_count();
  if (std::isfinite(loss)) model.backward(denom);
  return loss;
}

void copy_grads(const ParamStore& store, std::vector<float>& acc) {
  acc.resize(store.count());
  size_t off = 0;
  for (const Param& p : store.all()) {
    std::copy(p.g.begin(), p.g.end(), acc.begin() + off);
    off += p.g.size();
  }
}

void add_grads(const ParamStore& store, std::vector<float>& acc) {
  ATTNLAB_CHECK(acc.size() == store.count());
  size_t off = 0;
  for (const Param& p : store.all()) {
    float* a = acc.data() + off;
    const float* g = p.g.data();
    const size_t n = p.g.size();
    for (size_t i = 0; i < n; i++) a[i] += g[i];
    off += n;
  }
}

void set_grads(ParamStore& store, const std::vector<float>& acc) {
  ATTNLAB_CHECK(acc.size() == store.count());
  size_t off = 0;
  for (Param& p : store.all()) {
    std::copy(acc.begin() + off, acc.begin() + off + p.g.size(), p.g.begin());
    off += p.g.size();
  }
}

AccumResult GradAccumulator::run(Model& model, const Batch& batch, int K, Rng& drop, float label_smoothing) {
  if (comm_->size() > 1) return run_ranks(model, batch, K, drop, label_smoothing);
  ATTNLAB_CHECK(K >= 1 && batch.B % K == 0);
  AccumResult r;
  ParamStore& store = model.params();
  if (K == 1) {  // the whole batch: no slicing, no accumulator, the root stream itself
    store.zero_grad();
    r.loss = micro_step(model, batch, &drop, label_smoothing, 0, &r.count);
    r.finite = std::isfinite(r.loss);
    return r;
  }
  const int N = model.count_targets(batch), rows = batch.B / K;
  double weighted = 0.0;  // Σ_k loss_k·n_k, in k order
  int seen = 0;
  for (int k = 0; k < K; k++) {
    slice_rows(batch, k * rows, (k + 1) * rows, micro_);
    Rng rng = dropout_stream(drop, k);
    store.zero_grad();
    int n = 0;
    const float loss = micro_step(model, micro_, &rng, label_smoothing, N, &n);
    if (!std::isfinite(loss)) {
      r.loss = loss;
      r.count = N;
      r.finite = false;
      advance_dropout_root(drop);
      return r;
    }
    weighted += double(loss) * n;
    seen += n;
    if (k == 0) copy_grads(store, acc_);
    else add_grads(store, acc_);
  }
  ATTNLAB_CHECK(seen == N);
  set_grads(store, acc_);
  advance_dropout_root(drop);
  r.count = N;
  r.loss = N > 0 ? float(weighted / N) : 0.0f;
  return r;
}

// This rank's K micro-batches of the R·K, then the pairs (loss_m, n_m) of all of them and the
// gradient sum over the ranks. Every collective is reached by every rank whatever its losses are.
AccumResult GradAccumulator::run_ranks(Model& model, const Batch& batch, int K, Rng& drop,
                                       float label_smoothing) {
  const int R = comm_->size(), M = R * K;
  ATTNLAB_CHECK(K >= 1 && batch.B % M == 0);
  ParamStore& store = model.params();
  const int N = model.count_targets(batch), rows = batch.B / M;
  std::vector<double> mine(2 * size_t(K), 0.0);  // loss_k, n_k of this rank's micro-batches
  for (int k = 0; k < K; k++) {
    const int m = comm_->rank() * K + k;
    slice_rows(batch, m * rows, (m + 1) * rows, micro_);
    Rng rng = dropout_stream(drop, m);
    store.zero_grad();
    int n = 0;
    const float loss = micro_step(model, micro_, &rng, label_smoothing, N, &n);
    mine[2 * size_t(k)] = double(loss);
    mine[2 * size_t(k) + 1] = double(n);
    if (!std::isfinite(loss)) break;  // the gradients are not used (every rank sees this loss below)
    if (k == 0) copy_grads(store, acc_);
    else add_grads(store, acc_);
  }
  const std::vector<double> all = comm_->allgather(mine);  // micro-batch m at 2m, 2m + 1
  advance_dropout_root(drop);
  AccumResult r;
  r.count = N;
  double weighted = 0.0;  // Σ_m loss_m·n_m in m order, as one process sums it
  for (int m = 0; m < M; m++) {
    const double loss = all[2 * size_t(m)];
    if (!std::isfinite(loss)) {
      r.loss = float(loss);
      r.finite = false;
      return r;
    }
    weighted += loss * all[2 * size_t(m) + 1];
  }
  comm_->allreduce_sum(acc_.data(), acc_.size());
  set_grads(store, acc_);
  r.loss = N > 0 ? float(weighted / N) : 0.0f;
  return r;
}

}  // namespace attnlab
