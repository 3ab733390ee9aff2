// Where the tests look for the text corpora that are not stored in the repository
// (tinyshakespeare.txt): the directory named by the environment variable ATTNLAB_DATA_DIR, or the
// repository's data/ directory (what `scripts/get_data.sh tinyshakespeare` writes) when it is
// unset or empty. A relative ATTNLAB_DATA_DIR is taken from the test's working directory (ctest
// runs the unit tests in the build directory), so an absolute path is the safe choice.
//
// A test that needs a corpus calls find_corpus(): when the variable is unset and data/ lacks the
// file, the test reports that it was skipped and why; when the variable is set, the file must be
// there, so a wrong path fails instead of turning every corpus test into a skip.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace attnlab::test {

struct CorpusDir {
  std::string dir;
  bool from_env = false;  // ATTNLAB_DATA_DIR was set (and not empty)
};

inline CorpusDir corpus_dir() {
  const char* env = std::getenv("ATTNLAB_DATA_DIR");
  if (env && *env) return {env, true};
  return {std::string(ATTNLAB_SOURCE_DIR) + "/data", false};
}

// What find_corpus found: the file's path when it exists; else `missing` says where it looked and
// how to provide it, and `must_exist` is true when ATTNLAB_DATA_DIR was set (the caller fails).
struct CorpusLookup {
  std::optional<std::string> path;
  std::string missing;
  bool must_exist = false;
};

inline CorpusLookup find_corpus(const std::string& file) {
  const CorpusDir d = corpus_dir();
  const std::string path = d.dir + "/" + file;
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return {path, "", d.from_env};
  CorpusLookup r;
  r.must_exist = d.from_env;
  r.missing = d.from_env ? "ATTNLAB_DATA_DIR is set to '" + d.dir + "' but " + path + " is not a file"
                         : path + " not found (run scripts/get_data.sh tinyshakespeare, or set "
                                  "ATTNLAB_DATA_DIR to a directory that holds " + file + ")";
  return r;
}

}  // namespace attnlab::test
