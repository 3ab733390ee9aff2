#include "train/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/crc32c.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

// ---- protobuf encoding (wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32) ----

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void key(std::string& out, int field, int wire) { varint(out, uint64_t(field) << 3 | uint64_t(wire)); }
void bytes_field(std::string& out, int field, const std::string& s) {
  key(out, field, 2);
  varint(out, s.size());
  out += s;
}
void varint_field(std::string& out, int field, uint64_t v) {
  key(out, field, 0);
  varint(out, v);
}
template <class T>
void fixed_field(std::string& out, int field, T v) {  // little-endian, as x86 and ARM store it
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  key(out, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

// Field numbers, from tensorboard/compat/proto/{event,summary,tensor,tensor_shape,types}.proto.
enum : int {
  kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5,  // Event
  kSummaryValue = 1,                                                             // Summary
  kValueTag = 1, kValueSimple = 2, kValueImage = 4, kValueTensor = 8, kValueMetadata = 9,  // Summary.Value
  kImageHeight = 1, kImageWidth = 2, kImageColorspace = 3, kImageEncoded = 4,              // Summary.Image
  kMetaPluginData = 1, kPluginName = 1, kPluginContent = 2,  // SummaryMetadata, its PluginData
  kTensorDtype = 1, kTensorShape = 2, kTensorStringVal = 8,  // TensorProto
  kDtString = 7,                                             // DataType DT_STRING
};

std::string event(double wall_time, int64_t step, const std::string& value) {
  std::string summary, e;
  bytes_field(summary, kSummaryValue, value);
  fixed_field(e, kEventWallTime, wall_time);
  varint_field(e, kEventStep, uint64_t(step));
  bytes_field(e, kEventSummary, summary);
  return e;
}

void put_le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; i++) out.push_back(char((v >> (8 * i)) & 0xffu));
}
uint64_t get_le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= uint64_t(static_cast<unsigned char>(s[at + size_t(i)])) << (8 * i);
  return v;
}

// ---- protobuf reading, just enough for read_tfrecords ----

bool read_varint(const std::string& s, size_t& at, size_t end, uint64_t& v) {
  v = 0;
  for (int shift = 0; at < end && shift < 64; shift += 7) {
    const auto b = static_cast<unsigned char>(s[at++]);
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}
// Calls f(field, wire, varint value, start, length) for each field of the message s[at, end);
// false when it is malformed.
template <class F>
bool fields(const std::string& s, size_t at, size_t end, F f) {
  while (at < end) {
    uint64_t k = 0, v = 0;
    if (!read_varint(s, at, end, k)) return false;
    const int field = int(k >> 3), wire = int(k & 7);
    size_t start = at, len = 0;
    if (wire == 0) {
      if (!read_varint(s, at, end, v)) return false;
      start = at;
    } else if (wire == 1 || wire == 5) {
      len = wire == 1 ? 8 : 4;
    } else if (wire == 2) {
      if (!read_varint(s, at, end, v) || v > end - at) return false;
      start = at;
      len = size_t(v);
    } else {
      return false;
    }
    if (len > end - start) return false;
    at = start + len;
    f(field, wire, v, start, len);
  }
  return true;
}

std::string host_name() {
  char h[256] = {};
  if (::gethostname(h, sizeof h - 1) != 0 || !h[0]) return "localhost";
  std::string s = h;
  for (char& c : s)
    if (c == '/' || c == ' ') c = '_';
  return s;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_events_file(const fs::path& p) { return p.filename().string().rfind("events.out.tfevents.", 0) == 0; }

std::vector<fs::path> events_files(const std::string& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && is_events_file(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());  // by name: by the time each was started, as TensorBoard reads them
  return out;
}

}  // namespace

std::string tb_file_version_event(double wall_time) {
  std::string e;
  fixed_field(e, kEventWallTime, wall_time);
  bytes_field(e, kEventFileVersion, "brain.Event:2");
  return e;
}

std::string tb_scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  std::string v;
  bytes_field(v, kValueTag, tag);
  fixed_field(v, kValueSimple, value);
  return event(wall_time, step, v);
}

std::string tb_text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text) {
  std::string tensor, plugin, meta, v;
  varint_field(tensor, kTensorDtype, kDtString);
  bytes_field(tensor, kTensorShape, "");  // a scalar: no dimensions
  bytes_field(tensor, kTensorStringVal, text);
  bytes_field(plugin, kPluginName, "text");
  bytes_field(plugin, kPluginContent, "");  // TextPluginData{version: 0}
  bytes_field(meta, kMetaPluginData, plugin);
  bytes_field(v, kValueTag, tag);
  bytes_field(v, kValueTensor, tensor);
  bytes_field(v, kValueMetadata, meta);
  return event(wall_time, step, v);
}

std::string tb_image_event(double wall_time, int64_t step, const std::string& tag, const std::string& png,
                           int height, int width, int channels) {
  std::string img, v;
  varint_field(img, kImageHeight, uint64_t(height));
  varint_field(img, kImageWidth, uint64_t(width));
  varint_field(img, kImageColorspace, uint64_t(channels));  // 1 grayscale, 3 RGB
  bytes_field(img, kImageEncoded, png);
  bytes_field(v, kValueTag, tag);
  bytes_field(v, kValueImage, img);
  return event(wall_time, step, v);
}

std::string tfrecord(const std::string& data) {
  std::string out, len;
  put_le(len, data.size(), 8);
  out += len;
  put_le(out, crc32c_masked(crc32c(len)), 4);
  out += data;
  put_le(out, crc32c_masked(crc32c(data)), 4);
  return out;
}

std::vector<TbRecord> read_tfrecords(const std::string& s) {
  std::vector<TbRecord> out;
  size_t at = 0;
  while (s.size() - at >= 12) {
    const uint64_t n = get_le(s, at, 8);
    if (uint32_t(get_le(s, at + 8, 4)) != crc32c_masked(crc32c(s.data() + at, 8))) break;
    if (n > s.size() - at - 12 || s.size() - at - 12 - n < 4) break;
    TbRecord r;
    r.data = s.substr(at + 12, n);
    if (uint32_t(get_le(s, at + 12 + n, 4)) != crc32c_masked(crc32c(r.data))) break;
    at += 16 + n;
    bool ok = fields(r.data, 0, r.data.size(), [&](int f, int wire, uint64_t v, size_t start, size_t len) {
      if (f == kEventStep && wire == 0) r.has_step = true, r.step = int64_t(v);
      if (f != kEventSummary || wire != 2) return;
      fields(r.data, start, start + len, [&](int vf, int vw, uint64_t, size_t vs, size_t vl) {
        if (vf != kSummaryValue || vw != 2) return;
        fields(r.data, vs, vs + vl, [&](int tf, int tw, uint64_t, size_t ts, size_t tl) {
          if (tf == kValueTag && tw == 2) r.tags.push_back(r.data.substr(ts, tl));
        });
      });
    });
    if (!ok) break;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::pair<std::string, float>> row_scalars(const nlohmann::json& row) {
  std::vector<std::pair<std::string, float>> out;
  const auto skipped = row.find("skipped");
  if (skipped != row.end() && skipped->is_boolean() && skipped->get<bool>()) return out;
  const auto split = row.find("split");
  if (split == row.end() || !split->is_string()) return out;
  for (auto it = row.begin(); it != row.end(); ++it) {
    if (it.key() == "step" || it.key() == "elapsed_s" || !it->is_number()) continue;
    out.push_back({split->get<std::string>() + "/" + it.key(), it->get<float>()});
  }
  return out;
}

void TensorBoardLog::open_new(const std::string& content) {
  const std::string base = fmt::format("events.out.tfevents.{:010d}.{}.{}", (long long)now_s(), host_name(), ::getpid());
  std::error_code ec;
  std::string name = base;
  for (int i = 1; fs::exists(fs::path(dir_) / name, ec); i++) name = fmt::format("{}.{}", base, i);
  path_ = (fs::path(dir_) / name).string();
  write_file_atomic(path_, tfrecord(tb_file_version_event(now_s())) + content);
  pending_.clear();
}

void TensorBoardLog::start_fresh(const std::string& config_yaml) {
  std::error_code ec;
  for (const auto& p : events_files(dir_)) fs::remove(p, ec);
  open_new(tfrecord(tb_text_event(now_s(), 0, "config", config_yaml)));
}

void TensorBoardLog::start_resumed(int step, const std::string& config_yaml, bool config_changed) {
  const std::vector<fs::path> old = events_files(dir_);
  std::string kept;
  std::set<std::pair<std::string, int64_t>> seen;
  for (const auto& p : old) {
    for (const TbRecord& r : read_tfrecords(read_text(p.string()))) {
      if (!r.has_step || r.step > step || r.tags.empty()) continue;  // file_version: written anew
      bool fresh = true;
      for (const auto& t : r.tags) fresh = seen.insert({t, r.step}).second && fresh;
      if (fresh) kept += tfrecord(r.data);
    }
  }
  if (config_changed && !seen.count({"config", step})) kept += tfrecord(tb_text_event(now_s(), step, "config", config_yaml));
  open_new(kept);
  std::error_code ec;
  for (const auto& p : old)
    if (p.string() != path_) fs::remove(p, ec);
}

void TensorBoardLog::row(const nlohmann::json& metrics_row) {
  const auto step = metrics_row.find("step");
  if (step == metrics_row.end() || !step->is_number_integer()) return;
  const double t = now_s();
  for (const auto& [tag, v] : row_scalars(metrics_row))
    pending_ += tfrecord(tb_scalar_event(t, step->get<int64_t>(), tag, v));
}

void TensorBoardLog::image(int64_t step, const std::string& tag, const std::string& png, int height, int width,
                           int channels) {
  pending_ += tfrecord(tb_image_event(now_s(), step, tag, png, height, width, channels));
}

void TensorBoardLog::flush() {
  if (pending_.empty() || path_.empty()) return;
  append_bytes(path_, pending_);
  pending_.clear();
}

}  // namespace attnlab
