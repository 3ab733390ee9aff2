// One optimizer step's gradient over a global batch, computed whole or as K micro-batches
// (train.grad_accum; the math and what is bitwise are in docs/distributed.md).
//
//   K = 1   zero the gradients, forward the whole batch with the dropout stream itself, backward
//           with the mean loss: exactly the step the trainer has always taken.
//   K > 1   micro-batch k = rows [k·B/K, (k+1)·B/K) of the batch. Each is run from zeroed
//           gradients with its own dropout stream dropout_stream(root, k) and backward scaled by
//           1/N, N = the real targets of the whole batch; the gradients are then summed in k order
//           (acc = g_0, acc += g_1, ...), and the root advances by one draw (advance_dropout_root).
//
// Over R processes (Comm, mpirun -np R) the batch is cut into M = R·K micro-batches and rank r
// runs m = r·K .. r·K + K - 1 (K = train.grad_accum per process), each exactly as micro-batch m of
// one process with K = M: the same rows, dropout_stream(root, m) and the 1/N scale. The ranks
// share their (loss_m, n_m) pairs so that every rank forms the batch loss in m order, and sum
// their gradients with MPI_Allreduce. For R = 2 and K = 1 that sum is g_0 + g_1, the same bits as
// one process's acc = g_0, acc += g_1 (IEEE addition is commutative); for R > 2 MPI chooses the
// grouping of the sums, so the bits may differ (docs/distributed.md).
#pragma once
#include <vector>

#include "core/comm.h"
#include "core/param.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "model/model.h"

namespace attnlab {

// Rows [r0, r1) of `in` into `out` (every per-row field; T and S unchanged). Reuses out's buffers.
void slice_rows(const Batch& in, int r0, int r1, Batch& out);

// The dropout stream of micro-batch k (K > 1) at a step whose dropout root is `root`: depends only
// on (root, k), so a process holding micro-batch k alone can draw it.
Rng dropout_stream(const Rng& root, int k);
// After a K > 1 step: moves the root on by one draw, whatever K is and whichever micro-batches a
// process ran, so every process holds the same root for the next step.
void advance_dropout_root(Rng& root);

// One micro-batch: forward with `rng`, and (when the loss is finite) backward with the loss scaled
// as sum/denom, adding into the parameters' gradients. Returns the micro-batch's mean loss (0 when
// it counts no target); *count = the targets it counted.
float micro_step(Model& model, const Batch& micro, Rng* rng, float label_smoothing, int denom, int* count);

struct AccumResult {
  float loss = 0.0f;  // mean over the batch's real targets: Σ_k loss_k·n_k / N, summed in k order
  int count = 0;      // N
  bool finite = true;  // false: a micro-batch's loss was NaN/Inf; the gradients are then not complete
};

class GradAccumulator {
 public:
  explicit GradAccumulator(Comm& comm = Comm::world()) : comm_(&comm) {}
  // Leaves the batch's gradient in the parameters' .g (overwriting what was there), on every
  // rank. drop is the dropout root: used directly when there is one micro-batch in all, else
  // forked per micro-batch and advanced once. K micro-batches per rank; the batch's rows must
  // divide by K × ranks.
  AccumResult run(Model& model, const Batch& batch, int K, Rng& drop, float label_smoothing);

 private:
  AccumResult run_ranks(Model& model, const Batch& batch, int K, Rng& drop, float label_smoothing);
  Comm* comm_;
  Batch micro_;
  std::vector<float> acc_;  // the running sum over micro-batches, params in store order
};

// acc = the parameters' gradients (first) or acc += them, in store order.
void copy_grads(const ParamStore& store, std::vector<float>& acc);
void add_grads(const ParamStore& store, std::vector<float>& acc);
// The parameters' gradients = acc.
void set_grads(ParamStore& store, const std::vector<float>& acc);

}  // namespace attnlab
