// TensorBoard's event files, written directly: `events.out.tfevents.<time>.<host>.<pid>` in the
// run directory, read by `tensorboard --logdir runs` and by its EventAccumulator.
//
// A file is a sequence of TFRecords, each
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
// whose data is one serialized `tensorboard.Event` protobuf (tensorboard/compat/proto/event.proto,
// summary.proto, tensor.proto; the field numbers are in tensorboard.cpp). The first record holds
// file_version "brain.Event:2"; the others hold a Summary with one value: a scalar (simple_value),
// a text (a DT_STRING tensor with the text plugin's metadata, as the text plugin's summaries are
// laid out) or an image (Summary.Image with PNG bytes).
//
// TensorBoardLog is the run's view of it: every metrics row becomes scalars (row_scalars), the
// resolved config a text, the attention maps images. Records are buffered and appended to the file
// at flush() (each evaluation, each checkpoint and the end), so a killed run loses at most the
// rows since the last of those. A resume keeps the records up to its step, each (tag, step) once,
// in a new file, and removes the old files: no step is shown twice.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace attnlab {

// Serialized Events (the record data), wall_time in seconds since the epoch.
std::string tb_file_version_event(double wall_time);
std::string tb_scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
std::string tb_text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text);
std::string tb_image_event(double wall_time, int64_t step, const std::string& tag, const std::string& png,
                           int height, int width, int channels);
// The TFRecord framing of one record.
std::string tfrecord(const std::string& data);

// What a resume needs to know of one record of an existing file.
struct TbRecord {
  std::string data;               // the serialized Event
  bool has_step = false;          // summaries carry a step; the file_version record does not
  int64_t step = 0;
  std::vector<std::string> tags;  // the tags of its summary values
};
// The records of an events file's bytes, up to the first damaged one (a torn last write, a bad
// checksum, a length past the end): what follows it cannot be trusted.
std::vector<TbRecord> read_tfrecords(const std::string& bytes);

// The scalars of one metrics.jsonl row: "<split>/<key>" for every number in it other than step
// and elapsed_s (train/loss, train/lr, train/grad_norm, train/tokens_per_s, val/loss, val/ppl,
// ...). A row of a skipped step (train.on_nan: skip) and values that were not finite (null) give none.
std::vector<std::pair<std::string, float>> row_scalars(const nlohmann::json& row);

class TensorBoardLog {
 public:
  explicit TensorBoardLog(std::string run_dir) : dir_(std::move(run_dir)) {}
  // A new run: removes the events files an earlier run left, starts a new file with the
  // resolved config as the text "config" at step 0.
  void start_fresh(const std::string& config_yaml);
  // A resumed run at `step`: one new file holding the records of the old ones up to `step`; the
  // config again at `step` when the resume changed it.
  void start_resumed(int step, const std::string& config_yaml, bool config_changed);
  void row(const nlohmann::json& metrics_row);  // row_scalars at the row's step
  void image(int64_t step, const std::string& tag, const std::string& png, int height, int width, int channels);
  void flush();  // appends what was buffered; UserError naming the file when that fails
  const std::string& path() const { return path_; }

 private:
  void open_new(const std::string& content);
  std::string dir_, path_, pending_;
};

}  // namespace attnlab
