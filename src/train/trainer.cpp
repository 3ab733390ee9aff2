#include "train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/gemm.h"
#include "data/factory.h"
#include "model/generate.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/run_state.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

using Clock = std::chrono::steady_clock;


// Console output: a live progress line on a terminal, plain lines otherwise;
// every plain line is also appended to train.log.
class Console {
 public:
  Console(const std::string& log_path, bool quiet)
      : tty_(!quiet && isatty(STDOUT_FILENO)), quiet_(quiet), log_(log_path, std::ios::app) {}
  void line(const std::string& s) {
    if (tty_ && live_) std::fputs("\r\033[K", stdout);
    live_ = false;
    if (!quiet_) {
      std::fputs((s + "\n").c_str(), stdout);
      std::fflush(stdout);
    }
    log_ << s << "\n";
    log_.flush();
  }
  // progress: overwritten in place on a terminal, printed as a line (and logged) otherwise
  void progress(const std::string& s, bool log_line) {
    if (tty_) {
      std::fputs(("\r\033[K" + s).c_str(), stdout);
      std::fflush(stdout);
      live_ = true;
      if (log_line) log_ << s << "\n";
    } else if (log_line) {
      line(s);
    }
  }
  void finish() {
    if (tty_ && live_) std::fputs("\n", stdout);
    live_ = false;
  }

 private:
  bool tty_;
  bool quiet_;
  bool live_ = false;
  std::ofstream log_;
};

}  // namespace

namespace {

// ---- signals: a flag the loop polls once per step ----
std::atomic<int> g_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int sig) {
  if (g_signals.fetch_add(1) == 0) {
    static const char msg[] = "\ninterrupt: finishing this step and saving a checkpoint (interrupt again to abort)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    return;
  }
  static const char msg[] = "\naborted: the last complete checkpoint is intact\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(128 + sig);
}

// Installs the handlers for the lifetime of the loop, then restores the previous ones.
class SignalScope {
 public:
  explicit SignalScope(bool on) : on_(on) {
    if (!on_) return;
    g_signals = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    if (!on_) return;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  bool requested() const { return on_ && g_signals.load() > 0; }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  bool on_;
  struct sigaction old_int_ {}, old_term_ {};
};

// "nan", "inf" or "-inf": a NaN's sign bit depends on which operand a kernel propagated
// (and so on memory alignment), so it is not printed.
std::string nonfinite_text(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }



bool is_step_file(const std::string& name) {
  return name.rfind("step_", 0) == 0 && name.size() > 12 &&
         name.compare(name.size() - 12, 12, ".safetensors") == 0;
}

// Copies the keys a resume may change from `from` into `to`.
void copy_resume_keys(const Config& from, Config& to) {
  to.train.steps = from.train.steps;
  to.train.threads = from.train.threads;
  to.train.log_interval = from.train.log_interval;
  to.train.eval_interval = from.train.eval_interval;
  to.train.checkpoint_interval = from.train.checkpoint_interval;
  to.train.keep_checkpoints = from.train.keep_checkpoints;
  to.train.on_nan = from.train.on_nan;
}

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

// Fails with a clear error unless a file can be created in `dir` (a read-only mount, a
// directory without write permission): checked before a run writes anything there.
void check_writable(const std::string& dir, const std::string& context) {
  const std::string probe = (fs::path(dir) / ".attnlab-write-probe").string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    user_error("{}: directory '{}' is not writable ({}); a run writes its logs and checkpoints there", context,
               dir, std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// The training-state name of a step file: step_N.state.safetensors -> step_N.safetensors.
std::string model_name_of(const std::string& step_file) {
  const std::string st = ".state.safetensors";
  if (step_file.size() > st.size() && step_file.compare(step_file.size() - st.size(), st.size(), st) == 0)
    return step_file.substr(0, step_file.size() - st.size()) + ".safetensors";
  return step_file;
}

// One run, fresh or resumed: everything the loop needs.
class Run {
 public:
  Run(const Config& cfg, const std::string& run_dir, const TrainOptions& opts)
      : cfg_(cfg), dir_(run_dir), ckpt_dir_((fs::path(run_dir) / "checkpoints").string()), opts_(opts),
        metrics_(run_dir) {}

  // A new run: clears what an earlier run left in the directory.
  void start_fresh() {
    build(uint64_t(cfg_.train.seed));  // data and model first: a bad data file writes nothing
    if (cfg_.data.task == "text") st_.data_sha256 = sha256_file(cfg_.data.path);
    std::error_code ec;
    fs::create_directories(ckpt_dir_, ec);
    if (ec) user_error("cannot create run directory '{}': {}", dir_, ec.message());
    check_writable(dir_, "cannot start a run in '" + dir_ + "'");
    check_writable(ckpt_dir_, "cannot start a run in '" + dir_ + "'");
    // `latest` goes first: a start killed half-way must not leave it naming a removed checkpoint
    fs::remove(fs::path(ckpt_dir_) / "latest", ec);
    int old = 0;
    for (auto& e : fs::directory_iterator(ckpt_dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (is_step_file(name) || name == "latest" || name == "best.safetensors" ||
          e.path().extension() == ".tmp") {
        old += is_step_file(name) && name.find(".state.") == std::string::npos;
        fs::remove(e.path(), ec);
      }
    }
    fs::remove(fs::path(dir_) / "train.log", ec);
    metrics_.reset();
    write_file_atomic((fs::path(dir_) / "config.yaml").string(), dump_config(cfg_));
    con_ = std::make_unique<Console>((fs::path(dir_) / "train.log").string(), opts_.quiet);
    header();
    if (old > 0)
      con_->line(fmt::format("note: replaced an earlier run in {} ({} checkpoint{}); `attnlab train --resume "
                             "RUN_DIR` continues a run instead",
                             dir_, old, old == 1 ? "" : "s"));
  }

  // Continue from the latest checkpoint (everything checked before anything is written).
  void start_resumed(const std::string& ckpt_path, const CheckpointFile& ck,
                     const Tokenizer& vocab, const std::vector<std::string>& notes) {
    const std::string state_path = state_path_for(ckpt_path);
    std::error_code ec;
    if (!fs::exists(state_path, ec))
      user_error("cannot resume '{}': the training state '{}' is missing (the weights alone cannot continue "
                 "the run exactly)",
                 dir_, state_path);
    CheckpointFile sf;
    st_ = read_train_state(state_path, &sf);
    const std::string name = fs::path(ckpt_path).filename().string();
    const auto sum = ck.metadata.find("checksum_fnv1a64");
    if (st_.model_file != name || sum == ck.metadata.end() || sum->second != st_.model_checksum)
      user_error("training state '{}' does not belong to checkpoint '{}' (it was written with '{}', checksum "
                 "{}); the pair is inconsistent",
                 state_path, ckpt_path, st_.model_file, st_.model_checksum);
    const int ck_step = std::atoi(ck.metadata.at("step").c_str());
    if (st_.step != ck_step)
      user_error("training state '{}' is at step {}, its checkpoint '{}' at step {}", state_path, st_.step,
                 ckpt_path, ck_step);
    if (st_.step >= cfg_.train.steps)
      user_error("run '{}' already finished: its latest checkpoint is at step {} and train.steps is {}; to train "
                 "further, resume with --set train.steps=N (N > {})",
                 dir_, st_.step, cfg_.train.steps, st_.step);
    check_writable(dir_, "cannot resume '" + dir_ + "'");
    check_writable(ckpt_dir_, "cannot resume '" + dir_ + "'");
    if (cfg_.data.task == "text") {
      std::string now;
      try {
        now = sha256_file(cfg_.data.path);
      } catch (const UserError& e) {
        user_error("cannot resume '{}': {} (the run trains on data.path '{}')", dir_, e.what(), cfg_.data.path);
      }
      if (!st_.data_sha256.empty() && now != st_.data_sha256)
        user_error("cannot resume '{}': the data file '{}' changed since the run started (SHA-256 {} in the "
                   "training state '{}', {} now); a resume continues on exactly the data the run began with: "
                   "restore that file, or train on the new data in a new run (`attnlab train CONFIG --run-dir "
                   "NEW_DIR`)",
                   dir_, cfg_.data.path, st_.data_sha256, state_path, now);
      st_.data_sha256 = now;  // states written before the hash was recorded get it from here on
    }
    build(uint64_t(cfg_.train.seed));
    if (!(data_->tokenizer() == vocab))
      user_error("cannot resume '{}': the data's vocabulary ({} tokens) differs from the checkpoint's ({} "
                 "tokens); did the data file change?",
                 dir_, data_->tokenizer().size(), vocab.size());
    load_params(ck, model_->params(), ckpt_path);
    load_optimizer_state(sf, st_, model_->params(), *opt_, state_path);
    data_rng_.set_state(st_.rng_data);
    drop_rng_.set_state(st_.rng_dropout);
    // checked: from here on the run directory is written to
    metrics_.truncate_after(st_.step);
    // What a killed run can leave behind: temporary files of interrupted atomic writes, the
    // files of a save that never reached `latest` (newer than it), and checkpoints rotated
    // out of st_.kept whose removal did not happen. None of them is part of the run now.
    for (auto& e : fs::directory_iterator(ckpt_dir_, ec)) {
      const std::string fname = e.path().filename().string();
      const bool stale_step = is_step_file(fname) && std::find(st_.kept.begin(), st_.kept.end(),
                                                               model_name_of(fname)) == st_.kept.end();
      if (e.path().extension() == ".tmp" || stale_step) fs::remove(e.path(), ec);
    }
    for (const char* f : {"metrics.jsonl.tmp", "metrics.csv.tmp", "config.yaml.tmp"})
      fs::remove(fs::path(dir_) / f, ec);
    const std::string cfg_path = (fs::path(dir_) / "config.yaml").string();
    if (read_text(cfg_path) != dump_config(cfg_)) write_file_atomic(cfg_path, dump_config(cfg_));
    con_ = std::make_unique<Console>((fs::path(dir_) / "train.log").string(), opts_.quiet);
    header();
    con_->line(fmt::format("resume: from step {} ({}), continuing to step {}", st_.step, ckpt_path,
                           cfg_.train.steps));
    for (const auto& n : notes) con_->line("note: " + n);
    saved_at_ = st_.step;
    last_ckpt_ = ckpt_path;
  }

  TrainSummary loop();

 private:
  void build(uint64_t seed) {
    data_ = make_dataset(cfg_);
    const Tokenizer& tok = data_->tokenizer();
    const auto* task = dynamic_cast<const TaskDataset*>(data_.get());
    T_ = task ? task->batch_T() : cfg_.model.block_size;
    S_ = task ? task->batch_S() : 0;
    model_ = std::make_unique<Model>(cfg_.model, tok.size(), seed, task ? task->n_classes() : 0);
    opt_ = std::make_unique<AdamW>(model_->params(), cfg_.train);
    const Rng root(seed);
    data_rng_ = root.fork(1);
    drop_rng_ = root.fork(2);
  }

  void header() {
    con_->line(fmt::format("attnlab {} | {} | {} threads | gemm: {}", ATTNLAB_VERSION, cfg_.source,
                           omp_get_max_threads(), gemm_backend()));
    con_->line(fmt::format("data: {}", data_->describe()));
    con_->line(fmt::format("model: {} | {} layers, d_model {}, {} heads, attention {} | {:.2f} M parameters",
                           option_name(cfg_.model.kind), cfg_.model.n_layers, cfg_.model.d_model, cfg_.model.n_heads,
                           cfg_.model.attention.type, double(model_->params().count()) / 1e6));
    con_->line(fmt::format("train: {} steps × {} sequences × {} tokens{} | run dir {}", cfg_.train.steps,
                           cfg_.train.batch_size, T_, S_ > 0 ? fmt::format(" (source {})", S_) : "", dir_));
  }

  double elapsed() const {
    return st_.elapsed_s + std::chrono::duration<double>(Clock::now() - t_start_).count();
  }

  // state file, then model, then the `latest` pointer; then old checkpoints go
  std::string save(int step) {
    const std::string name = fmt::format("step_{:07}.safetensors", step);
    const std::string path = (fs::path(ckpt_dir_) / name).string();
    std::vector<std::string> kept = st_.kept, drop;
    if (kept.empty() || kept.back() != name) kept.push_back(name);
    while (int(kept.size()) > cfg_.train.keep_checkpoints) {
      drop.push_back(kept.front());
      kept.erase(kept.begin());
    }
    TrainState st = st_;
    st.step = step;
    st.optimizer_t = opt_->t();
    st.rng_data = data_rng_.state();
    st.rng_dropout = drop_rng_.state();
    st.elapsed_s = elapsed();
    st.kept = kept;
    st.model_file = name;
    st.model_checksum = params_checksum(model_->params());
    try {
      metrics_.sync();  // the rows up to `step` are on disk before a checkpoint claims them
      write_train_state(state_path_for(path), st, model_->params(), *opt_);
      write_checkpoint(path, model_->params(),
                       model_metadata(cfg_, data_->tokenizer(), step, model_->n_classes()));
      write_file_atomic((fs::path(ckpt_dir_) / "latest").string(), name + "\n");
    } catch (const UserError& e) {
      // `latest` still names the previous complete checkpoint; what this save wrote goes
      std::error_code ec;
      fs::remove(state_path_for(path), ec);
      fs::remove(path, ec);
      user_error("checkpoint at step {} not saved: {}; {}", step, e.what(), previous_checkpoint_note());
    }
    st_.kept = kept;
    std::error_code ec;
    for (const auto& d : drop) {
      if (d == name) continue;
      const std::string old = (fs::path(ckpt_dir_) / d).string();
      fs::remove(state_path_for(old), ec);
      fs::remove(old, ec);
    }
    saved_at_ = step;
    last_ckpt_ = path;
    return path;
  }

  void save_best(int step, float val_loss) {
    auto meta = model_metadata(cfg_, data_->tokenizer(), step, model_->n_classes());
    meta["val_loss"] = fmt::format("{}", val_loss);
    try {
      write_checkpoint((fs::path(ckpt_dir_) / "best.safetensors").string(), model_->params(), meta);
    } catch (const UserError& e) {
      user_error("best weights at step {} not saved: {}; {}", step, e.what(), previous_checkpoint_note());
    }
  }

  // One metrics row; a failed append (a full disk) says what the run can continue from.
  void log_row(const nlohmann::json& row) {
    try {
      metrics_.append(row);
    } catch (const UserError& e) {
      user_error("{}; {}", e.what(), previous_checkpoint_note());
    }
  }

  // What a failed save leaves to continue from (for its error message).
  std::string previous_checkpoint_note() const {
    if (last_ckpt_.empty()) return "no checkpoint was saved yet, so the run has to start again";
    return fmt::format("the previous checkpoint '{}' is intact; once the cause is fixed, continue from it with "
                       "`attnlab train --resume {}`",
                       last_ckpt_, dir_);
  }

  Config cfg_;
  std::string dir_, ckpt_dir_;
  TrainOptions opts_;
  MetricsLog metrics_;
  std::unique_ptr<Console> con_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> opt_;
  Rng data_rng_, drop_rng_;
  TrainState st_;
  int T_ = 0, S_ = 0;  // padded decoder/encoder rows and encoder_decoder sources
  int saved_at_ = -1;      // step of the newest checkpoint written or resumed from
  std::string last_ckpt_;  // its path
  Clock::time_point t_start_ = Clock::now();
  EvalReport final_eval_;  // the evaluation at the last step
};

TrainSummary Run::loop() {
  if (cfg_.train.threads > 0) omp_set_num_threads(cfg_.train.threads);
  const SignalScope signals(opts_.handle_signals);
  Model& model = *model_;
  const int B = cfg_.train.batch_size, N = cfg_.train.steps;
  TrainSummary sum;
  sum.start_step = st_.step;
  Batch batch;
  t_start_ = Clock::now();
  auto t_log = t_start_;
  long tokens_since_log = 0;
  int done = st_.step;
  bool stopped = false;
  for (int step = st_.step; step < N; step++) {
    done = step + 1;
    const bool last = done == N;
    const float lr = float(learning_rate(cfg_.train, step));
    data_->next_batch(batch, B, cfg_.model.block_size, Split::train, data_rng_);
    model.params().zero_grad();
    if (opts_.before_forward) opts_.before_forward(done, model);
    const float loss = model.forward(batch, true, &drop_rng_, float(cfg_.train.label_smoothing));
    std::string bad;  // why this step cannot be applied
    double gnorm = 0.0;
    if (!std::isfinite(loss)) {
      bad = "the loss is " + nonfinite_text(loss);
    } else {
      model.backward();
      if (opts_.after_backward) opts_.after_backward(done, model);
      gnorm = grad_norm(model.params());  // clipping is applied inside the optimizer step
      if (!std::isfinite(gnorm)) bad = "the gradient norm is " + nonfinite_text(gnorm);
    }
    tokens_since_log += long(B) * (batch.T + batch.S);
    if (!bad.empty()) {
      if (cfg_.train.on_nan == "stop") {
        con_->finish();
        const std::string keep = last_ckpt_.empty() ? "no checkpoint was saved yet"
                                                    : fmt::format("the last good checkpoint is {}", last_ckpt_);
        con_->line(fmt::format("step {}: {}: stopped ({})", done, bad, keep));
        user_error("step {}: {} (training diverged; lower train.lr, or set train.on_nan: skip); {}", done, bad,
                   keep);
      }
      st_.skipped_steps++;
      con_->line(fmt::format("step {:>6}/{} | {}: update skipped (train.on_nan: skip)", done, N, bad));
      log_row({{"step", done},
               {"split", "train"},
               {"skipped", true},
               {"reason", bad},
               {"lr", lr},
               {"elapsed_s", elapsed()}});
    } else {
      opt_->step(lr, clip_scale(gnorm, cfg_.train.grad_clip));
      st_.loss_sum += loss;
      st_.loss_count++;
    }
    if ((done % cfg_.train.log_interval == 0 || last || done == 1) && st_.loss_count > 0) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - t_log).count();
      const double tps = dt > 0 ? double(tokens_since_log) / dt : 0.0;
      const double el = elapsed();
      const double eta = (el - st_.elapsed_s) / std::max(1, done - sum.start_step) * (N - done);
      const float mean_loss = float(st_.loss_sum / st_.loss_count);
      st_.last_train_loss = mean_loss;
      con_->progress(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | ETA {}", done, N,
                                 mean_loss, lr, tps, fmt_duration(eta)),
                     true);
      log_row({{"step", done},
               {"split", "train"},
               {"loss", mean_loss},
               {"lr", lr},
               {"grad_norm", gnorm},
               {"tokens_per_s", tps},
               {"elapsed_s", el}});
      t_log = now;
      tokens_since_log = 0;
      st_.loss_sum = 0.0;
      st_.loss_count = 0;
    }
    if ((cfg_.train.eval_interval > 0 && done % cfg_.train.eval_interval == 0) || last) {
      EvalOptions eo;  // periodic evaluations decode a sample of the val set; the final one all of it
      eo.max_examples = last ? -1 : 128;
      const EvalReport rep = evaluate(model, *data_, cfg_, eo);
      const float vl = float(rep.get("loss"));
      st_.last_val_loss = vl;
      const bool best = std::isfinite(vl) && (st_.best_step < 0 || vl < st_.best_val_loss);
      if (best) {
        st_.best_step = done;
        st_.best_val_loss = vl;
        save_best(done, vl);
      }
      std::string extra;
      nlohmann::json row = {{"step", done}, {"split", "val"}, {"loss", vl}};
      for (const auto& n : rep.names) {
        if (n == "loss") continue;
        row[n] = rep.get(n);
        extra += n == "ppl" ? fmt::format(" | ppl {:.3f}", rep.get(n)) : fmt::format(" | {} {:.1f}%", n, 100 * rep.get(n));
      }
      row["elapsed_s"] = elapsed();
      con_->line(fmt::format("step {:>6}/{} | val loss {:.4f}{}{}", done, N, vl, extra, best ? " (best)" : ""));
      log_row(row);
      if (last) final_eval_ = rep;
      t_log = Clock::now();  // evaluation time is not training throughput
    }
    if (cfg_.train.checkpoint_interval > 0 && done % cfg_.train.checkpoint_interval == 0 && !last) save(done);
    if (!last && (signals.requested() || (opts_.stop_after && opts_.stop_after(done)))) {
      stopped = true;
      break;
    }
  }
  con_->finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - t_start_).count();
  sum.steps = done;
  sum.interrupted = stopped;
  sum.seconds = seconds;
  sum.tokens_per_s = seconds > 0 ? double(done - sum.start_step) * B * (T_ + S_) / seconds : 0.0;
  sum.train_loss = st_.last_train_loss;
  sum.val_loss = st_.last_val_loss;
  sum.best_step = st_.best_step;
  sum.best_val_loss = st_.best_val_loss;
  sum.skipped_steps = st_.skipped_steps;
  sum.checkpoint = saved_at_ == done ? last_ckpt_ : save(done);
  if (stopped) {
    con_->line(fmt::format("interrupted at step {}: resume with `attnlab train --resume {}`", done, dir_));
    return sum;
  }
  con_->line(fmt::format("done: {} steps in {} | val loss {:.4f} | best {:.4f} at step {} | checkpoint {}", done,
                         fmt_duration(st_.elapsed_s + seconds), sum.val_loss, sum.best_val_loss, sum.best_step,
                         sum.checkpoint));
  if (st_.skipped_steps > 0)
    con_->line(fmt::format("note: {} step{} skipped because of a NaN/Inf loss or gradient", st_.skipped_steps,
                           st_.skipped_steps == 1 ? " was" : "s were"));
  if (!final_eval_.examples.empty()) {
    const EvalReport& ev = final_eval_;
    int ok = 0;
    for (const auto& p : ev.examples) ok += p.correct;
    con_->line(fmt::format("held-out {} examples: exact match {}/{} = {:.1f}%", cfg_.data.task, ok,
                           ev.examples.size(), 100.0 * ev.get("exact_match")));
    size_t w_in = 0, w_out = 0;
    for (size_t i = 0; i < ev.examples.size() && i < 8; i++) {
      w_in = std::max(w_in, ev.examples[i].input.size());
      w_out = std::max(w_out, ev.examples[i].predicted.size());
    }
    for (size_t i = 0; i < ev.examples.size() && i < 8; i++) {
      const auto& r = ev.examples[i];
      con_->line(fmt::format("  {:<{}} -> {:<{}} {}", r.input, w_in, r.predicted, w_out,
                             r.correct ? "ok" : "(expected " + r.expected + ")"));
    }
  }
  return sum;
}

}  // namespace

const std::vector<std::string>& resume_keys() {
  static const std::vector<std::string> keys = {"train.steps",          "train.threads",
                                                "train.log_interval",   "train.eval_interval",
                                                "train.checkpoint_interval", "train.keep_checkpoints",
                                                "train.on_nan"};
  return keys;
}

TrainSummary train(const Config& cfg, const std::string& run_dir, const TrainOptions& opts) {
  ignore_file_size_signal();
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  Run run(cfg, run_dir, opts);
  run.start_fresh();
  return run.loop();
}

TrainSummary resume(const std::string& run_dir, const std::vector<std::string>& overrides,
                    const TrainOptions& opts) {
  ignore_file_size_signal();
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
  const Config cfg = load_config(cfg_path, overrides);
  const std::string latest = (fs::path(run_dir) / "checkpoints" / "latest").string();
  if (!fs::exists(latest, ec))
    user_error("cannot resume '{}': it has no checkpoint yet (checkpoints/latest is missing); start it again "
               "with `attnlab train CONFIG --run-dir {}`",
               run_dir, run_dir);
  const std::string name = trim(read_text(latest));
  if (name.empty() || name.find('/') != std::string::npos || !is_step_file(name))
    user_error("cannot resume '{}': checkpoints/latest does not name a checkpoint (it holds '{}')", run_dir, name);
  const std::string ckpt_path = (fs::path(run_dir) / "checkpoints" / name).string();
  const CheckpointFile ck = read_checkpoint(ckpt_path);
  const LoadedModel lm = load_model(ck, ckpt_path);  // version, embedded config, vocabulary, shapes
  Config embedded = lm.config;
  copy_resume_keys(cfg, embedded);
  const std::string diff = first_difference(dump_config(cfg), dump_config(embedded));
  if (!diff.empty())
    user_error("cannot resume '{}': config.yaml differs from the config embedded in {} ({}); a resume may "
               "change only {}",
               run_dir, ckpt_path, diff, fmt::join(resume_keys(), ", "));
  std::vector<std::string> notes;
  if (cfg.train.steps != before.train.steps && cfg.train.schedule == "cosine")
    notes.push_back(fmt::format("train.steps {} -> {}: the cosine schedule is stretched from here on, so the "
                                "run differs from one started with {} steps",
                                before.train.steps, cfg.train.steps, cfg.train.steps));
  if (cfg.train.threads != before.train.threads)
    notes.push_back(fmt::format("train.threads {} -> {}: losses are bitwise reproducible only for a fixed thread "
                                "count",
                                before.train.threads, cfg.train.threads));
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  Run run(cfg, run_dir, opts);
  run.start_resumed(ckpt_path, ck, lm.tokenizer, notes);
  return run.loop();
}


}  // namespace attnlab
