#include "train/attention_history.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/fs.h"
#include "core/png.h"
#include "core/text.h"
#include "data/tasks.h"
#include "train/evaluate.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

constexpr int kMaxPositions = 64;  // query and key positions of the example

using json = nlohmann::json;

std::vector<std::string> token_strings(const Tokenizer& tok, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(tok.tokens()[size_t(id)]);
  return out;
}

}  // namespace

std::vector<int> attention_example(const Dataset& data, int block_size) {
  const int n = std::min(block_size, kMaxPositions);
  if (const auto* text = dynamic_cast<const TextDataset*>(&data)) return text->val_prefix(size_t(n));
  const TaskDataset* task = data.task();
  if (!task || task->eval_set(Split::val).empty()) return {};
  std::vector<int> ids = task->eval_set(Split::val)[0].input;
  if (ids.size() > size_t(n)) ids.resize(size_t(n));
  return ids;
}

AttentionSnapshot attention_snapshot(Model& model, const Dataset& data, const std::vector<int>& ids) {
  AttentionSnapshot s;
  if (ids.empty()) return s;
  const TaskDataset* task = data.task();
  s.has_src = task && task->model_kind() == "encoder_decoder";
  Batch batch;
  batch.B = 1;
  std::vector<int> dec = ids;
  if (s.has_src) {  // as inspect --dump: the source, then the separator and the model's own answer
    const std::vector<int> out = decode_output(model, *task, ids);
    dec = {task->sep_id()};
    dec.insert(dec.end(), out.begin(), out.end());
    if (dec.size() > size_t(kMaxPositions)) dec.resize(size_t(kMaxPositions));
    batch.S = int(ids.size());
    batch.src = ids;
    batch.src_len = {batch.S};
  }
  batch.T = int(dec.size());
  batch.x = dec;
  const auto named = model.named_attention();
  for (auto& [label, a] : named) a->keep_weights(true);
  model.forward(batch, false, nullptr);
  for (auto& [label, a] : named) {
    AttentionMap m;
    const size_t us = label.rfind("_L");
    m.slot = label.substr(0, us);
    m.layer = std::atoi(label.c_str() + us + 2);
    m.heads = a->spec().n_heads;
    const bool enc = m.slot.rfind("encoder", 0) == 0, cross = m.slot.find("cross") != std::string::npos;
    m.rows = enc ? batch.S > 0 ? batch.S : batch.T : batch.T;
    m.cols = enc || cross ? (batch.S > 0 ? batch.S : batch.T) : batch.T;
    m.w = a->attention_weights();
    a->keep_weights(false);
    if (m.w.empty()) continue;  // a variant that keeps no weights
    if (m.w.size() != size_t(m.heads) * m.rows * m.cols)
      throw std::logic_error(fmt::format("{}: attention weights have {} values, expected {}×{}×{}", label,
                                         m.w.size(), m.heads, m.rows, m.cols));
    s.maps.push_back(std::move(m));
  }
  s.tokens = token_strings(data.tokenizer(), dec);
  if (s.has_src) s.src_tokens = token_strings(data.tokenizer(), ids);
  return s;
}

namespace {
uint8_t to_u8(float w) { return uint8_t(std::lround(255.0f * std::clamp(std::isfinite(w) ? w : 0.0f, 0.0f, 1.0f))); }
}  // namespace

nlohmann::ordered_json attention_history_line(int step, const AttentionSnapshot& snap) {
  using ojson = nlohmann::ordered_json;
  ojson maps = ojson::array();
  for (const AttentionMap& m : snap.maps) {
    std::string bytes(m.w.size(), '\0');
    for (size_t i = 0; i < m.w.size(); i++) bytes[i] = char(to_u8(m.w[i]));
    maps.push_back({{"slot", m.slot}, {"layer", m.layer}, {"heads", m.heads}, {"rows", m.rows},
                    {"cols", m.cols}, {"u8", base64_encode(bytes)}});
  }
  ojson ex = {{"tokens", snap.tokens}, {"src_tokens", snap.has_src ? ojson(snap.src_tokens) : ojson(nullptr)}};
  return {{"step", step}, {"example", ex}, {"maps", maps}};
}

GrayImage attention_image(const AttentionMap& m) {
  constexpr int kGap = 2, kMinHeight = 128;
  constexpr double kMaxPixels = 65536;  // the PNG is uncompressed: about one byte a pixel
  const int cells = std::max(1, m.heads * m.rows * m.cols);
  const int scale = std::max(1, std::min((kMinHeight + m.rows - 1) / std::max(1, m.rows),
                                         int(std::sqrt(kMaxPixels / cells))));
  GrayImage img;
  img.height = m.rows * scale;
  img.width = m.heads * m.cols * scale + (m.heads - 1) * kGap;
  img.pixels.assign(size_t(img.height) * img.width, 128);  // the gaps stay gray
  for (int h = 0; h < m.heads; h++) {
    const int x0 = h * (m.cols * scale + kGap);
    for (int y = 0; y < img.height; y++) {
      const float* row = m.w.data() + (size_t(h) * m.rows + size_t(y / scale)) * m.cols;
      uint8_t* px = img.pixels.data() + size_t(y) * img.width + x0;
      for (int x = 0; x < m.cols * scale; x++) px[x] = to_u8(row[x / scale]);
    }
  }
  return img;
}

AttentionHistory::AttentionHistory(const std::string& run_dir)
    : path_((fs::path(run_dir) / "attention_history.jsonl").string()) {}

void AttentionHistory::reset() { write_file_atomic(path_, ""); }

void AttentionHistory::truncate_after(int step) {
  std::ifstream in(path_);
  if (!in) return;
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);  // a torn last line is dropped
    if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
        j["step"].get<long long>() > step)
      continue;
    kept += line + "\n";
  }
  write_file_atomic(path_, kept);
}

void AttentionHistory::record(int step, Model& model, const Dataset& data, const Config& cfg, TensorBoardLog& tb) {
  if (!have_ids_) {
    ids_ = attention_example(data, cfg.model.block_size);
    have_ids_ = true;
  }
  if (ids_.empty()) return;
  const AttentionSnapshot snap = attention_snapshot(model, data, ids_);
  append_line(path_, attention_history_line(step, snap).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  for (const AttentionMap& m : snap.maps) {
    const GrayImage img = attention_image(m);
    tb.image(step, fmt::format("attention/{}_L{}", m.slot, m.layer), encode_png(img.pixels, img.height, img.width, 1),
             img.height, img.width, 1);
  }
}

}  // namespace attnlab
