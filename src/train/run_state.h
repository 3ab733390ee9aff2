// What a run needs beyond the weights to continue exactly: the training-state
// file next to each checkpoint (the metrics log is train/metrics_log.h).
//
// Training state: checkpoints/step_NNNNNNN.state.safetensors, the same
// safetensors container as the model (see checkpoint.h), holding
//   tensors   adam.m.<param>, adam.v.<param>   AdamW's moments, shape of the parameter,
//             in the model's parameter order
//   metadata  format "attnlab-train-state", format_version, step, optimizer "adamw",
//             optimizer_t, rng_data / rng_dropout (xoshiro state: 4 decimal u64,
//             comma-separated), best_val_loss / best_step ("none" before the first
//             evaluation), last_train_loss / last_val_loss, loss_sum / loss_count (the
//             train-loss accumulator of the current log interval), skipped_steps,
//             elapsed_s, kept (checkpoint file names, oldest first, comma-separated),
//             model_file / model_checksum_fnv1a64 (the model checkpoint this state belongs
//             to), data_sha256 (only for data.task text: the SHA-256 of the data file the
//             run started on; a resume refuses a changed file), checksum_fnv1a64 (of this
//             file's tensor bytes).
// Numbers that must survive exactly (losses, the accumulator) are written as the
// shortest decimal that reads back to the same float/double.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/param.h"
#include "train/checkpoint.h"

namespace attnlab {

class AdamW;

constexpr int kTrainStateFormatVersion = 1;
constexpr const char* kTrainStateFormat = "attnlab-train-state";

struct TrainState {
  int step = 0;                       // optimizer steps done (= the checkpoint's step)
  int optimizer_t = 0;                // AdamW updates applied (step minus skipped steps)
  std::array<uint64_t, 4> rng_data{};     // data-order stream
  std::array<uint64_t, 4> rng_dropout{};  // dropout stream
  int best_step = -1;                 // -1: no evaluation yet
  float best_val_loss = 0.0f;
  float last_train_loss = 0.0f;       // last logged mean train loss (0 = none yet)
  float last_val_loss = 0.0f;         // last evaluation (0 = none yet)
  double loss_sum = 0.0;              // train losses summed since the last log line
  int loss_count = 0;                 // ... and how many
  int skipped_steps = 0;              // steps whose update was skipped (train.on_nan: skip)
  double elapsed_s = 0.0;             // training time so far, across resumes
  std::vector<std::string> kept;      // checkpoint file names on disk, oldest first
  std::string model_file;             // e.g. "step_0000300.safetensors"
  std::string model_checksum;         // that file's checksum_fnv1a64
  std::string data_sha256;            // data.task text: SHA-256 of data.path (hex); empty otherwise
};

// checkpoints/step_0000300.safetensors -> checkpoints/step_0000300.state.safetensors
std::string state_path_for(const std::string& checkpoint_path);

// Writes the state and the optimizer's moments (atomically).
void write_train_state(const std::string& path, const TrainState& st, const ParamStore& store,
                       const AdamW& opt);
// Reads and verifies a state file: container, format, version, every metadata field.
// The moments stay in `file` (for load_optimizer_state / inspect). Errors name the file.
TrainState read_train_state(const std::string& path, CheckpointFile* file = nullptr);
// Copies the moments into `opt` (and sets its t), checking that names and shapes match `store`.
void load_optimizer_state(const CheckpointFile& file, const TrainState& st, const ParamStore& store,
                          AdamW& opt, const std::string& path);

// ---- data files ----
// SHA-256 of a byte string / of a file's bytes, 64 lowercase hex digits. sha256_file's
// UserError names the file and the cause (missing, unreadable, a directory).
std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);

}  // namespace attnlab
