// The training loop: data -> forward -> backward -> clip -> AdamW, with
// periodic evaluation, a progress display, metrics.jsonl and checkpoints.
//
// Run directory layout:
//   config.yaml             the resolved config (every key)
//   metrics.jsonl           one JSON object per logged step / evaluation
//   train.log               what the console showed (plain lines)
//   checkpoints/step_NNNNNNN.safetensors, checkpoints/latest (name of the newest)
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "data/tasks.h"
#include "model/decoder.h"

namespace attnlab {

struct TrainSummary {
  int steps = 0;
  double seconds = 0.0;
  double tokens_per_s = 0.0;
  float train_loss = 0.0f;  // last logged
  float val_loss = 0.0f;    // last evaluation
  std::string checkpoint;   // path of the final checkpoint
};

TrainSummary train(const Config& cfg, const std::string& run_dir);

// Mean loss over cfg.train.eval_batches val batches drawn from a fixed seed
// (the same batches at every evaluation).
float evaluate_loss(DecoderModel& model, const class Dataset& data, const Config& cfg, int T);

struct TaskResult {
  TaskExample example;
  std::string predicted;
  bool correct;
};
struct TaskEval {
  int total = 0, correct = 0;
  std::vector<TaskResult> results;
};
// Greedy-decodes the first n val inputs ("input=" -> output up to '.') and scores exact match.
TaskEval evaluate_task(DecoderModel& model, const TaskDataset& task, int n);

}  // namespace attnlab
