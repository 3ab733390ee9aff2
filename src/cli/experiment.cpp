// `attnlab experiment run FILE` / `attnlab experiment show FILE|DIR`: experiments as data
// (experiment/experiment.h, docs/experiments.md "Running experiments").
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/console.h"
#include "core/error.h"
#include "experiment/experiment.h"

namespace attnlab::cli {

namespace fs = std::filesystem;

namespace {

struct ExperimentArgs {
  std::string file, out, target;
  std::vector<std::string> sets;
  int jobs = 1, index = -1;
  bool no_plot = false, dry_run = false, strict = false, quiet = false;
};

// `experiment show`: print results.md
int show_results(const ExperimentArgs& o) {
  std::error_code ec;
  std::string dir = o.target;
  if (!fs::is_directory(dir, ec)) {
    if (!fs::exists(dir, ec)) user_error("experiment show: '{}' is neither an experiment file nor a directory", dir);
    const Experiment exp = load_experiment(o.target);
    dir = o.out.empty() ? default_output_dir(exp) : o.out;
  }
  const fs::path md = fs::path(dir) / "results.md";
  if (!fs::exists(md, ec)) user_error("experiment show: '{}' has no results.md yet (run `attnlab experiment run` first)", dir);
  std::ifstream in(md);
  std::stringstream ss;
  ss << in.rdbuf();
  std::fputs(ss.str().c_str(), stdout);
  return 0;
}

// `experiment run --dry-run`: the cells and what each sets
int list_cells(const Experiment& exp, const std::string& out) {
  std::printf("experiment %s: %zu cells (%s %d) -> %s\n", exp.name.c_str(), exp.cells.size(),
              exp.run == "train" ? "train.threads" : "threads", exp.cells.empty() ? 0 : exp.cells[0].threads,
              out.c_str());
  for (size_t i = 0; i < exp.cells.size(); i++) {
    std::vector<std::string> shown = exp.cells[i].overrides;
    if (exp.run != "train") {  // every parameter the cell reads, defaults included
      shown.clear();
      for (const auto& [k, v] : exp.cells[i].params) shown.push_back(k + "=" + v);
    }
    std::printf("  %zu/%zu %s%s: %s\n", i + 1, exp.cells.size(), exp.cells[i].name.c_str(),
                cell_done(exp, i, out) ? " (done)" : "", fmt::format("{}", fmt::join(shown, " ")).c_str());
  }
  return 0;
}

// Progress lines on stdout (a live line overwritten in place on a terminal), and with --jobs > 1
// each cell in a child process (`experiment cell`).
RunExperimentOptions run_options(const ExperimentArgs& o, const Experiment& exp, const std::string& out,
                                 bool& live_on) {
  RunExperimentOptions ro;
  ro.jobs = o.jobs;
  ro.print = [&live_on](const std::string& s) {
    if (live_on) std::fputs("\r\033[K", stdout);
    live_on = false;
    set_live_line(false);
    std::fputs((s + "\n").c_str(), stdout);
    std::fflush(stdout);
  };
  ro.quiet = o.quiet;
  if (isatty(STDOUT_FILENO) && !o.quiet)
    ro.live = [&live_on](const std::string& s) {
      std::fputs(("\r\033[K" + s).c_str(), stdout);
      std::fflush(stdout);
      live_on = true;
      set_live_line(true);  // an error ends this line first (cli/main.cpp)
    };
  if (o.jobs > 1) ro.launch = cell_process_launcher(exp, o.file, out, o.jobs, o.sets);
  return ro;
}

// After the cells: the plots, and with --strict the checks.
int plot_and_check(const ExperimentArgs& o, const Experiment& exp, const std::string& out) {
  if (!o.no_plot && !exp.plots.empty()) {
    const PlotCommand pc = plot_command(exp, out);
    if (!pc.why_not.empty()) {
      std::printf("plot: not made (%s); make it with\n  %s\n", pc.why_not.c_str(), pc.command.c_str());
    } else {
      if (!run_plot_command(pc))
        std::printf("plot: `%s` failed; results.csv and results.md are written\n", pc.command.c_str());
    }
  }
  if (o.strict) {
    const auto failed = failed_checks(exp, out);
    for (const auto& f : failed) std::printf("strict: %s\n", f.c_str());
    if (!failed.empty()) {
      std::printf("strict: %zu problem(s); exit status 1\n", failed.size());
      return 1;
    }
    std::printf("strict: every cell finished and every check passed\n");
  }
  return 0;
}

}  // namespace

Run add_experiment(CLI::App& app) {
  auto o = std::make_shared<ExperimentArgs>();
  auto* sub = app.add_subcommand("experiment", "Run a grid of training runs declared in an experiment file");
  sub->require_subcommand(1);
  auto* run = sub->add_subcommand("run", "Run every cell of the experiment not done yet; write results.csv, "
                                         "results.md and the plots");
  run->add_option("file", o->file, "Experiment file (configs/experiments/e*.yaml)")->required();
  run->add_option("--out", o->out, "Output directory (default runs/experiments/<experiment name>)");
  run->add_option("--jobs", o->jobs,
                  "Cells run at once, as child processes; each cell's train.threads is capped at cores / jobs")
      ->check(CLI::PositiveNumber);
  run->add_option("--set", o->sets, "Override a config key in every cell: --set train.steps=100 (repeatable)");
  run->add_flag("--no-plot", o->no_plot, "Do not call scripts/plot_experiment.py");
  run->add_flag("--quiet", o->quiet, "No progress lines (cell i/N, steps, ETA); a line per finished cell still");
  run->add_flag("--dry-run", o->dry_run, "Check the file and every cell's config, list the cells, run nothing");
  run->add_flag("--strict", o->strict,
                "Exit 1 unless every cell finished, every `pass` figure is 1 and every summary check passed");
  run->footer(
      "Rerunning the command skips finished cells (cells/<name>/done.json) and continues a cell that stopped\n"
      "part-way from its checkpoint. Ctrl-C: the running cells save a checkpoint and stop.");
  auto* show = sub->add_subcommand("show", "Print results.md of an experiment (its file or its output directory)");
  show->add_option("target", o->target, "Experiment file or output directory")->required();
  show->add_option("--out", o->out, "With an experiment file: its output directory, if not the default");
  // internal: one cell in a child process (run --jobs N)
  auto* cell = sub->add_subcommand("cell", "");
  cell->group("");
  cell->add_option("file", o->file)->required();
  cell->add_option("--out", o->out)->required();
  cell->add_option("--index", o->index)->required();
  cell->add_option("--jobs", o->jobs);
  cell->add_option("--set", o->sets);
  return [o, show, cell]() {
    if (show->parsed()) return show_results(*o);
    ExperimentOptions eo;
    eo.sets = o->sets;
    eo.jobs = o->jobs;
    const Experiment exp = load_experiment(o->file, eo);
    const std::string out = o->out.empty() ? default_output_dir(exp) : o->out;
    if (cell->parsed()) {
      if (o->index < 0 || size_t(o->index) >= exp.cells.size())
        user_error("experiment cell: --index {} is outside 0..{}", o->index, exp.cells.size() - 1);
      const CellOutcome oc = run_cell(exp, size_t(o->index), out, true);
      return oc.interrupted ? 130 : 0;
    }
    if (o->dry_run) return list_cells(exp, out);
    bool live_on = false;
    const int rc = run_experiment(exp, out, run_options(*o, exp, out, live_on));
    if (rc != 0) return rc;
    return plot_and_check(*o, exp, out);
  };
}

}  // namespace attnlab::cli
