// Shared by the libFuzzer targets in this directory (built with -DATTNLAB_FUZZ=ON, run by
// scripts/fuzz.sh). Each target hands the fuzzer's bytes to one parser of outside input. A
// UserError is the parser doing its job (bad input named to the user); any other exception
// escapes LLVMFuzzerTestOneInput, reaches std::terminate and is reported as a crash, exactly like
// a sanitizer finding, a timeout or a memory blow-up.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"

namespace attnlab_fuzz {

// A per-process scratch directory (parallel fuzzing jobs must not share files).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/attnlab-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name and returns the path (the readers take paths).
inline std::string spit(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
  return path;
}

// Runs f; a UserError is an accepted outcome, and reports whether f completed.
template <typename F>
bool user_errors_ok(F&& f) {
  try {
    f();
    return true;
  } catch (const attnlab::UserError&) {
    return false;
  }
}

// A property the target checks on accepted input; failing it is a crash.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace attnlab_fuzz
