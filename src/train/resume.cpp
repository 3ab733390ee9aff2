#include "train/resume.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "model/model.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

// The config keys a resume may change, each with how it is copied between configs: they do not
// alter the model, the data or the optimizer.
struct ResumeKey {
  const char* name;
  void (*copy)(const TrainConfig& from, TrainConfig& to);
};
constexpr ResumeKey kResumeKeys[] = {
    {"train.steps", [](const TrainConfig& f, TrainConfig& t) { t.steps = f.steps; }},
    {"train.threads", [](const TrainConfig& f, TrainConfig& t) { t.threads = f.threads; }},
    {"train.log_interval", [](const TrainConfig& f, TrainConfig& t) { t.log_interval = f.log_interval; }},
    {"train.eval_interval", [](const TrainConfig& f, TrainConfig& t) { t.eval_interval = f.eval_interval; }},
    {"train.checkpoint_interval",
     [](const TrainConfig& f, TrainConfig& t) { t.checkpoint_interval = f.checkpoint_interval; }},
    {"train.keep_checkpoints", [](const TrainConfig& f, TrainConfig& t) { t.keep_checkpoints = f.keep_checkpoints; }},
    {"train.on_nan", [](const TrainConfig& f, TrainConfig& t) { t.on_nan = f.on_nan; }},
    // rounding only: the weights and the optimizer state stay fp32 either way
    {"train.precision", [](const TrainConfig& f, TrainConfig& t) { t.precision = f.precision; }},
    {"train.attention_maps", [](const TrainConfig& f, TrainConfig& t) { t.attention_maps = f.attention_maps; }},
    // the state file does not depend on it: the same batches and the same update, summed in another order
    {"train.grad_accum", [](const TrainConfig& f, TrainConfig& t) { t.grad_accum = f.grad_accum; }},
};

// The first line where two YAML dumps differ, as "`a` vs `b`" (empty if equal).
std::string first_difference(const std::string& a, const std::string& b) {
  std::stringstream sa(a), sb(b);
  std::string la, lb;
  while (true) {
    const bool ga = bool(std::getline(sa, la)), gb = bool(std::getline(sb, lb));
    if (!ga && !gb) return "";
    if (!ga) la = "(nothing)";
    if (!gb) lb = "(nothing)";
    if (la != lb || !ga || !gb) return fmt::format("`{}` vs `{}`", trim(la), trim(lb));
  }
}

// What the changed keys mean for the run (notes for the log).
std::vector<std::string> resume_notes(const Config& before, const Config& cfg) {
  std::vector<std::string> notes;
  if (cfg.train.steps != before.train.steps && cfg.train.schedule == "cosine")
    notes.push_back(fmt::format("train.steps {} -> {}: the cosine schedule is stretched from here on, so the "
                                "run differs from one started with {} steps",
                                before.train.steps, cfg.train.steps, cfg.train.steps));
  if (cfg.train.threads != before.train.threads)
    notes.push_back(fmt::format("train.threads {} -> {}: losses are bitwise reproducible only for a fixed thread "
                                "count",
                                before.train.threads, cfg.train.threads));
  if (cfg.train.grad_accum != before.train.grad_accum)
    notes.push_back(fmt::format("train.grad_accum {} -> {}: the same batches and the same gradient up to float "
                                "rounding, with other dropout draws; losses are bitwise reproducible only for a "
                                "fixed train.grad_accum",
                                before.train.grad_accum, cfg.train.grad_accum));
  return notes;
}

}  // namespace

const std::vector<std::string>& resume_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (const ResumeKey& r : kResumeKeys) k.push_back(r.name);
    return k;
  }();
  return keys;
}

ResumePoint check_resume(const std::string& run_dir, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) user_error("cannot resume '{}': not a directory", run_dir);
  const std::string cfg_path = (fs::path(run_dir) / "config.yaml").string();
  if (!fs::exists(cfg_path, ec))
    user_error("cannot resume '{}': it has no config.yaml (is it a run directory written by `attnlab train`?)",
               run_dir);
  for (const auto& ov : overrides) {
    const std::string key = trim(ov.substr(0, ov.find('=')));
    if (std::find(resume_keys().begin(), resume_keys().end(), key) == resume_keys().end())
      user_error("--set {}: '{}' cannot be changed when resuming (it would change the model, the data or the "
                 "optimizer); a resume may change only {}",
                 ov, key, fmt::join(resume_keys(), ", "));
  }
  const Config before = load_config(cfg_path);
  ResumePoint r;
  r.cfg = load_config(cfg_path, overrides);
  const LatestPointer latest = read_latest(run_dir);
  if (!latest.present)
    user_error("cannot resume '{}': it has no checkpoint yet (checkpoints/latest is missing); start it again "
               "with `attnlab train CONFIG --run-dir {}`",
               run_dir, run_dir);
  if (!latest.names_file() || !is_step_file(latest.name))
    user_error("cannot resume '{}': checkpoints/latest does not name a checkpoint (it holds '{}')", run_dir,
               latest.name);
  r.ckpt_path = latest.path;
  r.ck = read_checkpoint(r.ckpt_path);
  const LoadedModel lm = load_model(r.ck, r.ckpt_path);  // version, embedded config, vocabulary, shapes
  Config embedded = lm.config;
  for (const ResumeKey& k : kResumeKeys) k.copy(r.cfg.train, embedded.train);
  const std::string diff = first_difference(dump_config(r.cfg), dump_config(embedded));
  if (!diff.empty())
    user_error("cannot resume '{}': config.yaml differs from the config embedded in {} ({}); a resume may "
               "change only {}",
               run_dir, r.ckpt_path, diff, fmt::join(resume_keys(), ", "));
  r.tokenizer = lm.tokenizer;
  r.notes = resume_notes(before, r.cfg);
  return r;
}

}  // namespace attnlab
