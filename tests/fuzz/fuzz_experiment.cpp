// The experiment-file loader (load_experiment: YAML, grid expansion, every cell's config and
// dataset) on arbitrary bytes. The input is written as configs/experiments/fuzz.yaml inside a
// scratch copy of the repository's configs/, so `base:` names resolve as for the real files.
#include <filesystem>

#include "fuzz_common.h"
#include "experiment/experiment.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fs::copy(fs::path(ATTNLAB_SOURCE_DIR) / "configs", fs::path(attnlab_fuzz::scratch_dir()) / "configs",
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string path =
      attnlab_fuzz::spit("configs/experiments/fuzz.yaml", {reinterpret_cast<const char*>(data), size});
  ExperimentOptions opt;
  opt.cores = 2;
  attnlab_fuzz::user_errors_ok([&] {
    const Experiment e = load_experiment(path, opt);
    attnlab_fuzz::require(!e.cells.empty(), "an accepted experiment has cells");
  });
  return 0;
}
