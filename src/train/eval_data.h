// The data `attnlab eval` and `attnlab sample` read: a checkpoint's own data settings, or other
// ones given as `--set data.KEY=VALUE` (evaluation on other lengths, pair counts, files).
//
// Only data keys that leave the model as it is may change: the task's lengths (min_len, max_len),
// n_pairs, n_digits, n_symbols within the checkpoint's vocabulary, the size and share of the eval
// sets (n_val, val_fraction), for text the file (path) and the masking rate (mask_prob), and for
// parallel the files (path, or src_path and tgt_path: setting one form clears the other), read
// with the checkpoint's tokenizer (a byte a chars vocabulary lacks reads as <unk>).
// model.*, train.*, sample.* and the data keys that pick the task or its vocabulary are refused
// with an error that names the key. A setting the model cannot hold is refused with the limit: a
// learned or sinusoidal position table holds model.block_size positions; rope, alibi and none
// have no table, so the model's context (Model::set_context) grows to the longest row the new
// data needs. Text rows stay model.block_size long; a new text file is read with the
// checkpoint's own tokenizer.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/dataset.h"
#include "train/checkpoint.h"

namespace attnlab {

struct DataOverride {
  std::string key;      // "data.max_len"
  std::string trained;  // the checkpoint's value
  std::string value;    // the value evaluated with
};

struct CheckpointData {
  // The checkpoint's config with the overrides applied; model.block_size is raised to the
  // longest row the data needs (the row length evaluate() draws), the model itself is unchanged.
  Config config;
  std::unique_ptr<Dataset> data;
  std::vector<DataOverride> overrides;  // in the order given, one per key (the last value wins)
  std::vector<std::string> notes;       // what the user should know (e.g. eval sets that hold training inputs)
};

// The keys --set may change, in docs order.
const std::vector<std::string>& data_override_keys();

// Builds the data for lm (read from `path`, named in errors) with `sets` ("data.KEY=VALUE")
// applied, checks that the model can read it, and raises lm.model's context where the new rows
// are longer than model.block_size. No sets: the checkpoint's own data, as training made it.
// UserError for a key that may not change, a value the task refuses, a vocabulary the checkpoint
// lacks, or rows longer than the model's position table.
CheckpointData checkpoint_data(LoadedModel& lm, const std::string& path, const std::vector<std::string>& sets);

}  // namespace attnlab
