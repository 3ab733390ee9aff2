// Helpers shared by experiment.cpp, experiment_run.cpp and experiment_measure.cpp (not a public API).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "train/experiment.h"

namespace attnlab {

std::string cell_dir(const std::string& out_dir, const ExperimentCell& c);
// The cell's resolved config as YAML with train.threads zeroed: what done.json is checked against.
std::string cell_identity(const Config& cfg);
// done.json of cell `index` if it exists, parses and belongs to the cell's current config.
std::optional<nlohmann::json> read_done(const Experiment& exp, size_t index, const std::string& out_dir);
// A table column (metric, NAME@STEP, measurement, "seconds") of a done cell.
std::optional<double> metric_value(const nlohmann::json& done, const std::string& column);
std::string format_number(double v);
std::string experiment_cell_label(const ExperimentCell& c);  // "k=v, k=v"
std::string plot_file_name(const Experiment& exp, size_t i);

}  // namespace attnlab
