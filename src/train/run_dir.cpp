#include "train/run_dir.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
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

std::string earlier_run(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  int checkpoints = 0;
  bool best = false;
  for (auto& e : fs::directory_iterator(d / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    checkpoints += is_step_file(name) && name.find(".state.") == std::string::npos;
    best = best || name == "best.safetensors";
  }
  std::vector<std::string> files;  // what marks a run when it has no checkpoint
  for (const char* f : {"config.yaml", "metrics.jsonl", "metrics.csv"})
    if (fs::exists(d / f, ec)) files.push_back(f);
  const LatestPointer latest = read_latest(dir);
  if (checkpoints == 0 && !best && !latest.present && files.empty()) return "";
  std::string at;  // the step of the checkpoint `latest` names, when it names one
  if (latest.names_file() && is_step_file(latest.name) && latest.name.size() > 5)
    at = fmt::format(" at step {}", std::atoi(latest.name.c_str() + 5));
  if (checkpoints > 0 || best)
    return fmt::format("a run{} with {} checkpoint{}{}", at, checkpoints, checkpoints == 1 ? "" : "s",
                       best ? " and best.safetensors" : "");
  return fmt::format("a run without checkpoints ({})", fmt::join(files, ", "));
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

CheckpointArg resolve_checkpoint_arg(const std::string& arg) {
  const fs::path p(arg);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    const fs::path best = p / "checkpoints" / "best.safetensors";
    if (fs::is_regular_file(best, ec))
      return {best.string(), fmt::format("using {}: the run's best checkpoint (lowest val loss)", best.string())};
    if (!read_latest(arg).present)
      user_error("'{}' is a directory without checkpoints/best.safetensors or checkpoints/latest: give a "
                 ".safetensors checkpoint, or the directory of a run that has saved one",
                 arg);
    const std::string latest = latest_checkpoint(arg);
    return {latest, fmt::format("using {}: the run's latest checkpoint (it has no best.safetensors)", latest)};
  }
  // checkpoints/latest: a few bytes naming a checkpoint next to it (a large file is taken for a checkpoint)
  if (p.filename() == "latest" && fs::is_regular_file(p, ec) && fs::file_size(p, ec) < 256) {
    const std::string name = trim(read_text(arg));
    if (name.empty() || name.find('/') != std::string::npos)
      user_error("'{}' is a run's `latest` pointer, but it does not name a checkpoint (it holds '{}')", arg, name);
    const std::string path = (p.parent_path() / name).string();
    if (!fs::exists(path, ec))
      user_error("'{}' is the pointer to a run's latest checkpoint, but the checkpoint it names, '{}', does not exist",
                 arg, path);
    return {path, fmt::format("'{}' is the pointer to the run's latest checkpoint: using {}", arg, path)};
  }
  return {arg, ""};
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
