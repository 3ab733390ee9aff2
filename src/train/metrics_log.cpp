#include "train/metrics_log.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "core/fs.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;

const std::vector<std::string>& metrics_columns() {
  static const std::vector<std::string> cols = {"step",        "split",     "loss",        "lr",
                                                "grad_norm",   "tokens_per_s", "elapsed_s", "exact_match",
                                                "skipped",     "ppl",       "token_acc",   "label_acc",
                                                "class_acc",   "greedy_token_acc", "bleu", "chrf",
                                                "loss_per_char"};  // new columns go last: readers by position keep working
  return cols;
}

std::string metrics_csv_header() { return fmt::format("{}", fmt::join(metrics_columns(), ",")); }

std::string metrics_csv_line(const json& row) {
  std::string out;
  bool first = true;
  for (const auto& c : metrics_columns()) {
    if (!first) out += ',';
    first = false;
    auto it = row.find(c);
    if (it == row.end() || it->is_null()) {
      if (c == "skipped") out += '0';
      continue;
    }
    if (it->is_string()) out += it->get<std::string>();  // split: train | val (no commas, no quotes)
    else if (it->is_boolean()) out += it->get<bool>() ? '1' : '0';
    else out += it->dump();  // numbers: the same text as in metrics.jsonl
  }
  return out;
}

namespace {
// A row the readers can trust: "split" a string, "skipped" a boolean, the other columns numbers
// (null where a value was not finite). A line edited by hand into other types is skipped like a
// line that is not JSON, instead of failing later in inspect or the CSV.
bool well_typed(const json& row) {
  for (const auto& c : metrics_columns()) {
    auto it = row.find(c);
    if (it == row.end() || (it->is_null() && c != "step")) continue;
    const bool ok = c == "split" ? it->is_string() : c == "skipped" ? it->is_boolean() : it->is_number();
    if (!ok) return false;
  }
  return true;
}
}  // namespace

std::vector<json> read_metrics(const std::string& jsonl_path) {
  std::vector<json> rows;
  std::ifstream in(jsonl_path);
  if (!in) return rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
        !well_typed(j))
      continue;
    rows.push_back(std::move(j));
  }
  return rows;
}

MetricsLog::MetricsLog(const std::string& run_dir)
    : jsonl_((fs::path(run_dir) / "metrics.jsonl").string()), csv_((fs::path(run_dir) / "metrics.csv").string()) {}

void MetricsLog::append(const json& row) {
  append_line(jsonl_, row.dump());
  std::error_code ec;
  if (!fs::exists(csv_, ec)) append_line(csv_, metrics_csv_header());
  append_line(csv_, metrics_csv_line(row));
}

void MetricsLog::sync() {
  sync_file(jsonl_);
  sync_file(csv_);
}

void MetricsLog::truncate_after(int step) {
  std::string jsonl, csv = metrics_csv_header() + "\n";
  for (const json& row : read_metrics(jsonl_)) {
    if (row["step"].get<long long>() > step) continue;
    jsonl += row.dump() + "\n";
    csv += metrics_csv_line(row) + "\n";
  }
  write_file_atomic(jsonl_, jsonl);
  write_file_atomic(csv_, csv);
}

void MetricsLog::reset() {
  write_file_atomic(jsonl_, "");
  write_file_atomic(csv_, metrics_csv_header() + "\n");
}

}  // namespace attnlab
