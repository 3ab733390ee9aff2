// train/tensorboard and train/attention_history: the record framing read back, the scalars of a
// metrics row, a resume that keeps each (tag, step) once, and the maps of the fixed example.
// (tests/e2e/tensorboard.sh reads whole runs with TensorBoard's own EventAccumulator.)
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "config/config.h"
#include "core/crc32c.h"
#include "core/text.h"
#include "data/factory.h"
#include "model/model.h"
#include "train/attention_history.h"
#include "train/tensorboard.h"
#include "temp_dir.h"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {
std::vector<std::string> events_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  return out;
}
// (tag, step) -> how many records hold it
std::map<std::pair<std::string, int64_t>, int> tag_steps(const std::string& dir) {
  std::map<std::pair<std::string, int64_t>, int> out;
  for (const auto& f : events_files(dir))
    for (const auto& r : read_tfrecords(read_text(f)))
      for (const auto& t : r.tags) out[{t, r.step}]++;
  return out;
}
}  // namespace

TEST_CASE("tensorboard: framing: length, its masked CRC-32C, data, its masked CRC-32C") {
  const std::string data = tb_scalar_event(1.5, 7, "train/loss", 2.25f);
  const std::string rec = tfrecord(data);
  REQUIRE(rec.size() == data.size() + 16);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= uint64_t(uint8_t(rec[size_t(i)])) << (8 * i);
  CHECK(n == data.size());
  auto le32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(rec[at + size_t(i)])) << (8 * i);
    return v;
  };
  CHECK(le32(8) == crc32c_masked(crc32c(rec.data(), 8)));
  CHECK(rec.compare(12, data.size(), data) == 0);
  CHECK(le32(12 + data.size()) == crc32c_masked(crc32c(data)));
}

TEST_CASE("tensorboard: records read back with step and tags, up to a torn or corrupt tail") {
  const std::string bytes = tfrecord(tb_file_version_event(1.0)) + tfrecord(tb_scalar_event(1.0, 3, "val/loss", 1.f)) +
                            tfrecord(tb_text_event(1.0, 0, "config", "model: {}")) +
                            tfrecord(tb_image_event(1.0, 300, "attention/decoder_self_L0", "png", 1, 3, 1));
  auto recs = read_tfrecords(bytes);
  REQUIRE(recs.size() == 4);
  CHECK_FALSE(recs[0].has_step);
  CHECK(recs[0].data.find("brain.Event:2") != std::string::npos);
  CHECK((recs[1].has_step && recs[1].step == 3 && recs[1].tags == std::vector<std::string>{"val/loss"}));
  CHECK((recs[2].step == 0 && recs[2].tags == std::vector<std::string>{"config"}));
  CHECK((recs[3].step == 300 && recs[3].tags == std::vector<std::string>{"attention/decoder_self_L0"}));
  CHECK(read_tfrecords(bytes.substr(0, bytes.size() - 1)).size() == 3);  // torn last record
  std::string bad = bytes;
  bad[bytes.size() - 20] ^= 1;  // a flipped bit inside the last record's data
  CHECK(read_tfrecords(bad).size() == 3);
  bad = bytes;
  bad[9] ^= 1;  // the first length's checksum
  CHECK(read_tfrecords(bad).empty());
}

TEST_CASE("tensorboard: the scalars of metrics rows") {
  using json = nlohmann::json;
  auto s = row_scalars(json::parse(R"({"step":10,"split":"train","loss":2.5,"lr":0.001,"grad_norm":0.5,
                                        "tokens_per_s":1000,"elapsed_s":3.2})"));
  std::map<std::string, float> m(s.begin(), s.end());
  CHECK(m == std::map<std::string, float>{{"train/loss", 2.5f}, {"train/lr", 0.001f}, {"train/grad_norm", 0.5f},
                                          {"train/tokens_per_s", 1000.f}});
  s = row_scalars(json::parse(R"({"step":10,"split":"val","loss":null,"exact_match":0.25,"elapsed_s":3})"));
  CHECK(s == std::vector<std::pair<std::string, float>>{{"val/exact_match", 0.25f}});
  CHECK(row_scalars(json::parse(R"({"step":4,"split":"train","skipped":true,"reason":"nan","lr":0.1})")).empty());
}

TEST_CASE("tensorboard: a resume keeps the records up to its step, each (tag, step) once, in one file") {
  const std::string dir = test::temp_dir("tb");
  {
    TensorBoardLog tb(dir);
    tb.start_fresh("a: 1\n");
    for (int step : {5, 10, 15, 20}) tb.row({{"step", step}, {"split", "train"}, {"loss", 1.0 / step}});
    tb.flush();
    CHECK(fs::exists(tb.path()));
  }
  REQUIRE(events_files(dir).size() == 1);
  // a crashed earlier resume left a second file that repeats step 5 and 10
  std::ofstream(dir + "/events.out.tfevents.9999999999.host.1", std::ios::binary)
      << tfrecord(tb_file_version_event(2.0)) + tfrecord(tb_scalar_event(2.0, 5, "train/loss", 0.2f)) +
             tfrecord(tb_scalar_event(2.0, 10, "train/loss", 0.1f));
  TensorBoardLog tb(dir);
  tb.start_resumed(10, "a: 2\n", true);
  tb.row({{"step", 15}, {"split", "train"}, {"loss", 0.5}});
  tb.flush();
  REQUIRE(events_files(dir) == std::vector<std::string>{tb.path()});
  const auto ts = tag_steps(dir);
  CHECK(ts == std::map<std::pair<std::string, int64_t>, int>{
                  {{"config", 0}, 1}, {{"config", 10}, 1}, {{"train/loss", 5}, 1}, {{"train/loss", 10}, 1},
                  {{"train/loss", 15}, 1}});
  const auto recs = read_tfrecords(read_text(tb.path()));
  CHECK_FALSE(recs[0].has_step);  // file_version first
  fs::remove_all(dir);
}

TEST_CASE("attention_history: the maps of every slot of an encoder_decoder, rows summing to 1") {
  Config cfg = load_config_text(R"(
model: {kind: encoder_decoder, n_layers: 2, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 3, max_len: 6, n_val: 5}
)",
                                "test");
  const auto data = make_training_data(cfg);
  Model model(cfg.model, data->tokenizer().size(), 3, data->n_classes());
  const std::vector<int> ids = attention_example(*data, cfg.model.block_size);
  CHECK(ids == data->task()->eval_set(Split::val)[0].input);
  const AttentionSnapshot s = attention_snapshot(model, *data, ids);
  CHECK(s.has_src);
  CHECK(s.src_tokens.size() == ids.size());
  REQUIRE(s.maps.size() == 6);  // encoder self, decoder self, decoder cross × 2 layers
  std::map<std::string, int> per_slot;
  for (const auto& m : s.maps) {
    per_slot[m.slot]++;
    CHECK(m.heads == 2);
    CHECK(m.rows == (m.slot == "encoder_self" ? int(ids.size()) : int(s.tokens.size())));
    CHECK(m.cols == (m.slot == "decoder_self" ? int(s.tokens.size()) : int(ids.size())));
    for (int r = 0; r < m.heads * m.rows; r++) {
      double sum = 0;
      for (int c = 0; c < m.cols; c++) sum += m.w[size_t(r) * m.cols + c];
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
    }
  }
  CHECK(per_slot == std::map<std::string, int>{{"decoder_cross", 2}, {"decoder_self", 2}, {"encoder_self", 2}});
  const auto line = attention_history_line(40, s);
  CHECK(line["step"] == 40);
  CHECK(line["example"]["src_tokens"].size() == ids.size());
  CHECK(line["maps"][0]["u8"].get<std::string>().size() == (size_t(2 * s.maps[0].rows * s.maps[0].cols) + 2) / 3 * 4);
  const GrayImage img = attention_image(s.maps[0]);
  const int scale = img.height / s.maps[0].rows;
  CHECK(scale == std::min(128 / s.maps[0].rows + (128 % s.maps[0].rows != 0), int(std::sqrt(65536.0 / (2 * s.maps[0].rows * s.maps[0].cols)))));
  CHECK(img.height == scale * s.maps[0].rows);
  CHECK(img.width == 2 * s.maps[0].cols * scale + 2);
  CHECK(img.pixels[0] == uint8_t(std::lround(255 * s.maps[0].w[0])));
}

TEST_CASE("attention_history: a resume drops the lines after its step and a torn last line") {
  const std::string dir = test::temp_dir("hist");
  AttentionHistory h(dir);
  std::ofstream(h.path()) << "{\"step\":5,\"maps\":[]}\n{\"step\":10,\"maps\":[]}\n{\"step\":15,\"maps\":[]}\n{\"st";
  h.truncate_after(10);
  CHECK(read_text(h.path()) == "{\"step\":5,\"maps\":[]}\n{\"step\":10,\"maps\":[]}\n");
  h.reset();
  CHECK(read_text(h.path()).empty());
  fs::remove_all(dir);
}
