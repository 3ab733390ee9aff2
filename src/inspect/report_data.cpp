// `attnlab report`: what the page shows, gathered from the run directory (report.h), and the
// atomic write of the page.
#include <chrono>
#include <ctime>
#include <filesystem>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "inspect/inspect.h"
#include "inspect/report.h"
#include "train/metrics_log.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;
using namespace report_detail;

namespace {

// The run's state in words: finished, stopped at step N (resumable), failed (train.log's last
// "stopped" line of train.on_nan: stop), or not started.
json run_status(const json& run, const std::string& run_dir, int last_logged) {
  const int steps = run["config"]["steps"].get<int>();
  const json step = run["step"];
  std::string failed;
  std::error_code ec;
  const std::string log = (fs::path(run_dir) / "train.log").string();
  if (fs::exists(log, ec)) {
    std::istringstream in(read_text(log));
    static const std::regex stop_line(R"(^step \d+: .*: stopped \(.*)");
    for (std::string line; std::getline(in, line);)
      if (std::regex_match(line, stop_line)) failed = line;
  }
  const std::string st = run["status"].get<std::string>();
  json s = {{"steps", steps}, {"step", step}, {"last_logged", last_logged}};
  if (st == "complete") {
    s["state"] = "finished";
    s["text"] = fmt::format("finished: step {} of {}", step.get<int>(), steps);
  } else if (!failed.empty()) {
    s["state"] = "failed";
    s["text"] = "failed: " + failed;
  } else if (st == "stopped") {
    s["state"] = "stopped";
    s["text"] = fmt::format("stopped at step {} of {} (resume with `attnlab train --resume {}`)", step.get<int>(),
                            steps, run_dir);
  } else {
    s["state"] = st == "not started" ? "not started" : "running or stopped";
    s["text"] = fmt::format("{} (last logged step {} of {})", st, last_logged, steps);
  }
  return s;
}

// metrics.jsonl as columns: train rows (step, loss, lr) and val rows (step and every metric).
json metric_columns(const std::vector<json>& rows) {
  json train = {{"step", json::array()}, {"loss", json::array()}, {"lr", json::array()}};
  json val = {{"step", json::array()}, {"metrics", json::object()}};
  std::vector<std::string> names;
  for (const auto& r : rows) {
    const std::string split = r.value("split", "");
    if (split == "train" && r.contains("loss") && r["loss"].is_number()) {
      train["step"].push_back(r["step"]);
      train["loss"].push_back(r["loss"]);
      train["lr"].push_back(r.contains("lr") ? r["lr"] : json(nullptr));
    } else if (split == "val") {
      for (const auto& [k, v] : r.items())
        if (v.is_number() && k != "step" && k != "elapsed_s" && std::find(names.begin(), names.end(), k) == names.end())
          names.push_back(k);
    }
  }
  // loss and ppl first, the task's metrics after them
  std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    auto rank = [](const std::string& n) { return n == "loss" ? 0 : n == "ppl" ? 1 : 2; };
    return rank(a) < rank(b);
  });
  for (const auto& n : names) val["metrics"][n] = json::array();
  for (const auto& r : rows) {
    if (r.value("split", "") != "val") continue;
    val["step"].push_back(r["step"]);
    for (const auto& n : names) val["metrics"][n].push_back(r.contains(n) ? r[n] : json(nullptr));
  }
  return {{"train", train}, {"val", val}, {"names", names}, {"train_rows", train["step"].size()},
          {"val_rows", val["step"].size()}};
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace

nlohmann::json collect_report(const std::string& run_dir, const ReportOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) user_error("'{}' is not a directory: give a run directory", run_dir);
  json run = inspect_run(run_dir);  // UserError for a directory without config.yaml, a bad checkpoint, ...
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  const std::vector<json> rows = read_metrics(metrics_path);
  if (rows.empty())
    user_error("'{}' has no metrics yet ({} is missing or empty): train the run first, then report it", run_dir,
               metrics_path);
  json r;
  r["run_dir"] = run_dir;
  r["generated"] = utc_now();
  r["config_text"] = read_text(run["config"]["path"].get<std::string>());
  r["run"] = run;
  r["metrics"] = metric_columns(rows);
  r["status"] = run_status(run, run_dir, rows.back().value("step", 0));
  r["best"] = run["metrics"]["best_val"];
  // the checkpoint the maps and examples come from: the best weights, else the latest
  std::string ckpt;
  const fs::path best = fs::path(run_dir) / "checkpoints" / "best.safetensors";
  if (fs::exists(best, ec)) {
    ckpt = best.string();
    r["checkpoint"] = {{"file", "checkpoints/best.safetensors"}, {"which", "best"}};
  } else if (!run["checkpoints"]["latest"].is_null()) {
    ckpt = (fs::path(run_dir) / "checkpoints" / run["checkpoints"]["latest"]["file"].get<std::string>()).string();
    r["checkpoint"] = {{"file", "checkpoints/" + run["checkpoints"]["latest"]["file"].get<std::string>()},
                       {"which", "latest (no evaluation has saved best weights yet)"}};
  } else {
    r["checkpoint"] = nullptr;
  }
  r["model"] = nullptr;
  r["maps"] = nullptr;
  r["examples"] = nullptr;
  if (!ckpt.empty()) {
    json c = inspect_checkpoint(ckpt);
    c.erase("tensors");
    c["tokenizer"].erase("vocab");
    r["checkpoint"]["step"] = c["step"];
    r["model"] = c;
    r["maps"] = best_maps(ckpt);
    r["examples"] = decoded_examples(ckpt, opt.decoded_examples);
  }
  r["history"] = history_frames((fs::path(run_dir) / "attention_history.jsonl").string(), opt.history_budget);
  return r;
}

nlohmann::json write_report(const std::string& run_dir, const std::string& out, const ReportOptions& opt) {
  const json r = collect_report(run_dir, opt);
  const std::string path = out.empty() ? (fs::path(run_dir) / "report.html").string() : out;
  const std::string html = render_report_html(r);
  write_file_atomic(path, html);
  size_t maps = 0;
  if (r["maps"].is_object())
    for (const auto& g : r["maps"]["groups"]) maps += g["png"].size();
  const json& h = r["history"];
  return {{"path", path},
          {"bytes", html.size()},
          {"status", r["status"]["text"]},
          {"train_points", r["metrics"]["train_rows"]},
          {"val_points", r["metrics"]["val_rows"]},
          {"maps", maps},
          {"history_frames", h.value("present", false) ? h["kept"] : json(0)},
          {"history_total", h.value("present", false) ? h["total"] : json(0)}};
}

}  // namespace attnlab
