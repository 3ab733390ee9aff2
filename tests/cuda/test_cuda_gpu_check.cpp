// scripts/gpu_check.sh on a machine without a GPU: it must parse, and it must stop at once with
// "no GPU visible" and exit 2 rather than build or report success. nvidia-smi is replaced by a
// stand-in that fails the way it does without a driver, so the test means the same on a GPU machine.
// The script's output goes to a file, never to this test's stdout: its "SKIPPED (...)" lines would
// otherwise make CTest report this test as skipped.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {

// exit status of a shell command (-1 when it did not exit normally)
int run(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("gpu_check.sh parses, and without a GPU says so and exits 2 without building") {
  const std::string script = std::string(ATTNLAB_SOURCE_DIR) + "/scripts/gpu_check.sh";
  CHECK(run("bash -n '" + script + "'") == 0);

  const fs::path dir = fs::temp_directory_path() / ("attnlab_gpu_check_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream smi(dir / "nvidia-smi");
    smi << "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\nexit 9\n";
  }
  fs::permissions(dir / "nvidia-smi", fs::perms::owner_all);
  const fs::path out = dir / "out.txt";
  const int rc = run("PATH='" + dir.string() + "':\"$PATH\" bash '" + script + "' > '" + out.string() +
                     "' 2>&1");
  const std::string text = slurp(out);
  std::string logged = text;  // shown on failure, without the word CTest takes for a skip
  for (std::size_t at; (at = logged.find("SKIPPED")) != std::string::npos;) logged.replace(at, 7, "skipped");
  INFO(logged);
  CHECK(rc == 2);
  CHECK(text.find("NVIDIA driver:") < text.find("gpu_check: flash forward"));  // versions first
  CHECK(text.find("no GPU visible: nvidia-smi failed: NVIDIA-SMI has failed") != std::string::npos);
  for (const char* k : {"flash forward", "flash backward", "linear forward", "linear backward"})
    CHECK(text.find(std::string("gpu_check: ") + k) != std::string::npos);
  CHECK(text.find("NOTHING VERIFIED") != std::string::npos);
  CHECK(text.find("configure + build") == std::string::npos);  // stopped before building
  fs::remove_all(dir);
}
