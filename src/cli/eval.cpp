#include <fmt/format.h>

#include <omp.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/progress.h"
#include "core/error.h"
#include "train/eval_data.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/run_dir.h"

namespace attnlab::cli {

Run add_eval(CLI::App& app) {
  struct Opts {
    std::string checkpoint, split = "val";
    std::vector<std::string> sets;
    bool json = false, quiet = false;
    int examples = -1, show = 8, beam = -1, threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("eval", "Print a checkpoint's task metrics on the val or test split");
  sub->add_option("checkpoint", o->checkpoint,
                  "A .safetensors checkpoint written by `attnlab train`, or a run directory (its best checkpoint, "
                  "else its latest)")
      ->required();
  sub->add_option("--split", o->split, "val or test (text data: val only)")
      ->check(CLI::IsMember({"val", "test"}))
      ->capture_default_str();
  sub->add_option("--examples", o->examples, "seq2seq tasks: decode only the first N examples (default: all)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--show", o->show, "seq2seq tasks: print this many decoded examples")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--beam", o->beam, "Beam width for decoding (default: the config's sample.beam_width)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--threads", o->threads, "OpenMP threads (default: train.threads, else all)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--set", o->sets,
                  fmt::format("Evaluate on other data settings: --set data.max_len=16 (repeatable); only {}",
                              fmt::join(data_override_keys(), ", ")));
  sub->add_flag("--json", o->json, "Print one JSON object instead of the table");
  sub->add_flag("--quiet", o->quiet, "No progress line on stderr");
  return [o]() {
    const CheckpointArg ck = resolve_checkpoint_arg(o->checkpoint);
    if (!ck.note.empty()) fmt::print(stderr, "note: {}\n", ck.note);  // stdout: the table or the JSON alone
    o->checkpoint = ck.path;
    LoadedModel lm = load_model(o->checkpoint);
    const int threads = o->threads > 0 ? o->threads : lm.config.train.threads;
    if (threads > 0) omp_set_num_threads(threads);
    const CheckpointData cd = checkpoint_data(lm, o->checkpoint, o->sets);
    for (const auto& n : cd.notes) fmt::print(stderr, "note: {}\n", n);
    EvalOptions opt;
    opt.split = o->split == "test" ? Split::test : Split::val;
    opt.max_examples = o->examples;
    opt.beam_width = o->beam > 0 ? o->beam : lm.config.sample.beam_width;
    opt.length_penalty = float(lm.config.sample.length_penalty);
    ProgressMeter meter(fmt::format("eval {}", o->split), 0, "batches and examples", o->quiet);
    opt.progress = [&meter](long, long total) {
      meter.set_total(total);
      meter.tick();
    };
    const EvalReport rep = evaluate(*lm.model, *cd.data, cd.config, opt);
    meter.done();
    if (o->json) {
      nlohmann::json j = {{"checkpoint", o->checkpoint}, {"step", lm.step},   {"task", rep.task},
                          {"split", o->split},           {"kind", option_name(lm.config.model.kind)}};
      for (const auto& n : rep.names) j["metrics"][n] = rep.get(n);
      if (rep.has("exact_match")) j["examples"] = int(rep.examples.size()), j["beam_width"] = opt.beam_width;
      // the numbers as numbers, data.path (src_path, tgt_path) as text
      auto value = [](const DataOverride& ov, const std::string& v) {
        const bool path = ov.key.size() >= 4 && ov.key.compare(ov.key.size() - 4, 4, "path") == 0;
        return path ? nlohmann::json(v) : nlohmann::json::parse(v, nullptr, false);
      };
      for (const auto& ov : cd.overrides)
        j["overrides"][ov.key] = {{"value", value(ov, ov.value)}, {"trained", value(ov, ov.trained)}};
      std::puts(j.dump(2).c_str());
      return 0;
    }
    fmt::print("checkpoint   {} (step {})\n", o->checkpoint, lm.step);
    fmt::print("task         {} | {} split | model {}\n", rep.task, o->split, option_name(lm.config.model.kind));
    for (const auto& ov : cd.overrides)
      fmt::print("overridden   {} = {} (trained with {})\n", ov.key, ov.value, ov.trained);
    for (const auto& n : rep.names) {
      const double v = rep.get(n);
      const bool pct = n.find("acc") != std::string::npos || n == "exact_match";
      if (pct) fmt::print("{:<17}{:.2f}%\n", n, 100.0 * v);
      else fmt::print("{:<17}{:.4f}\n", n, v);
    }
    if (rep.has("exact_match")) {
      fmt::print("decoded      {} examples ({})\n", rep.examples.size(),
                 opt.beam_width > 1 ? fmt::format("beam search, width {}", opt.beam_width) : std::string("greedy"));
      for (int i = 0; i < o->show && i < int(rep.examples.size()); i++) {
        const Prediction& p = rep.examples[size_t(i)];
        fmt::print("  {} -> {}  {}\n", p.input, p.predicted, p.correct ? "ok" : "(expected " + p.expected + ")");
      }
    }
    return 0;
  };
}

}  // namespace attnlab::cli
