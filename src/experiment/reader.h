// Reading an experiment file (file.cpp reads the keys, cells.cpp expands the grid into cells):
// the state shared while one file is read. Internal to src/experiment.
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <utility>
#include <vector>

#include "experiment/experiment.h"
#include "experiment/kinds.h"

namespace attnlab {

using GridCombo = std::vector<std::pair<std::string, std::string>>;  // grid key -> value, in order

struct FileReader {
  FileReader(std::string file, YAML::Node file_root, const ExperimentOptions& options)
      : path(std::move(file)), root(std::move(file_root)), opt(options) {}
  std::string path;
  YAML::Node root;
  const ExperimentOptions& opt;
  Experiment exp;
  const CellKind* kind = nullptr;  // null: run: train
  std::vector<std::string> sets;   // key=value for every cell: `set:`, then --set
  std::vector<GridCombo> combos;   // the grid's combinations, in cell order
  std::vector<std::pair<std::string, std::string>> ties;  // key, the grid key it copies

  std::string where(const YAML::Node& n) const;
  std::string scalar(const YAML::Node& n, const std::string& key) const;
  std::vector<std::string> scalar_list(const YAML::Node& n, const std::string& key) const;
  // a key of set / grid / tie: a config key (train) or a parameter of the kind
  void check_key(const YAML::Node& at, const std::string& section, const std::string& key) const;
  std::string kind_params() const;  // "a, b, c": the kind's parameter names
  bool is_grid_key(const std::string& k) const;
  bool is_column(const std::string& k) const;  // a metric or "seconds"
  // map[key] as a grid key (grid) or a column of the table (!grid); "" when absent and optional
  std::string named(const YAML::Node& map, const std::string& section, const std::string& key, bool required,
                    bool grid) const;
  // map is a mapping whose keys are among `keys`
  void only_keys(const YAML::Node& map, const std::string& section, const std::vector<std::string>& keys) const;
};

// "loss@400" -> ("loss", 400); "loss" -> ("loss", -1)
std::pair<std::string, int> split_metric(const std::string& file, const std::string& m);

// Expands r.combos into r.exp.cells, loading and checking every cell (cells.cpp).
void make_cells(FileReader& r);

}  // namespace attnlab
