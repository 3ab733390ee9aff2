// Builds the dataset a config asks for: data.task 'text' -> TextDataset, else a TaskDataset, both
// laid out for model.kind (a task that does not suit the kind is a UserError naming both).
#pragma once
#include <memory>

#include "config/config.h"
#include "data/dataset.h"
#include "data/tasks.h"

namespace attnlab {

// Errors about the config (a task that does not suit the kind, lengths against block_size, n_val
// against the split, vocabulary sizes, a missing data file) name the key at fault with the
// file:line:col where it was written (config_error).
std::unique_ptr<Dataset> make_dataset(const Config& cfg);
// What `attnlab train` checks before it builds the model, and `attnlab config check` runs too:
// make_dataset, then whether model.device can run here. Returns the dataset.
std::unique_ptr<Dataset> make_training_data(const Config& cfg);
TaskOptions task_options(const Config& cfg);

}  // namespace attnlab
