// The metrics log of a run directory: metrics.jsonl (one JSON object a line) and metrics.csv
// (the same rows, metrics_columns(), empty where a row has no value). Both are appended a
// whole line at a time; a resume first drops the rows after the checkpoint it continues from.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace attnlab {

// Columns of metrics.csv, in order.
const std::vector<std::string>& metrics_columns();
// One CSV line (no newline) for a metrics row.
std::string metrics_csv_line(const nlohmann::json& row);
std::string metrics_csv_header();
// Reads metrics.jsonl; a missing file is empty, an unreadable line (a torn last write) is skipped.
std::vector<nlohmann::json> read_metrics(const std::string& jsonl_path);

// Appends one row to metrics.jsonl and metrics.csv (creating the CSV with its header).
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& run_dir);
  // One row; each file gets one whole line or nothing (a failed append is cut back).
  void append(const nlohmann::json& row);
  // fsync both files: rows logged before a checkpoint reach the disk before it does.
  void sync();
  // Keeps the rows with step <= `step` (and rebuilds metrics.csv from metrics.jsonl): a
  // resume continues the log from the checkpoint's step. Both files are rewritten atomically.
  void truncate_after(int step);
  // Starts both files empty (a new run).
  void reset();
  const std::string& jsonl_path() const { return jsonl_; }
  const std::string& csv_path() const { return csv_; }  // tests read it

 private:
  std::string jsonl_, csv_;
};

}  // namespace attnlab
