// Running an experiment: each cell is an ordinary training run in cells/<name>/ followed by its
// measurements and a done.json (written atomically, last). Cells run one after the other in this
// process, or --jobs N at a time as child processes (`attnlab experiment cell`, each in its own
// process group so that the parent decides how an interrupt reaches them).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/process.h"
#include "core/signals.h"
#include "core/text.h"
#include "experiment/internal.h"
#include "experiment/kinds.h"
#include "inspect/inspect.h"
#include "train/checkpoint.h"
#include "train/run_dir.h"
#include "train/run_state.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace attnlab {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Every val row of the run's metrics.jsonl.
json val_rows(const std::string& dir) {
  json rows = json::array();
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      json r = json::parse(line);
      if (r.value("split", "") == "val") rows.push_back(r);
    } catch (const json::exception&) {
    }
  }
  return rows;
}

json measurements_json(const Measurements& m) {
  json v = json::object(), layers = json::object();
  for (const auto& [k, x] : m.values) v[k] = x && std::isfinite(*x) ? json(*x) : json(nullptr);
  for (const auto& [k, xs] : m.layers) {
    json a = json::array();
    for (double x : xs) a.push_back(std::isfinite(x) ? json(x) : json(nullptr));
    layers[k] = a;
  }
  json out = {{"values", v}, {"layers", layers}, {"notes", m.notes}, {"examples_asked", nullptr}};
  if (!m.counts.empty()) out["counts"] = m.counts;  // bleu_by_length: examples per bucket
  return out;
}

// Whether a done.json has every measurement output the experiment asks for.
bool has_measurements(const Experiment& exp, const json& done) {
  for (const auto& m : exp.measure)
    if (!done.contains("measurements") || !done["measurements"]["values"].contains(m)) return false;
  return true;
}

void write_done(const Experiment& exp, size_t index, const std::string& dir, const std::string& checkpoint) {
  const ExperimentCell& c = exp.cells[index];
  const std::string state = state_path_for(checkpoint);
  const TrainState st = read_train_state(state, nullptr);
  json values = json::object();
  for (const auto& [k, v] : c.values) values[k] = v;
  json m = measurements_json(measure_checkpoint(exp, checkpoint));
  m["examples_asked"] = exp.measure_examples;
  json done = {{"cell", c.name},
               {"values", values},
               {"overrides", c.overrides},
               {"steps", st.step},
               {"seconds", st.elapsed_s},
               {"checkpoint", fs::path(checkpoint).lexically_relative(dir).string()},
               {"val", val_rows(dir)},
               {"measurements", m},
               {"config", c.identity}};
  write_file_atomic((fs::path(dir) / "done.json").string(), done.dump(2) + "\n");
}

// A cell of a kind that does not train: compute its figures, write done.json.
CellOutcome run_figures_cell(const Experiment& exp, size_t index, const std::string& dir) {
  const ExperimentCell& c = exp.cells[index];
  const CellKind* kind = find_cell_kind(exp.run);
  if (!kind) throw std::logic_error("run_figures_cell: unknown kind " + exp.run);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) user_error("cannot create the cell directory '{}': {}", dir, ec.message());
  const auto t0 = Clock::now();
  const CellFigures f = compute_cell_figures(*kind, c.params);
  CellOutcome out;
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  json values = json::object(), params = json::object(), figures = json::object();
  for (const auto& [k, v] : c.values) values[k] = v;
  for (const auto& [k, v] : c.params) params[k] = v;
  for (const auto& [k, v] : f.values) figures[k] = v && std::isfinite(*v) ? json(*v) : json(nullptr);
  json done = {{"cell", c.name},       {"run", exp.run},          {"values", values},
               {"overrides", c.overrides}, {"params", params},    {"figures", figures},
               {"notes", f.notes},     {"seconds", out.seconds},  {"config", c.identity}};
  write_file_atomic((fs::path(dir) / "done.json").string(), done.dump(2) + "\n");
  return out;
}

int step_of_checkpoint(const std::string& path) {
  const std::string n = fs::path(path).filename().string();  // step_0000300.safetensors
  return n.rfind("step_", 0) == 0 ? std::atoi(n.c_str() + 5) : -1;
}

// ---- interrupts while child processes run (--jobs > 1) ----
// Set while run_launched runs: the first SIGINT/SIGTERM asks the cells to stop, a second aborts (130).
const StopSignals* g_stop = nullptr;
bool interrupted() { return g_stop && g_stop->requested(); }

}  // namespace

CellOutcome run_cell(const Experiment& exp, size_t index, const std::string& out_dir, bool handle_signals,
                     const std::function<void(int, int)>& on_step) {
  const ExperimentCell& c = exp.cells.at(index);
  const std::string dir = cell_dir(out_dir, c);
  CellOutcome out;
  if (const auto done = read_done(exp, index, out_dir)) {
    out.skipped = true;
    out.seconds = done->value("seconds", 0.0);
    if (exp.run != "train") return out;
    // a measurement added to the experiment file since: take it from the cell's checkpoint
    if (!has_measurements(exp, *done)) write_done(exp, index, dir, latest_checkpoint(dir));
    return out;
  }
  if (exp.run != "train") return run_figures_cell(exp, index, dir);
  const Config& cfg = c.config;
  TrainOptions o;
  o.quiet = true;
  o.handle_signals = handle_signals;
  if (on_step)
    o.stop_after = [&](int d) {
      on_step(d, cfg.train.steps);
      return false;
    };
  // a run of the same config that stopped part-way continues; anything else starts afresh
  std::error_code ec;
  bool same = false;
  int step = -1;
  if (fs::exists(fs::path(dir) / "config.yaml", ec) && fs::exists(fs::path(dir) / "checkpoints" / "latest", ec)) {
    try {
      same = cell_identity(load_config((fs::path(dir) / "config.yaml").string())) == cell_identity(cfg);
      if (same) step = step_of_checkpoint(latest_checkpoint(dir));
    } catch (const UserError&) {
      same = false;
    }
  }
  if (!same || step < 0) {
    o.overwrite = true;  // the cell's directory is the runner's own: what a different config left there goes
    const TrainSummary s = train(cfg, dir, o);
    out.interrupted = s.interrupted;
  } else if (step < cfg.train.steps) {
    const TrainSummary s = resume(dir, {fmt::format("train.threads={}", cfg.train.threads)}, o);
    out.interrupted = s.interrupted;
  }  // else: trained to the end before; only the measurements and done.json are missing
  if (out.interrupted) return out;
  write_done(exp, index, dir, latest_checkpoint(dir));
  out.seconds = read_done(exp, index, out_dir)->value("seconds", 0.0);
  return out;
}

namespace {

// What the progress lines need while cells run: the cells started, the durations of those
// finished in this run, and the ETA from them. Callers hold `mu` around every member use.
struct Progress {
  Progress(const Experiment& e, const std::string& dir, const RunExperimentOptions& o) : exp(e), out_dir(dir), opt(o) {}
  const Experiment& exp;
  const std::string& out_dir;
  const RunExperimentOptions& opt;
  size_t N = 0;
  int jobs = 1;
  std::mutex mu;
  std::vector<double> durations;                // finished cells (this run)
  std::map<size_t, Clock::time_point> running;  // cell -> start
  int position = 0;                             // cells started or done, for "cell i/N"
  bool interrupted = false;
  std::string failure;

  void print(const std::string& s) const {
    if (opt.print) opt.print(s);
  }
  std::string label(size_t i) const { return experiment_cell_label(exp.cells[i]); }
  double mean_duration() const {
    double mean = 0.0;
    for (double d : durations) mean += d;
    return mean / double(durations.size());
  }
  std::string eta() const {
    if (durations.empty()) return "?";
    const double mean = mean_duration();
    double left = 0.0;
    for (const auto& [i, t0] : running)
      left += std::max(0.0, mean - std::chrono::duration<double>(Clock::now() - t0).count());
    const size_t not_started = N - size_t(position);
    left += mean * double(not_started);
    return fmt_duration(left / std::max<size_t>(1, std::min<size_t>(size_t(jobs), running.size() + not_started)));
  }
  // cell i starts: its position and the line that says so
  int start(size_t i, Clock::time_point t0) {
    const int pos = ++position;
    running[i] = t0;
    if (!opt.quiet) print(fmt::format("cell {}/{} ({}) | ETA {}", pos, N, label(i), eta()));
    return pos;
  }
  // cell i finished: its line with its metrics, and the results tables updated
  void finished(size_t i, Clock::time_point t0) {
    durations.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    const auto done = read_done(exp, i, out_dir);
    std::string s = fmt::format("cell {} done in {}", exp.cells[i].name, fmt_duration(durations.back()));
    if (done)
      for (const auto& m : exp.metrics)
        if (const auto v = metric_value(*done, m)) s += fmt::format(" | {} {}", m, format_number(*v));
    print(s);
    write_results(exp, out_dir);
  }
};

// The cells one after the other in this process, with live step progress.
void run_here(Progress& pr, const std::vector<size_t>& todo) {
  const RunExperimentOptions& opt = pr.opt;
  if (opt.jobs > 1) throw std::logic_error("run_experiment: --jobs > 1 needs a launcher");
  for (size_t i : todo) {
    const auto t0 = Clock::now();
    int pos;
    {
      std::lock_guard<std::mutex> lock(pr.mu);
      pos = pr.start(i, t0);
    }
    const double mean_before = pr.durations.empty() ? -1.0 : pr.mean_duration();
    auto on_step = [&](int d, int total) {
      if (!opt.live || (d % 10 != 0 && d != total)) return;
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      const double cell_left = el / d * (total - d);
      const double mean = mean_before > 0 ? mean_before : el / d * total;
      const double left = cell_left + mean * double(pr.N - size_t(pos));
      opt.live(fmt::format("cell {}/{} ({}) | step {}/{} | ETA {}", pos, pr.N, pr.label(i), d, total,
                           fmt_duration(left)));
    };
    const CellOutcome oc = run_cell(pr.exp, i, pr.out_dir, true, on_step);
    std::lock_guard<std::mutex> lock(pr.mu);
    pr.running.erase(i);
    if (oc.interrupted) {
      pr.interrupted = true;
      pr.print(fmt::format("cell {}/{} ({}) interrupted: its checkpoint is saved; run the same command again to "
                           "continue",
                           pos, pr.N, pr.label(i)));
      break;
    }
    pr.finished(i, t0);
  }
}

// One worker of run_launched: takes the next cell until none is left or the run stops.
void launch_worker(Progress& pr, const std::vector<size_t>& todo, size_t& next) {
  const Experiment& exp = pr.exp;
  const std::function<bool()> stop = [] { return interrupted(); };
  while (true) {
    size_t i;
    Clock::time_point t0;
    {
      std::lock_guard<std::mutex> lock(pr.mu);
      if (next >= todo.size() || pr.interrupted || !pr.failure.empty() || interrupted()) return;
      i = todo[next++];
      t0 = Clock::now();
      pr.start(i, t0);
    }
    int rc = 1;
    std::string why;
    try {
      rc = pr.opt.launch(i, stop);
    } catch (const std::exception& e) {
      why = e.what();
    }
    std::lock_guard<std::mutex> lock(pr.mu);
    pr.running.erase(i);
    if (rc == 130 || (rc != 0 && interrupted())) {
      pr.interrupted = true;
      pr.print(fmt::format("cell {} interrupted: its checkpoint is saved", exp.cells[i].name));
    } else if (!why.empty()) {
      pr.failure = fmt::format("cell '{}' ({}) could not run: {}", exp.cells[i].name, pr.label(i), why);
      pr.print("error: " + pr.failure);
    } else if (rc != 0) {
      pr.failure = fmt::format("cell '{}' ({}) failed with exit status {}; its output is in {}", exp.cells[i].name,
                               pr.label(i), rc, (fs::path(cell_dir(pr.out_dir, exp.cells[i])) / "console.log").string());
      pr.print("error: " + pr.failure);
    } else {
      pr.finished(i, t0);
    }
  }
}

// The cells `jobs` at a time through the launcher; the first interrupt asks them to stop.
void run_launched(Progress& pr, const std::vector<size_t>& todo) {
  const StopSignals signals(
      true, "\ninterrupt: the running cells save a checkpoint and stop (interrupt again to abort)\n", "", 130);
  g_stop = &signals;
  size_t next = 0;
  std::vector<std::thread> pool;
  for (int j = 0; j < pr.jobs; j++) pool.emplace_back([&] { launch_worker(pr, todo, next); });
  for (auto& t : pool) t.join();
  g_stop = nullptr;
  if (signals.requested()) pr.interrupted = true;
}

}  // namespace

int run_experiment(const Experiment& exp, const std::string& out_dir, const RunExperimentOptions& opt) {
  const size_t N = exp.cells.size();
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "cells", ec);
  if (ec) user_error("cannot create the experiment directory '{}': {}", out_dir, ec.message());
  std::vector<size_t> todo;
  for (size_t i = 0; i < N; i++)
    if (!cell_done(exp, i, out_dir)) todo.push_back(i);
  // done cells still get any measurement added to the file since (quick: no training)
  for (size_t i = 0; i < N; i++)
    if (std::find(todo.begin(), todo.end(), i) == todo.end()) run_cell(exp, i, out_dir, false);
  write_results(exp, out_dir);
  Progress pr(exp, out_dir, opt);
  pr.N = N;
  pr.jobs = std::max(1, std::min<int>(opt.jobs, int(std::max<size_t>(1, todo.size()))));
  pr.position = int(N - todo.size());
  pr.print(fmt::format("experiment {}: {} cells, {} done earlier, {} to run ({} at a time, {} {}) -> {}", exp.name, N,
                       N - todo.size(), todo.size(), pr.jobs, exp.run == "train" ? "train.threads" : "threads",
                       exp.cells.empty() ? 0 : exp.cells[0].threads, out_dir));
  if (!opt.launch) run_here(pr, todo);
  else run_launched(pr, todo);
  const int n_done = write_results(exp, out_dir);
  if (!pr.failure.empty()) user_error("{}", pr.failure);
  pr.print(fmt::format("{} of {} cells finished: {}{}", n_done, N, (fs::path(out_dir) / "results.md").string(),
                       exp.cli_sets.empty() ? "" : fmt::format(" (made with --set {})", fmt::join(exp.cli_sets, " --set "))));
  if (pr.interrupted) {
    pr.print("interrupted: run the same command again to continue (finished cells are skipped)");
    return 130;
  }
  return 0;
}

PlotCommand plot_command(const Experiment& exp, const std::string& out_dir) {
  PlotCommand pc;
  std::vector<fs::path> candidates = {fs::path(exp.file).parent_path() / ".." / ".." / "scripts" / "plot_experiment.py",
                                      fs::path("scripts") / "plot_experiment.py"};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "scripts" / "plot_experiment.py");
    candidates.push_back(exe.parent_path() / ".." / ".." / "scripts" / "plot_experiment.py");
  }
  std::string script;
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) {
      script = c.lexically_normal().string();
      break;
    }
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  const std::string shown = script.empty() ? "scripts/plot_experiment.py" : script;
  // the repository's virtual environment (scripts/setup.sh puts matplotlib there), else Debian's
  std::string py = "/usr/bin/python3";
  if (!script.empty()) {
    const fs::path venv = fs::path(script).parent_path() / ".." / ".venv" / "bin" / "python";
    if (fs::exists(venv, ec)) py = venv.lexically_normal().string();
  }
  pc.command = fmt::format("{} {} {}", quote(py), quote(shown), quote(out_dir));
  if (exp.plots.empty()) pc.why_not = "the experiment file has no `plot:`";
  else if (script.empty()) pc.why_not = "scripts/plot_experiment.py was not found next to the experiment file";
  else if (!fs::exists(py, ec) || std::system((quote(py) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) != 0)
    pc.why_not = py + " with matplotlib is not available (run scripts/setup.sh)";
  return pc;
}

bool run_plot_command(const PlotCommand& pc) {
  std::fflush(stdout);
  return std::system(pc.command.c_str()) == 0;
}

std::function<int(size_t, const std::function<bool()>&)> cell_process_launcher(
    const Experiment& exp, const std::string& file, const std::string& out_dir, int jobs,
    const std::vector<std::string>& sets) {
  std::error_code ec;
  const std::string exe = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) user_error("--jobs {}: cannot find this program's path to start the cells ({})", jobs, ec.message());
  return [&exp, file, out_dir, jobs, sets, exe](size_t i, const std::function<bool()>& stop) {
    const fs::path dir = fs::path(out_dir) / "cells" / exp.cells[i].name;
    fs::create_directories(dir);
    std::vector<std::string> args = {"experiment", "cell", file, "--out", out_dir, "--index", std::to_string(i),
                                     "--jobs", std::to_string(jobs)};
    for (const auto& s : sets) args.insert(args.end(), {"--set", s});
    return run_process(exe, args, (dir / "console.log").string(), stop);
  };
}

}  // namespace attnlab
