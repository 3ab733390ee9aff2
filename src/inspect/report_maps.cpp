// The report's attention maps: the best checkpoint's on the held-out example (the trainer's own
// example and forward pass, train/attention_history.h, at full precision), the frames of
// attention_history.jsonl, and the decoded seq2seq examples.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "attention/attention.h"
#include "core/error.h"
#include "core/text.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "inspect/inspect.h"
#include "inspect/report.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/attention_history.h"
#include "train/evaluate.h"

namespace fs = std::filesystem;

namespace attnlab::report_detail {

using json = nlohmann::json;

namespace {

std::vector<std::string> labels(const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  for (const auto& t : tokens) out.push_back(display_token(t));
  return out;
}

// Axis labels of a map of `slot`: a cross-attention's queries are the decoder's tokens, its keys
// the source; an encoder's self-attention in an encoder_decoder reads the source.
void axes(const std::string& slot, const std::vector<std::string>& tokens, const std::vector<std::string>& src,
          std::vector<std::string>& q, std::vector<std::string>& k) {
  const bool cross = slot.find("cross") != std::string::npos;
  const bool enc_src = slot.rfind("encoder", 0) == 0 && !src.empty();
  q = enc_src ? src : tokens;
  k = cross || enc_src ? src : tokens;
}

std::vector<std::string> fit(std::vector<std::string> v, int n) {
  v.resize(size_t(std::max(0, n)));
  return v;
}

}  // namespace

nlohmann::json best_maps(const std::string& ckpt) {
  LoadedModel lm = load_model(ckpt);
  json r = {{"checkpoint", ckpt}, {"step", lm.step}, {"groups", json::array()}, {"notes", json::array()}};
  std::unique_ptr<Dataset> data;
  try {
    data = make_dataset(lm.config, &lm.tokenizer);
  } catch (const UserError& e) {  // e.g. the text file of data.path is not on this machine
    r["notes"].push_back(fmt::format("no held-out example: the run's data cannot be made here ({})", e.what()));
    return r;
  }
  // the example and the forward pass of the trainer's attention_history.jsonl, at full precision
  const std::vector<int> ids = attention_example(*data, lm.config.model.block_size);
  if (ids.empty()) {
    r["notes"].push_back("no held-out example: the data has no validation example");
    return r;
  }
  const AttentionSnapshot snap = attention_snapshot(*lm.model, *data, ids);
  const std::vector<std::string> tokens = labels(snap.tokens), src = labels(snap.src_tokens);
  r["example"] = {{"tokens", tokens}, {"src_tokens", snap.has_src ? json(src) : json(nullptr)}};
  std::map<std::string, const AttentionMap*> by_key;
  for (const auto& m : snap.maps) by_key[fmt::format("{}_L{}", m.slot, m.layer)] = &m;
  for (auto& [label, a] : lm.model->named_attention()) {
    const size_t us = label.rfind("_L");
    const std::string slot = label.substr(0, us);
    const int layer = std::atoi(label.c_str() + us + 2), H = a->spec().n_heads;
    std::vector<std::string> q, k;
    axes(slot, tokens, src, q, k);
    json g = {{"key", label}, {"slot", slot}, {"layer", layer}, {"type", a->spec().type}, {"heads", H},
              {"q_tokens", q}, {"k_tokens", k}, {"png", json::array()}};
    const auto it = by_key.find(label);
    if (it == by_key.end()) {
      g["note"] = fmt::format("attention type '{}' keeps no per-head weights for this input: no map", a->spec().type);
    } else {
      const AttentionMap& m = *it->second;
      g["q_tokens"] = fit(q, m.rows);
      g["k_tokens"] = fit(k, m.cols);
      for (int h = 0; h < m.heads; h++) g["png"].push_back(heatmap_png(m.w.data() + size_t(h) * m.rows * m.cols, m.rows, m.cols));
    }
    r["groups"].push_back(g);
  }
  return r;
}

namespace {

// One line of attention_history.jsonl, its maps checked against their sizes.
struct HistoryLine {
  int step = 0;
  json example, maps;
};

std::vector<HistoryLine> read_history(const std::string& path) {
  std::ifstream in(path);
  if (!in) user_error("cannot read '{}'", path);
  std::vector<HistoryLine> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    if (trim(line).empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      if (in.peek() == EOF) break;  // a torn last line (a run killed mid-write)
      user_error("{}:{}: not a JSON object; the file is damaged (delete it to report without the history)", path,
                 n);
    }
    if (!j.contains("step") || !j.contains("maps") || !j["maps"].is_array() || !j.contains("example"))
      user_error("{}:{}: a line needs \"step\", \"example\" and \"maps\"", path, n);
    out.push_back({j["step"].get<int>(), j["example"], j["maps"]});
  }
  return out;
}

// One line as the page's script reads it: {"example", "maps": {key: [PNG per head]}, "lab": {key:
// [query tokens, key tokens]}}.
json frame_maps(const HistoryLine& h, const std::string& path) {
  std::vector<std::string> tokens, src;
  for (const auto& t : h.example.value("tokens", json::array())) tokens.push_back(display_token(t.get<std::string>()));
  if (h.example.contains("src_tokens") && h.example["src_tokens"].is_array())
    for (const auto& t : h.example["src_tokens"]) src.push_back(display_token(t.get<std::string>()));
  json maps = json::object(), lab = json::object();
  for (const auto& m : h.maps) {
    const std::string slot = m.at("slot").get<std::string>(), key = fmt::format("{}_L{}", slot, m.at("layer").get<int>());
    const int H = m.at("heads").get<int>(), R = m.at("rows").get<int>(), C = m.at("cols").get<int>();
    const std::string bytes = base64_decode(m.at("u8").get<std::string>(), fmt::format("{} step {} {}", path, h.step, key));
    if (H < 1 || R < 1 || C < 1 || bytes.size() != size_t(H) * R * C)
      user_error("{}: step {}, {}: {} bytes of weights, expected heads × rows × cols = {}", path, h.step, key,
                 bytes.size(), size_t(std::max(H, 0)) * std::max(R, 0) * std::max(C, 0));
    json pngs = json::array();
    for (int hd = 0; hd < H; hd++)
      pngs.push_back(heatmap_png_u8(reinterpret_cast<const uint8_t*>(bytes.data()) + size_t(hd) * R * C, R, C));
    maps[key] = pngs;
    std::vector<std::string> q, k;
    axes(slot, tokens, src, q, k);
    lab[key] = {fit(q, R), fit(k, C)};
  }
  return {{"example", {{"tokens", tokens}, {"src_tokens", src.empty() ? json(nullptr) : json(src)}}},
          {"maps", maps},
          {"lab", lab}};
}

}  // namespace

nlohmann::json history_frames(const std::string& path, size_t budget) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {{"present", false}};
  const std::vector<HistoryLine> lines = read_history(path);
  json r = {{"present", true}, {"total", lines.size()}, {"frames", json::array()}, {"groups", json::array()}};
  if (lines.empty()) {
    r["kept"] = 0;
    return r;
  }
  // frames evenly spaced over the run (the first and the last always), as many as the budget allows
  json frame = frame_maps(lines.front(), path);
  size_t frame_bytes = 1;
  for (const auto& [key, pngs] : frame["maps"].items())
    for (const auto& p : pngs) frame_bytes += p.get_ref<const std::string&>().size();
  const size_t n = lines.size();
  const size_t kept = std::min(n, std::max<size_t>(2, budget / frame_bytes));
  std::vector<size_t> pick;
  for (size_t i = 0; i < kept; i++) {
    const size_t idx = kept == 1 ? 0 : size_t(std::llround(double(i) * double(n - 1) / double(kept - 1)));
    if (pick.empty() || pick.back() != idx) pick.push_back(idx);
  }
  // the groups, sized for the largest frame (an encoder_decoder's answer changes length as it learns)
  std::map<std::string, std::pair<int, int>> box;
  for (size_t idx : pick) {
    if (idx != 0) frame = frame_maps(lines[idx], path);
    frame["step"] = lines[idx].step;
    for (const auto& [key, qk] : frame["lab"].items()) {
      auto& b = box[key];
      b = {std::max(b.first, int(qk[0].size())), std::max(b.second, int(qk[1].size()))};
    }
    r["frames"].push_back(frame);
  }
  const json& last = r["frames"].back();
  r["example"] = last["example"];
  for (const auto& m : lines[pick.back()].maps) {
    const std::string key = fmt::format("{}_L{}", m.at("slot").get<std::string>(), m.at("layer").get<int>());
    r["groups"].push_back({{"key", key}, {"slot", m.at("slot")}, {"layer", m.at("layer")}, {"heads", m.at("heads")},
                           {"rows", box[key].first}, {"cols", box[key].second},
                           {"q_tokens", last["lab"][key][0]}, {"k_tokens", last["lab"][key][1]}});
  }
  r["kept"] = pick.size();
  return r;
}

nlohmann::json decoded_examples(const std::string& ckpt, int n) {
  LoadedModel lm = load_model(ckpt);
  std::unique_ptr<Dataset> data;
  try {
    data = make_dataset(lm.config, &lm.tokenizer);
  } catch (const UserError&) {
    return nullptr;
  }
  const TaskDataset* task = data->task();
  if (!task || task->format() != TaskFormat::seq2seq) return nullptr;
  json out = json::array();
  const auto& examples = task->eval_set(Split::val);
  for (size_t i = 0; i < std::min(examples.size(), size_t(std::max(0, n))); i++) {
    const TaskExample& ex = examples[i];
    const std::vector<int> got = decode_output(*lm.model, *task, ex.input);
    out.push_back({{"input", task->show(ex.input)}, {"reference", task->show(ex.output)},
                   {"output", task->show(got)}, {"match", got == ex.output}});
  }
  return out;
}

}  // namespace attnlab::report_detail
