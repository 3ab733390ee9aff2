// Builds the dataset a config asks for: data.task 'text' -> TextDataset, else a TaskDataset, both
// laid out for model.kind (a task that does not suit the kind is a UserError naming both).
#pragma once
#include <memory>

#include "config/config.h"
#include "data/dataset.h"
#include "data/tasks.h"

namespace attnlab {

std::unique_ptr<Dataset> make_dataset(const Config& cfg);
TaskOptions task_options(const Config& cfg);
// The data a config asks for, in one line, from the config alone (no data is made or read): the
// task and the values of the options it uses, e.g. "dates (val_fraction 0.1, n_val 200)",
// "reverse (n_symbols 8, min_len 4, max_len 8, val_fraction 0.1, n_val 200)", "text data/x.txt
// (val_fraction 0.1)". An unknown task is named as it is.
std::string describe_data_config(const Config& cfg);

}  // namespace attnlab
