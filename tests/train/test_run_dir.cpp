// train/run_dir: checkpoint names, the `latest` pointer and rotation.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "core/error.h"
#include "train/run_dir.h"

namespace fs = std::filesystem;
using namespace attnlab;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("run_dir: step names and the model file a state belongs to") {
  CHECK(step_file_name(300) == "step_0000300.safetensors");
  CHECK(is_step_file("step_0000300.safetensors"));
  CHECK(is_step_file("step_0000300.state.safetensors"));
  CHECK_FALSE(is_step_file("best.safetensors"));
  CHECK_FALSE(is_step_file("step_0000300.safetensors.tmp"));
  CHECK(model_name_of("step_0000300.state.safetensors") == "step_0000300.safetensors");
  CHECK(model_name_of("step_0000300.safetensors") == "step_0000300.safetensors");
}

TEST_CASE("run_dir: rotation keeps the newest K, oldest first") {
  std::vector<std::string> kept = {"a", "b"};
  CHECK(rotate_kept(kept, "c", 2) == std::vector<std::string>{"a"});
  CHECK(kept == std::vector<std::string>{"b", "c"});
  CHECK(rotate_kept(kept, "c", 2).empty());  // saving the newest again adds nothing
  CHECK(kept == std::vector<std::string>{"b", "c"});
}

TEST_CASE("run_dir: latest is read once, and judged by its callers") {
  const std::string run = fs::temp_directory_path() / ("attnlab_rundir_" + std::to_string(::getpid()));
  fs::create_directories(run + "/checkpoints");
  CHECK_FALSE(read_latest(run).present);
  CHECK(error_of([&] { latest_checkpoint(run); }) ==
        "run '" + run + "' has no checkpoint yet (checkpoints/latest is missing)");
  std::ofstream(run + "/checkpoints/latest") << "../x\n";
  CHECK(read_latest(run).present);
  CHECK_FALSE(read_latest(run).names_file());
  CHECK(error_of([&] { latest_checkpoint(run); }) ==
        "run '" + run + "': checkpoints/latest does not name a checkpoint (it holds '../x')");
  std::ofstream(run + "/checkpoints/latest") << "step_0000010.safetensors\n";
  CHECK(latest_checkpoint(run) == (fs::path(run) / "checkpoints" / "step_0000010.safetensors").string());
  fs::remove_all(run);
}
