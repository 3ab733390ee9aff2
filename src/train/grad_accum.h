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
// The pieces are public so that a data-parallel step, where each process runs only some of the
// micro-batches, can be built from the same parts and give the same bits.
#pragma once
#include <vector>

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
  // Leaves the batch's gradient in the parameters' .g (overwriting what was there). drop is the
  // dropout root: used directly when K = 1, else forked per micro-batch and advanced once.
  AccumResult run(Model& model, const Batch& batch, int K, Rng& drop, float label_smoothing);

 private:
  Batch micro_;
  std::vector<float> acc_;  // the running sum over micro-batches, params in store order
};

// acc = the parameters' gradients (first) or acc += them, in store order.
void copy_grads(const ParamStore& store, std::vector<float>& acc);
void add_grads(const ParamStore& store, std::vector<float>& acc);
// The parameters' gradients = acc.
void set_grads(ParamStore& store, const std::vector<float>& acc);

}  // namespace attnlab
