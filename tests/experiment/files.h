// File helpers shared by the experiment tests: a fresh temporary directory, and whole-file
// write and read.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

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

}  // namespace attnlab::test
