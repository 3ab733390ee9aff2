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

}  // namespace attnlab
