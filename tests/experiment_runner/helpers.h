// Helpers shared by the experiment tests: a fresh temporary directory, whole-file write and
// read, and the UserError message of loading an experiment file.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "core/error.h"
#include "experiment/experiment.h"

namespace attnlab::test {

// A new empty directory under the system temp dir, named attnlab_<prefix>_<name>_XXXXXX.
inline std::string fresh_dir(const std::string& prefix, const std::string& name) {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("attnlab_" + prefix + "_" + name + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

inline void spit(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// What load_experiment(path, opt) rejects the file with ("" when it loads).
inline std::string error_of(const std::string& path, const ExperimentOptions& opt = {}) {
  try {
    load_experiment(path, opt);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace attnlab::test
