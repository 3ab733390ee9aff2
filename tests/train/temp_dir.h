// The train tests' scratch directories.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace attnlab::test {

// A new, empty private directory (mkdtemp: unique even when other checkouts run these tests at once).
inline std::string temp_dir(const std::string& name) {
  std::string tmpl = (std::filesystem::temp_directory_path() / ("attnlab_test_" + name + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

}  // namespace attnlab::test
