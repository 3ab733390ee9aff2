// metrics.jsonl as read back by `attnlab inspect RUN_DIR` (inspect_run + render_run), by
// `train --resume` (read_metrics) and by the metrics CSV: any bytes give
// rows (bad lines skipped) and a report, never a crash. The run directory is a scratch one with
// a default config.yaml (task reverse); the input becomes its metrics.jsonl.
#include <filesystem>

#include "config/config.h"
#include "fuzz_common.h"
#include "inspect/inspect.h"
#include "train/metrics_log.h"
#include "train/run_state.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::filesystem::create_directories(attnlab_fuzz::scratch_dir() + "/run");
  attnlab::Config cfg;
  cfg.data.task = "reverse";  // loadable without a data file
  attnlab_fuzz::spit("run/config.yaml", attnlab::dump_config(cfg));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string path = attnlab_fuzz::spit("run/metrics.jsonl", {reinterpret_cast<const char*>(data), size});
  attnlab_fuzz::user_errors_ok([&] {
    for (const auto& row : read_metrics(path)) {
      attnlab_fuzz::require(row.is_object() && row["step"].is_number_integer(), "rows have an integer step");
      metrics_csv_line(row);
    }
  });
  attnlab_fuzz::user_errors_ok([&] { render_run(inspect_run(attnlab_fuzz::scratch_dir() + "/run")); });
  return 0;
}
