#include "train/run_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/text.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace attnlab {

bool is_step_file(const std::string& name) {
  return name.rfind("step_", 0) == 0 && name.size() > 12 &&
         name.compare(name.size() - 12, 12, ".safetensors") == 0;
}

std::string step_file_name(int step) { return fmt::format("step_{:07}.safetensors", step); }

std::string model_name_of(const std::string& step_file) {
  const std::string st = ".state.safetensors";
  if (step_file.size() > st.size() && step_file.compare(step_file.size() - st.size(), st.size(), st) == 0)
    return step_file.substr(0, step_file.size() - st.size()) + ".safetensors";
  return step_file;
}

void check_writable(const std::string& dir, const std::string& context) {
  const std::string probe = (fs::path(dir) / ".attnlab-write-probe").string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    user_error("{}: directory '{}' is not writable ({}); a run writes its logs and checkpoints there", context,
               dir, std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

LatestPointer read_latest(const std::string& run_dir) {
  const fs::path ckpt_dir = fs::path(run_dir) / "checkpoints";
  LatestPointer p;
  std::error_code ec;
  p.present = fs::exists(ckpt_dir / "latest", ec);
  if (!p.present) return p;
  p.name = trim(read_text((ckpt_dir / "latest").string()));
  p.path = (ckpt_dir / p.name).string();
  return p;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const LatestPointer latest = read_latest(run_dir);
  if (!latest.present) user_error("run '{}' has no checkpoint yet (checkpoints/latest is missing)", run_dir);
  if (!latest.names_file())
    user_error("run '{}': checkpoints/latest does not name a checkpoint (it holds '{}')", run_dir, latest.name);
  return latest.path;
}

int clear_earlier_run(const std::string& dir) {
  const fs::path ckpt_dir = fs::path(dir) / "checkpoints";
  std::error_code ec;
  fs::remove(ckpt_dir / "latest", ec);
  int old = 0;
  for (auto& e : fs::directory_iterator(ckpt_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (is_step_file(name) || name == "latest" || name == "best.safetensors" || e.path().extension() == ".tmp") {
      old += is_step_file(name) && name.find(".state.") == std::string::npos;
      fs::remove(e.path(), ec);
    }
  }
  fs::remove(fs::path(dir) / "train.log", ec);
  return old;
}

void remove_stale_files(const std::string& dir, const std::vector<std::string>& kept) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator(fs::path(dir) / "checkpoints", ec)) {
    const std::string fname = e.path().filename().string();
    const bool stale_step =
        is_step_file(fname) && std::find(kept.begin(), kept.end(), model_name_of(fname)) == kept.end();
    if (e.path().extension() == ".tmp" || stale_step) fs::remove(e.path(), ec);
  }
  for (const char* f : {"metrics.jsonl.tmp", "metrics.csv.tmp", "config.yaml.tmp"}) fs::remove(fs::path(dir) / f, ec);
}

std::vector<std::string> rotate_kept(std::vector<std::string>& kept, const std::string& name, int keep) {
  std::vector<std::string> drop;
  if (kept.empty() || kept.back() != name) kept.push_back(name);
  while (int(kept.size()) > keep) {
    drop.push_back(kept.front());
    kept.erase(kept.begin());
  }
  return drop;
}

void remove_checkpoints(const std::string& ckpt_dir, const std::vector<std::string>& names,
                        const std::string& except) {
  std::error_code ec;
  for (const auto& d : names) {
    if (d == except) continue;
    const std::string old = (fs::path(ckpt_dir) / d).string();
    fs::remove(state_path_for(old), ec);
    fs::remove(old, ec);
  }
}

}  // namespace attnlab
