// The training loop: data -> forward -> backward -> clip -> AdamW, with
// periodic evaluation, a progress display, metrics and checkpoints.
//
// Run directory layout (docs/checkpoint-format.md, "Run directory"):
//   config.yaml             the resolved config (every key)
//   metrics.jsonl           one JSON object per logged step / evaluation
//   metrics.csv             the same rows, fixed columns (metrics_log.h)
//   train.log               what the console showed (plain lines)
//   checkpoints/step_NNNNNNN.safetensors        model weights + config + tokenizer
//   checkpoints/step_NNNNNNN.state.safetensors  optimizer moments, step, RNG states, ... (exact resume)
//   checkpoints/latest      file name of the newest checkpoint
//   checkpoints/best.safetensors                weights at the lowest val loss so far
//
// A save writes the state file first, the model second and the `latest`
// pointer last, each atomically, so `latest` always names a complete pair.
//
// Interruption: with TrainOptions::handle_signals, SIGINT/SIGTERM make the
// loop finish the current step, save a checkpoint and return (summary.interrupted);
// a second signal exits the process at once (128 + signal number), leaving the
// last complete checkpoint as it was.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/tasks.h"
#include "model/model.h"
#include "train/evaluate.h"

namespace attnlab {

struct TrainSummary {
  int start_step = 0;       // 0, or the step a resumed run continued from
  int steps = 0;            // steps done when the run returned
  bool interrupted = false; // stopped early by a signal or TrainOptions::stop_after
  double seconds = 0.0;
  double tokens_per_s = 0.0;
  float train_loss = 0.0f;  // last logged
  float val_loss = 0.0f;    // last evaluation
  int best_step = -1;       // lowest val loss so far, and its step (-1: none)
  float best_val_loss = 0.0f;
  int skipped_steps = 0;    // train.on_nan: skip
  std::string checkpoint;   // path of the last checkpoint written
};

struct TrainOptions {
  // SIGINT/SIGTERM stop the run cleanly (see above). The CLI sets it; tests drive stop_after.
  bool handle_signals = false;
  // A run directory that holds an earlier run (earlier_run in train/run_dir.h) is cleared first;
  // without it, train() refuses such a directory (a UserError naming --resume and --overwrite).
  // The CLI sets it for `train --overwrite`; the experiment runner when it restarts a cell.
  bool overwrite = false;
  // Console lines go to train.log only, not to stdout (the experiment runner prints its own progress).
  bool quiet = false;
  // Called after each completed step `done` (1-based, before the end of the run); returning
  // true stops the run exactly as a signal would: checkpoint + state saved, summary.interrupted.
  std::function<bool(int done)> stop_after;
  // Test hooks: called before the forward pass and after the backward pass of step `done`.
  std::function<void(int done, Model& model)> before_forward, after_backward;
};

// A new run in run_dir (created). A directory that holds an earlier run is refused, or with
// opts.overwrite cleared of that run's checkpoints, metrics and log.
TrainSummary train(const Config& cfg, const std::string& run_dir, const TrainOptions& opts = {});

// Continues the run in run_dir from its latest checkpoint and training state, using
// run_dir/config.yaml. `overrides` (key=value, as --set) may only change resume_keys();
// anything else is a UserError. The metrics log continues as if the run had never stopped.
TrainSummary resume(const std::string& run_dir, const std::vector<std::string>& overrides = {},
                    const TrainOptions& opts = {});
// The config keys a resume may change: they do not alter the model, the data or the optimizer.
const std::vector<std::string>& resume_keys();

}  // namespace attnlab
