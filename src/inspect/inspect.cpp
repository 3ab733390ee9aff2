#include "inspect/inspect.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "attention/attention.h"
#include "config/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/npy.h"
#include "core/text.h"
#include "data/bpe.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "model/model.h"
#include "config/slots.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/metrics_log.h"
#include "train/run_dir.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;

namespace {

// The tokens as JSON can hold them: a bpe token is a byte string (maybe part of a UTF-8
// character), shown in GPT-2's byte alphabet as the tokenizer file writes it ("Ġthe").
std::vector<std::string> shown_tokens(const Tokenizer& tok) {
  std::vector<std::string> out = tok.tokens();
  if (tok.kind() == Tokenizer::Kind::bpe)
    for (int id = 0; id < tok.size(); ++id)  // both sides of a split vocabulary; not the special tokens
      if (!tok.is_special(id)) out[size_t(id)] = bpe_to_alphabet(out[size_t(id)]);
  return out;
}


// Parameter names group into modules: "blocks.<l>.<part>" by layer and part, everything else
// by its first component ("tok_emb", "lnf", "head").
std::string module_of(const std::string& name) {
  const auto dot = name.find('.');
  if (dot == std::string::npos) return name;
  const std::string first = name.substr(0, dot);
  if (first == "blocks") {
    const auto d2 = name.find('.', dot + 1);
    if (d2 == std::string::npos) return name;
    const auto d3 = name.find('.', d2 + 1);
    return d3 == std::string::npos ? name : name.substr(0, d3);
  }
  return first;
}

std::string thousands(long long n) {
  std::string s = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < s.size(); i++) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024.0) return fmt::format("{:.1f} MB", b / (1024.0 * 1024.0));
  if (b >= 1024.0) return fmt::format("{:.1f} KB", b / 1024.0);
  return fmt::format("{:.0f} B", b);
}

std::string shape_text(const json& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i].get<long long>());
  return s + "]";
}

json state_json(const TrainState& st, const std::string& path) {
  json j = {{"path", path},
            {"step", st.step},
            {"optimizer", "adamw"},
            {"optimizer_t", st.optimizer_t},
            {"skipped_steps", st.skipped_steps},
            {"elapsed_s", st.elapsed_s},
            {"last_train_loss", st.last_train_loss},
            {"last_val_loss", st.last_val_loss},
            {"kept", st.kept},
            {"rng_data", st.rng_data},
            {"rng_dropout", st.rng_dropout},
            {"model_file", st.model_file}};
  j["best_step"] = st.best_step >= 0 ? json(st.best_step) : json(nullptr);
  j["best_val_loss"] = st.best_step >= 0 ? json(st.best_val_loss) : json(nullptr);
  return j;
}

// A decimal for people: up to 4 decimals, or scientific for tiny/huge values.
std::string num(double v) {
  if (v == 0.0) return "0";
  const double a = std::fabs(v);
  if (a < 1e-3 || a >= 1e5) return fmt::format("{:.3e}", v);
  return fmt::format("{:.4f}", v);
}

}  // namespace

std::string slot_short_name(const std::string& slot) {
  // model.decoder.self_attention -> decoder_self, model.decoder.cross_attention -> decoder_cross
  std::string s = slot;
  if (s.rfind("model.", 0) == 0) s = s.substr(6);
  const auto dot = s.find('.');
  if (dot == std::string::npos) return s;
  std::string part = s.substr(dot + 1);
  const auto us = part.find("_attention");
  if (us != std::string::npos) part = part.substr(0, us);
  return s.substr(0, dot) + "_" + part;
}

nlohmann::json inspect_checkpoint(const std::string& path) {
  const CheckpointFile ck = read_checkpoint(path);
  const LoadedModel lm = load_model(ck, path);  // version, config, vocabulary, names and shapes
  const Config& cfg = lm.config;
  std::error_code ec;
  json r;
  r["type"] = "checkpoint";
  r["path"] = path;
  r["file_bytes"] = fs::file_size(path, ec);
  r["format_version"] = std::atoi(ck.metadata.at("format_version").c_str());
  r["kind"] = option_name(cfg.model.kind);
  r["step"] = lm.step;
  r["checksum_fnv1a64"] = ck.metadata.count("checksum_fnv1a64") ? ck.metadata.at("checksum_fnv1a64") : "";
  if (ck.metadata.count("val_loss")) r["val_loss"] = std::strtof(ck.metadata.at("val_loss").c_str(), nullptr);
  r["tokenizer"] = {{"type", ck.metadata.count("tokenizer") ? ck.metadata.at("tokenizer") : "char"},
                    {"vocab_size", lm.tokenizer.size()},
                    {"vocab", lm.tokenizer.kind() == Tokenizer::Kind::chars && lm.tokenizer.vocab().size() ==
                                          size_t(lm.tokenizer.size())
                                      ? json(lm.tokenizer.vocab())
                                      : json(shown_tokens(lm.tokenizer))}};
  if (lm.tokenizer.is_split()) {  // data.shared_vocab false: [first, last] id of each side
    const int off = lm.tokenizer.target_offset();
    r["tokenizer"]["source_ids"] = {0, off - 1};
    r["tokenizer"]["target_ids"] = {off, off + lm.tokenizer.target()->size() - 1};
  }
  r["model"] = {{"n_layers", cfg.model.n_layers},   {"d_model", cfg.model.d_model},
                {"n_heads", cfg.model.n_heads},     {"d_ff", cfg.model.mlp ? cfg.ff_dim() : 0},
                {"mlp", cfg.model.mlp},
                {"block_size", cfg.model.block_size}, {"positions", option_name(cfg.model.positions)},
                {"tie_embeddings", cfg.model.tie_embeddings}, {"head_bias", cfg.model.head_bias},
                {"bias", cfg.model.bias},                 {"init", option_name(cfg.model.init)},
                {"dropout", cfg.model.dropout}};
  json slots = json::array();
  for (const auto& slot : model_slots(cfg.model.kind)) {
    const AttentionSpec s = slot_spec(cfg.model, slot, 0);
    json a = {{"slot", slot},
              {"short", slot_short_name(slot)},
              {"type", s.type},
              {"causal", s.causal},
              {"n_heads", s.n_heads},
              {"n_kv_heads", s.n_kv_heads > 0 ? s.n_kv_heads : s.n_heads},
              {"scale", s.scale},
              {"dropout", s.dropout},
              {"window", s.window},
              {"positions", name_of(s.positions)}};
    if (s.positions == AttnPositions::rope) a["rope_base"] = s.rope_base;
    if (s.type == "luong") a["score"] = name_of(s.score);
    auto it = attention_registry().find(s.type);
    if (it != attention_registry().end()) a["summary"] = it->second.info.summary;
    slots.push_back(a);
  }
  r["attention"] = slots;
  // parameters per module, in the order modules first appear
  std::vector<std::string> order;
  std::map<std::string, long long> count;
  long long total = 0;
  json tensors = json::array();
  for (const auto& name : ck.order) {
    const TensorData& t = ck.tensors.at(name);
    const std::string mod = module_of(name);
    if (!count.count(mod)) order.push_back(mod);
    count[mod] += (long long)t.data.size();
    total += (long long)t.data.size();
    double sum = 0.0, sq = 0.0;
    for (float v : t.data) {
      sum += v;
      sq += double(v) * double(v);
    }
    const double n = double(std::max<size_t>(1, t.data.size()));
    const double mean = sum / n;
    const double var = std::max(0.0, sq / n - mean * mean);
    tensors.push_back({{"name", name},
                       {"shape", t.shape},
                       {"numel", t.data.size()},
                       {"mean", mean},
                       {"std", std::sqrt(var)},
                       {"l2", std::sqrt(sq)}});
  }
  json modules = json::array();
  for (const auto& m : order) modules.push_back({{"name", m}, {"count", count[m]}});
  r["parameters"] = {{"total", total}, {"tensors", ck.order.size()}, {"modules", modules}};
  r["tensors"] = tensors;
  const std::string state_path = state_path_for(path);
  r["train_state"] = nullptr;
  if (fs::path(path).filename() != "best.safetensors" && fs::exists(state_path, ec)) {
    CheckpointFile sf;
    const TrainState st = read_train_state(state_path, &sf);
    if (st.model_file != fs::path(path).filename().string() || st.model_checksum != r["checksum_fnv1a64"])
      user_error("training state '{}' does not belong to checkpoint '{}' (it was written with '{}', checksum "
                 "{}); the pair is inconsistent",
                 state_path, path, st.model_file, st.model_checksum);
    // names and shapes of the moments against the model
    Model& model = *lm.model;
    for (const auto& p : model.params().all())
      for (const char* w : {"m", "v"}) {
        const std::string n = fmt::format("adam.{}.{}", w, p.name);
        auto it = sf.tensors.find(n);
        if (it == sf.tensors.end()) user_error("training state '{}': tensor '{}' is missing", state_path, n);
        if (it->second.shape != std::vector<int64_t>(p.shape.begin(), p.shape.end()))
          user_error("training state '{}': tensor '{}' has shape [{}], the model expects [{}]", state_path, n,
                     fmt::join(it->second.shape, ", "), fmt::join(p.shape, ", "));
      }
    if (sf.order.size() != 2 * model.params().all().size())
      user_error("training state '{}': {} tensors, the model needs {} (adam.m.* and adam.v.* per parameter)",
                 state_path, sf.order.size(), 2 * model.params().all().size());
    r["train_state"] = state_json(st, state_path);
  }
  return r;
}

std::string render_checkpoint(const nlohmann::json& r) {
  std::string o;
  auto line = [&](const std::string& s) { o += s + "\n"; };
  line(fmt::format("checkpoint   {}", r["path"].get<std::string>()));
  line(fmt::format("file         {} | safetensors, format version {} | checksum {} ok",
                   human_bytes(r["file_bytes"].get<double>()), r["format_version"].get<int>(),
                   r["checksum_fnv1a64"].get<std::string>()));
  std::string step = fmt::format("step         {}", r["step"].get<int>());
  if (r.contains("val_loss")) step += fmt::format(" | val loss {} (the best checkpoint)", num(r["val_loss"]));
  line(step);
  const json& m = r["model"];
  const std::string ff = m["mlp"].get<bool>() ? fmt::format("d_ff {}", m["d_ff"].get<int>()) : "no MLP";
  line(fmt::format("model        {} | {} layers | d_model {} | {} heads | {} | block_size {} | positions {} | "
                   "{} embeddings | bias {} | dropout {}",
                   r["kind"].get<std::string>(), m["n_layers"].get<int>(), m["d_model"].get<int>(),
                   m["n_heads"].get<int>(), ff, m["block_size"].get<int>(),
                   m["positions"].get<std::string>(), m["tie_embeddings"].get<bool>() ? "tied" : "untied",
                   m["bias"].get<bool>() ? "on" : "off", m["dropout"].get<double>()));
  std::string vocab;
  const json& vj = r["tokenizer"]["vocab"];
  if (vj.is_array()) {  // symbols or special tokens: the token strings, space-separated
    for (const auto& t : vj) vocab += (vocab.empty() ? "" : " ") + t.get<std::string>();
  } else {
    for (char c : vj.get<std::string>()) {
      if (c == '\n') vocab += "\\n";
      else if (c == '\t') vocab += "\\t";
      else if (uint8_t(c) < 32 || uint8_t(c) >= 127) vocab += fmt::format("\\x{:02x}", uint8_t(c));
      else vocab += c;
    }
  }
  if (vocab.size() > 80) vocab = vocab.substr(0, 77) + "...";
  line(fmt::format("tokenizer    {}, {} tokens: \"{}\"", r["tokenizer"]["type"].get<std::string>(),
                   r["tokenizer"]["vocab_size"].get<int>(), vocab));
  if (r["tokenizer"].contains("target_ids"))
    line(fmt::format("             source ids {}..{}, target ids {}..{} (data.shared_vocab false)",
                     r["tokenizer"]["source_ids"][0].get<int>(), r["tokenizer"]["source_ids"][1].get<int>(),
                     r["tokenizer"]["target_ids"][0].get<int>(), r["tokenizer"]["target_ids"][1].get<int>()));
  line("attention");
  for (const auto& a : r["attention"]) {
    std::string s = fmt::format("  {} ({}): {} | {} | heads {}, kv heads {} | scale {} | dropout {} | window {}",
                                a["slot"].get<std::string>(), a["short"].get<std::string>(),
                                a["type"].get<std::string>(), a["causal"].get<bool>() ? "causal mask" : "no mask",
                                a["n_heads"].get<int>(), a["n_kv_heads"].get<int>(), a["scale"].get<std::string>(),
                                a["dropout"].get<double>(),
                                a["window"].get<int>() > 0 ? std::to_string(a["window"].get<int>()) : "off");
    if (a["positions"] != "none") s += " | positions " + a["positions"].get<std::string>();
    if (a.contains("rope_base")) s += fmt::format(" (base {})", a["rope_base"].get<double>());
    if (a.contains("score")) s += " | score " + a["score"].get<std::string>();
    line(s);
    if (a.contains("summary")) line("    " + a["summary"].get<std::string>());
  }
  const long long total = r["parameters"]["total"].get<long long>();
  line(fmt::format("parameters   {} in {} tensors", thousands(total), r["parameters"]["tensors"].get<int>()));
  size_t w = 6;
  for (const auto& mod : r["parameters"]["modules"]) w = std::max(w, mod["name"].get<std::string>().size());
  for (const auto& mod : r["parameters"]["modules"]) {
    const long long c = mod["count"].get<long long>();
    line(fmt::format("  {:<{}}  {:>12}  {:5.1f}%", mod["name"].get<std::string>(), w, thousands(c),
                     total ? 100.0 * double(c) / double(total) : 0.0));
  }
  size_t nw = 4, sw = 5;
  for (const auto& t : r["tensors"]) {
    nw = std::max(nw, t["name"].get<std::string>().size());
    sw = std::max(sw, shape_text(t["shape"]).size());
  }
  line("tensors");
  line(fmt::format("  {:<{}}  {:<{}}  {:>11}  {:>11}  {:>11}", "name", nw, "shape", sw, "mean", "std", "L2 norm"));
  for (const auto& t : r["tensors"])
    line(fmt::format("  {:<{}}  {:<{}}  {:>11.4e}  {:>11.4e}  {:>11.4e}", t["name"].get<std::string>(), nw,
                     shape_text(t["shape"]), sw, t["mean"].get<double>(), t["std"].get<double>(),
                     t["l2"].get<double>()));
  const json& st = r["train_state"];
  if (st.is_null() && fs::path(r["path"].get<std::string>()).filename() == "best.safetensors") {
    line("training state: none (best.safetensors is a copy of the weights; a resume continues from "
         "checkpoints/latest)");
  } else if (st.is_null()) {
    line("training state: none (no step_NNNNNNN.state.safetensors next to this file: it cannot be resumed)");
  } else {
    line(fmt::format("training state {}", st["path"].get<std::string>()));
    std::string best = st["best_step"].is_null()
                           ? "no evaluation yet"
                           : fmt::format("best val loss {} at step {}", num(st["best_val_loss"]),
                                         st["best_step"].get<int>());
    line(fmt::format("  step {} | AdamW t {} | {} | last val loss {} | skipped steps {} | trained {}",
                     st["step"].get<int>(), st["optimizer_t"].get<int>(), best, num(st["last_val_loss"]),
                     st["skipped_steps"].get<int>(), fmt_duration(st["elapsed_s"].get<double>(), UnderMinute::tenths)));
    std::vector<std::string> kept = st["kept"].get<std::vector<std::string>>();
    line(fmt::format("  kept checkpoints: {}", fmt::join(kept, ", ")));
  }
  return o;
}

std::string sparkline(const std::vector<double>& values, int width) {
  static const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x)) v.push_back(x);
  if (v.empty() || width < 1) return "";
  const size_t n = std::min(v.size(), size_t(width));
  std::vector<double> b(n, 0.0);
  for (size_t i = 0; i < n; i++) {  // bucket i averages v[lo, hi)
    const size_t lo = i * v.size() / n, hi = std::max(lo + 1, (i + 1) * v.size() / n);
    for (size_t k = lo; k < hi; k++) b[i] += v[k];
    b[i] /= double(hi - lo);
  }
  const auto [mn, mx] = std::minmax_element(b.begin(), b.end());
  std::string out;
  for (double x : b) {
    const int level = *mx > *mn ? int(std::lround((x - *mn) / (*mx - *mn) * 7.0)) : 0;
    out += bars[std::clamp(level, 0, 7)];
  }
  return out;
}

nlohmann::json inspect_run(const std::string& run_dir) {
  std::error_code ec;
  const std::string cfg_path = (fs::path(run_dir) / "config.yaml").string();
  if (!fs::is_directory(run_dir, ec)) user_error("'{}' is not a directory", run_dir);
  if (!fs::exists(cfg_path, ec))
    user_error("'{}' is not a run directory: it has no config.yaml (give a run directory or a .safetensors file)",
               run_dir);
  const Config cfg = load_config(cfg_path);
  json r;
  r["type"] = "run";
  r["run_dir"] = run_dir;
  json slot_types = json::object();  // each slot the kind has -> its type
  for (const auto& slot : model_slots(cfg.model.kind)) slot_types[slot] = slot_config(cfg.model, slot).type;
  r["config"] = {{"path", cfg_path},
                 {"kind", option_name(cfg.model.kind)},
                 {"layers", layers_summary(cfg.model)},
                 {"n_layers", cfg.model.n_layers},
                 {"d_model", cfg.model.d_model},
                 {"n_heads", cfg.model.n_heads},
                 {"attention", attention_summary(cfg.model)},
                 {"attention_slots", slot_types},
                 {"positions", option_name(cfg.model.positions)},
                 {"data", describe_data_config(cfg)},
                 {"steps", cfg.train.steps},
                 {"batch_size", cfg.train.batch_size},
                 {"lr", cfg.train.lr},
                 {"schedule", cfg.train.schedule},
                 {"seed", cfg.train.seed}};
  // metrics
  const auto rows = read_metrics((fs::path(run_dir) / "metrics.jsonl").string());
  json last_train = nullptr, last_val = nullptr, best = nullptr, exact = nullptr;
  std::vector<double> train_loss;
  int skipped = 0;
  for (const auto& row : rows) {
    const bool has_loss = row.contains("loss") && row["loss"].is_number();
    if (row.value("skipped", false)) skipped++;
    if (row.value("split", "") == "train" && has_loss) {
      last_train = row;
      train_loss.push_back(row["loss"].get<double>());
    }
    if (row.value("split", "") == "val" && has_loss) {
      last_val = row;
      if (best.is_null() || row["loss"].get<double>() < best["loss"].get<double>())
        best = {{"step", row["step"]}, {"loss", row["loss"]}};
    }
    if (row.contains("exact_match")) exact = {{"step", row["step"]}, {"exact_match", row["exact_match"]}};
  }
  r["metrics"] = {{"rows", rows.size()}, {"last_train", last_train}, {"last_val", last_val}, {"best_val", best},
                  {"exact_match", exact}, {"skipped_steps", skipped}};
  if (!train_loss.empty()) {
    const auto [mn, mx] = std::minmax_element(train_loss.begin(), train_loss.end());
    r["train_loss"] = {{"points", train_loss.size()},
                       {"first", train_loss.front()},
                       {"last", train_loss.back()},
                       {"min", *mn},
                       {"max", *mx},
                       {"sparkline", sparkline(train_loss)}};
  } else {
    r["train_loss"] = nullptr;
  }
  // checkpoints
  json ck = {{"latest", nullptr}, {"files", json::array()}, {"best", nullptr}};
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(fs::path(run_dir) / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find(".state.") == std::string::npos &&
        e.path().extension() == ".safetensors")
      files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  ck["files"] = files;
  int latest_step = -1;
  if (fs::exists(fs::path(run_dir) / "checkpoints" / "latest", ec)) {
    const std::string path = latest_checkpoint(run_dir);
    const json c = inspect_checkpoint(path);  // the checkpoint and its training state, fully checked
    latest_step = c["step"].get<int>();
    json latest = {{"file", fs::path(path).filename().string()}, {"step", latest_step}, {"state", c["train_state"]}};
    ck["latest"] = latest;
  }
  const fs::path best_path = fs::path(run_dir) / "checkpoints" / "best.safetensors";
  if (fs::exists(best_path, ec)) {
    const CheckpointFile f = read_checkpoint(best_path.string());
    json b = {{"file", "best.safetensors"}, {"step", std::atoi(f.metadata.at("step").c_str())}};
    if (f.metadata.count("val_loss")) b["val_loss"] = std::strtof(f.metadata.at("val_loss").c_str(), nullptr);
    ck["best"] = b;
  }
  r["checkpoints"] = ck;
  std::string status;
  if (latest_step < 0) status = rows.empty() ? "not started" : "no checkpoint yet (cannot be resumed)";
  else if (latest_step >= cfg.train.steps) status = "complete";
  else status = "stopped";
  r["status"] = status;
  r["step"] = latest_step < 0 ? json(nullptr) : json(latest_step);
  return r;
}

std::string render_run(const nlohmann::json& r) {
  std::string o;
  auto line = [&](const std::string& s) { o += s + "\n"; };
  const json& c = r["config"];
  line(fmt::format("run          {}", r["run_dir"].get<std::string>()));
  line(fmt::format("model        {} | {} | d_model {} | {} heads | positions {} | attention {}",
                   c["kind"].get<std::string>(), c["layers"].get<std::string>(), c["d_model"].get<int>(),
                   c["n_heads"].get<int>(), c["positions"].get<std::string>(), c["attention"].get<std::string>()));
  line(fmt::format("data         {}", c["data"].get<std::string>()));
  line(fmt::format("train        {} steps × {} sequences | lr {} {} | seed {}", c["steps"].get<int>(),
                   c["batch_size"].get<int>(), c["lr"].get<double>(), c["schedule"].get<std::string>(),
                   c["seed"].get<long long>()));
  const std::string status = r["status"].get<std::string>();
  if (status == "stopped")
    line(fmt::format("status       stopped at step {} of {}: resume with `attnlab train --resume {}`",
                     r["step"].get<int>(), c["steps"].get<int>(), r["run_dir"].get<std::string>()));
  else if (status == "complete")
    line(fmt::format("status       complete: step {} of {}", r["step"].get<int>(), c["steps"].get<int>()));
  else
    line("status       " + status);
  const json& m = r["metrics"];
  if (!m["last_train"].is_null()) {
    const json& t = m["last_train"];
    line(fmt::format("last train   step {} | loss {} | lr {:.2e} | grad norm {}", t["step"].get<int>(),
                     num(t["loss"]), t.value("lr", 0.0), num(t.value("grad_norm", 0.0))));
  }
  if (!m["last_val"].is_null())
    line(fmt::format("last val     step {} | loss {}", m["last_val"]["step"].get<int>(), num(m["last_val"]["loss"])));
  if (!m["best_val"].is_null()) {
    std::string s = fmt::format("best val     step {} | loss {}", m["best_val"]["step"].get<int>(),
                                num(m["best_val"]["loss"]));
    if (!r["checkpoints"]["best"].is_null()) s += "  (checkpoints/best.safetensors)";
    line(s);
  }
  if (!m["exact_match"].is_null())
    line(fmt::format("exact match  {:.1f}% of the held-out examples (step {})",
                     100.0 * m["exact_match"]["exact_match"].get<double>(), m["exact_match"]["step"].get<int>()));
  if (m["skipped_steps"].get<int>() > 0)
    line(fmt::format("skipped      {} steps (NaN/Inf loss or gradient; train.on_nan: skip)",
                     m["skipped_steps"].get<int>()));
  const json& ck = r["checkpoints"];
  std::string cl = "checkpoints  ";
  if (ck["latest"].is_null()) cl += "none";
  else {
    cl += "latest " + ck["latest"]["file"].get<std::string>();
    cl += ck["latest"]["state"].is_null() ? " (no training state)" : " (+ training state)";
  }
  const auto files = ck["files"].get<std::vector<std::string>>();
  if (!files.empty()) cl += fmt::format(" | on disk: {}", fmt::join(files, ", "));
  if (!ck["best"].is_null()) cl += fmt::format(" | best.safetensors (step {})", ck["best"]["step"].get<int>());
  line(cl);
  if (!r["train_loss"].is_null()) {
    const json& t = r["train_loss"];
    line(fmt::format("train loss   {} {} {}   ({} points, min {}, max {})", num(t["first"]),
                     t["sparkline"].get<std::string>(), num(t["last"]), t["points"].get<int>(), num(t["min"]),
                     num(t["max"])));
  }
  return o;
}

nlohmann::json dump_forward(const std::string& checkpoint, const std::string& text, const std::string& dir,
                            const DumpProgress& progress) {
  LoadedModel lm = load_model(checkpoint);
  if (text.empty()) user_error("--input is empty: give some text to run the model on");
  const std::vector<int> ids = lm.tokenizer.encode(text);  // UserError names an unknown character
  const int T_in = int(ids.size());
  if (T_in > lm.config.model.block_size)
    user_error("--input has {} tokens; the model's block_size is {}", T_in, lm.config.model.block_size);
  Model& model = *lm.model;
  const bool seq2seq = lm.config.model.kind == ModelConfig::Kind::encoder_decoder;
  // An encoder_decoder reads the input as its source; its decoder gets the separator followed by the
  // model's own greedy output (up to the end token), so the maps show what it attends to as it answers.
  Batch batch;
  batch.B = 1;
  std::vector<int> dec_ids = ids, output;
  // stages: [decoding], the forward pass, logits.npy, one file per attention layer
  const long n_stages = (seq2seq ? 1 : 0) + 2 + long(model.named_attention().size());
  long stage = 0;
  auto next_stage = [&](const std::string& what) {
    if (progress) progress(stage, n_stages, what);
    stage++;
  };
  if (seq2seq) {
    const auto data = make_dataset(lm.config);
    const TaskDataset* task = data->task();
    if (!task) user_error("--input: an encoder_decoder checkpoint needs its seq2seq task");
    next_stage("decoding the answer");
    output = decode_output(model, *task, ids);
    dec_ids = {task->sep_id()};
    dec_ids.insert(dec_ids.end(), output.begin(), output.end());
    batch.S = T_in;
    batch.src = ids;
    batch.src_len = {T_in};
  }
  const int T = int(dec_ids.size());
  batch.T = T;
  batch.x = dec_ids;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec)) user_error("cannot create the dump directory '{}': {}", dir, ec.message());
  const auto named = model.named_attention();
  for (auto& [label, a] : named) a->keep_weights(true);
  next_stage("forward pass");
  model.forward(batch, false, nullptr);
  const int V = model.n_classes() > 0 ? model.n_classes() : model.vocab_size();
  const int rows = model.n_classes() > 0 ? 1 : T;
  auto token_strings = [&](const std::vector<int>& v) {
    json out = json::array();
    const std::vector<std::string> shown = shown_tokens(lm.tokenizer);
    for (int id : v) out.push_back(shown[size_t(id)]);
    return out;
  };
  json r;
  r["checkpoint"] = checkpoint;
  r["step"] = lm.step;
  r["dir"] = dir;
  r["text"] = text;
  const json tokens = token_strings(ids);
  r["tokens"] = tokens;
  r["ids"] = ids;
  if (seq2seq) {
    r["decoder_tokens"] = token_strings(dec_ids);
    r["decoder_ids"] = dec_ids;
    r["output"] = lm.tokenizer.decode(output);
  }
  next_stage("logits.npy");
  write_npy((fs::path(dir) / "logits.npy").string(), model.logits(), {rows, V});
  r["logits"] = {{"file", "logits.npy"}, {"shape", {rows, V}}};
  json attn = json::array(), notes = json::array();
  for (auto& [label, a] : named) {
    const std::vector<float> w = a->attention_weights();
    const int H = a->spec().n_heads;
    const bool enc = label.rfind("encoder", 0) == 0, cross = label.find("cross") != std::string::npos;
    const int Tq = enc || !seq2seq ? (enc ? T_in : T) : T, Tk = enc ? T_in : (cross ? T_in : T);
    const std::string name = fmt::format("attn_{}.npy", label);
    next_stage(name);
    if (w.empty()) {
      notes.push_back(fmt::format("{}: attention type '{}' kept no weights for this input; {} not written", label,
                                  a->spec().type, name));
      continue;
    }
    if (w.size() != size_t(H) * Tq * Tk)
      throw std::logic_error(fmt::format("{}: attention weights have {} values, expected {}×{}×{}", label, w.size(),
                                         H, Tq, Tk));
    write_npy((fs::path(dir) / name).string(), w, {H, Tq, Tk});
    const size_t us = label.rfind("_L");
    attn.push_back({{"file", name}, {"slot", label.substr(0, us)}, {"layer", std::atoi(label.c_str() + us + 2)},
                    {"type", a->spec().type}, {"shape", {H, Tq, Tk}}});
  }
  for (auto& [label, a] : named) a->keep_weights(false);
  r["attention"] = attn;
  r["notes"] = notes;
  r["tokens_file"] = "tokens.json";
  json tj = {{"text", text}, {"tokens", tokens}, {"ids", ids}, {"checkpoint", checkpoint}, {"step", lm.step},
             {"vocab_size", model.vocab_size()}, {"attention", attn}, {"logits", r["logits"]}};
  if (seq2seq) {
    tj["decoder_tokens"] = r["decoder_tokens"];
    tj["decoder_ids"] = dec_ids;
    tj["output"] = r["output"];
  }
  write_file_atomic((fs::path(dir) / "tokens.json").string(),
                    tj.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  return r;
}

std::string render_dump(const nlohmann::json& r) {
  std::string o;
  const std::string dir = r["dir"].get<std::string>();
  o += fmt::format("forward pass of {} (step {}) on {} tokens\n", r["checkpoint"].get<std::string>(),
                   r["step"].get<int>(), r["ids"].size());
  o += fmt::format("  {}  {}\n", (fs::path(dir) / "logits.npy").string(), shape_text(r["logits"]["shape"]));
  for (const auto& a : r["attention"])
    o += fmt::format("  {}  {}  (heads, queries, keys)\n", (fs::path(dir) / a["file"].get<std::string>()).string(),
                     shape_text(a["shape"]));
  o += fmt::format("  {}  (tokens as strings and ids)\n", (fs::path(dir) / "tokens.json").string());
  for (const auto& n : r["notes"]) o += "note: " + n.get<std::string>() + "\n";
  return o;
}

}  // namespace attnlab
