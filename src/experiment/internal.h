// Helpers shared by the files of src/experiment (not a public API).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "experiment/experiment.h"

namespace attnlab {

// Measurement outputs and the measurement that produces each (measure.cpp); "a, b, ..." of them.
const std::map<std::string, std::string>& measurement_outputs();
std::string measurement_names();
// The measurement an output or column comes from ("" when none): measurement_outputs(), and the
// bleu_by_length columns bleu_len_<bucket>, chrf_len_<bucket> (bleu_length.cpp).
std::string measurement_of(const std::string& output);
bool is_bleu_by_length_column(const std::string& name);
std::vector<std::string> bleu_by_length_columns(const BleuByLength& b, const std::string& metric);  // "bleu", "chrf"
// The bucket of a source of `length` tokens: the first edge it does not exceed, -1 past the last.
int length_bucket(const std::vector<int>& edges, int length);
void measure_bleu_by_length(const Experiment& exp, const std::string& checkpoint, Measurements& out);

// A value as a file-name part: characters other than letters, digits, '.', '-', '+', '_' become '-'.
std::string sanitize(const std::string& v);
std::string experiment_cell_label(const ExperimentCell& c);  // "k=v, k=v", or "base config"
std::string value_of(const ExperimentCell& c, const std::string& grid_key);  // "" when not a grid key of c

std::string cell_dir(const std::string& out_dir, const ExperimentCell& c);
// The cell's resolved config as YAML with train.threads zeroed: what done.json is checked against.
std::string cell_identity(const Config& cfg);
// done.json of cell `index` if it exists, parses and belongs to the cell's current config.
std::optional<nlohmann::json> read_done(const Experiment& exp, size_t index, const std::string& out_dir);
std::vector<std::optional<nlohmann::json>> read_all_done(const Experiment& exp, const std::string& out_dir);
// A table column (metric, NAME@STEP, measurement, "seconds") of a done cell.
std::optional<double> metric_value(const nlohmann::json& done, const std::string& column);
std::string format_number(double v);
std::string plot_file_name(const Experiment& exp, size_t i);

// The summary rows of the finished cells (summary.cpp).
std::vector<SummaryRow> summarize_done(const Experiment& exp, const std::vector<std::optional<nlohmann::json>>& done);

}  // namespace attnlab
