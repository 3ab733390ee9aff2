#include <fmt/format.h>

#include <csignal>
#include <filesystem>

#include "cli/commands.h"
#include "config/config.h"
#include "core/comm.h"
#include "core/error.h"
#include "train/trainer.h"

namespace attnlab::cli {

Run add_train(CLI::App& app) {
  struct Opts {
    std::string config, run_dir, resume;
    std::vector<std::string> sets;
    bool overwrite = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("train", "Train a model from a YAML config, or resume a run");
  sub->add_option("config", o->config, "YAML config file (not with --resume)");
  sub->add_option("--set", o->sets,
                  fmt::format("Override a key: --set train.lr=3e-4 (repeatable); with --resume only {}",
                              fmt::join(resume_keys(), ", ")));
  sub->add_option("--run-dir", o->run_dir,
                  "Where to write logs and checkpoints (default runs/<config name>); a directory that holds an "
                  "earlier run is refused unless --overwrite is given");
  sub->add_flag("--overwrite", o->overwrite,
                "Delete the earlier run in the run directory (checkpoints, metrics, train.log) and start afresh");
  sub->add_flag("--quiet", o->quiet, "Nothing on stdout (no progress, no summary); train.log still gets every line");
  sub->add_option("--resume", o->resume,
                  "Continue the run in RUN_DIR from its latest checkpoint, exactly as if it had not stopped")
      ->option_text("RUN_DIR");
  sub->footer(
      "A run directory that already holds a run is never replaced silently: continue that run with\n"
      "`attnlab train --resume RUN_DIR`, or replace it with --overwrite.\n"
      "A closed stdout (`attnlab train ... | head`) does not stop the run; train.log gets every line.\n"
      "Ctrl-C (SIGINT), SIGTERM or SIGUSR1: the current step finishes, a checkpoint is saved and the command exits 0;\n"
      "a second one aborts at once (the last complete checkpoint stays intact).\n"
      "Several processes: mpirun -np N attnlab train CONFIG (docs/distributed.md); stop such a job with\n"
      "kill -USR1 <mpirun's pid>, which mpirun passes on to every process.");
  return [o]() {
    // a reader that goes away (`| head`) must not kill the run half-way: with SIGPIPE ignored the
    // console writes fail quietly, and train.log and the checkpoints carry on
    ::signal(SIGPIPE, SIG_IGN);
    TrainOptions opts;
    opts.handle_signals = true;
    opts.overwrite = o->overwrite;
    opts.quiet = o->quiet;
    if (!o->resume.empty()) {
      if (!o->config.empty())
        user_error("train --resume continues the run with its own config.yaml; drop the CONFIG argument ('{}')",
                   o->config);
      if (!o->run_dir.empty()) user_error("train --resume writes into RUN_DIR itself; drop --run-dir");
      if (o->overwrite) user_error("train --resume continues the run in RUN_DIR; --overwrite starts a new one: drop it");
      resume(o->resume, o->sets, opts);
      return 0;
    }
    if (o->config.empty()) user_error("train needs a CONFIG to start a run, or --resume RUN_DIR to continue one");
    Config cfg;
    on_every_rank(Comm::world(), [&] { cfg = load_config(o->config, o->sets); });
    std::string dir = o->run_dir;
    if (dir.empty()) dir = (std::filesystem::path("runs") / std::filesystem::path(o->config).stem()).string();
    train(cfg, dir, opts);
    return 0;
  };
}

}  // namespace attnlab::cli
