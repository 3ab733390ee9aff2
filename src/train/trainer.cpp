#include "train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/console.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/gemm.h"
#include "core/signals.h"
#include "core/text.h"
#include "config/slots.h"
#include "data/factory.h"
#include "train/attention_history.h"
#include "train/checkpoint.h"
#include "train/grad_accum.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/resume.h"
#include "train/run_dir.h"
#include "train/run_state.h"
#include "train/precision.h"
#include "train/tensorboard.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kInterruptNote[] =
    "\ninterrupt: finishing this step and saving a checkpoint (interrupt again to abort)\n";
constexpr char kAbortNote[] = "\naborted: the last complete checkpoint is intact\n";

// "nan", "inf" or "-inf": a NaN's sign bit depends on which operand a kernel propagated
// (and so on memory alignment), so it is not printed.
std::string nonfinite_text(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

// One run, fresh or resumed: everything the loop needs.
class Run {
 public:
  Run(const Config& cfg, const std::string& run_dir, const TrainOptions& opts)
      : cfg_(cfg), dir_(run_dir), ckpt_dir_((fs::path(run_dir) / "checkpoints").string()), opts_(opts),
        metrics_(run_dir), board_(run_dir), history_(run_dir) {}

  void start_fresh();
  void start_resumed(const ResumePoint& rp);
  void check_ranks_agree();
  TrainSummary loop();

 private:
  void build(uint64_t seed, const Tokenizer* tokenizer = nullptr);  // tokenizer: a resumed run's
  void open_console();
  CheckpointFile read_state(const ResumePoint& rp);
  void check_data_file(const std::string& state_path);
  double elapsed() const {
    return st_.elapsed_s + std::chrono::duration<double>(Clock::now() - t_start_).count();
  }
  double train_step(int done, float lr);
  void skip_step(int done, float lr, const std::string& bad);
  void log_train(int done, float lr, double gnorm);
  void evaluate_at(int done, bool last);
  TrainSummary finish(int done, bool stopped);
  void print_examples();
  std::string save(int step);
  void save_best(int step, float val_loss);
  void log_row(const nlohmann::json& row);
  std::string previous_checkpoint_note() const;

  Config cfg_;
  Comm& comm_ = Comm::world();  // rank 0 alone writes the run directory and the console
  std::string dir_, ckpt_dir_;
  TrainOptions opts_;
  MetricsLog metrics_;
  TensorBoardLog board_;      // events.out.tfevents.*: the metrics rows, the config, the maps
  AttentionHistory history_;  // attention_history.jsonl
  std::unique_ptr<Console> con_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> opt_;
  Rng data_rng_, drop_rng_;
  TrainState st_;
  int T_ = 0, S_ = 0;      // padded decoder/encoder rows and encoder_decoder sources
  int saved_at_ = -1;      // step of the newest checkpoint written or resumed from
  std::string last_ckpt_;  // its path
  Batch batch_;
  GradAccumulator accum_;
  int start_step_ = 0;                // the step this loop began at
  Clock::time_point t_start_ = Clock::now(), t_log_ = t_start_;
  long tokens_since_log_ = 0;         // since the last train log line
  double tokens_run_ = 0.0;           // padded tokens of this run's batches (data.batch_tokens varies them)
  EvalReport final_eval_;             // the evaluation at the last step
  PrecisionChoice precision_;         // train.precision on this machine (build() decides)
};

// A new run: refuses a directory that holds an earlier run, or with opts.overwrite clears it.
void Run::start_fresh() {
  if (comm_.root() && !opts_.overwrite) {
    const std::string earlier = earlier_run(dir_);
    if (!earlier.empty())
      user_error("run directory '{}' already holds {}; continue it with `attnlab train --resume {}`, or add "
                 "--overwrite to delete it and start afresh (or choose another --run-dir)",
                 dir_, earlier, dir_);
  }
  build(uint64_t(cfg_.train.seed));  // data and model first: a bad data file writes nothing
  if (cfg_.data.task == "text") st_.data_sha256 = sha256_file(cfg_.data.path);
  if (!comm_.root()) return open_console();
  std::error_code ec;
  fs::create_directories(ckpt_dir_, ec);
  if (ec) user_error("cannot create run directory '{}': {}", dir_, ec.message());
  check_writable(dir_, "cannot start a run in '" + dir_ + "'");
  check_writable(ckpt_dir_, "cannot start a run in '" + dir_ + "'");
  const int old = clear_earlier_run(dir_);
  metrics_.reset();
  history_.reset();
  write_file_atomic((fs::path(dir_) / "config.yaml").string(), dump_config(cfg_));
  board_.start_fresh(dump_config(cfg_));
  open_console();
  if (old > 0)
    con_->line(fmt::format("note: --overwrite: deleted an earlier run in {} ({} checkpoint{})", dir_, old,
                           old == 1 ? "" : "s"));
}

// The training state next to the checkpoint, checked against it and against train.steps.
CheckpointFile Run::read_state(const ResumePoint& rp) {
  const std::string state_path = state_path_for(rp.ckpt_path);
  std::error_code ec;
  if (!fs::exists(state_path, ec))
    user_error("cannot resume '{}': the training state '{}' is missing (the weights alone cannot continue "
               "the run exactly)",
               dir_, state_path);
  CheckpointFile sf;
  st_ = read_train_state(state_path, &sf);
  const std::string name = fs::path(rp.ckpt_path).filename().string();
  const auto sum = rp.ck.metadata.find("checksum_fnv1a64");
  if (st_.model_file != name || sum == rp.ck.metadata.end() || sum->second != st_.model_checksum)
    user_error("training state '{}' does not belong to checkpoint '{}' (it was written with '{}', checksum "
               "{}); the pair is inconsistent",
               state_path, rp.ckpt_path, st_.model_file, st_.model_checksum);
  const int ck_step = std::atoi(rp.ck.metadata.at("step").c_str());
  if (st_.step != ck_step)
    user_error("training state '{}' is at step {}, its checkpoint '{}' at step {}", state_path, st_.step,
               rp.ckpt_path, ck_step);
  if (st_.step >= cfg_.train.steps)
    user_error("run '{}' already finished: its latest checkpoint is at step {} and train.steps is {}; to train "
               "further, resume with --set train.steps=N (N > {})",
               dir_, st_.step, cfg_.train.steps, st_.step);
  return sf;
}

// data.task text: the data file must be the one the run started on.
void Run::check_data_file(const std::string& state_path) {
  if (cfg_.data.task != "text") return;
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

// Continue from the latest checkpoint (everything checked before anything is written).
void Run::start_resumed(const ResumePoint& rp) {
  const CheckpointFile sf = read_state(rp);
  const std::string state_path = state_path_for(rp.ckpt_path);
  if (comm_.root()) {
    check_writable(dir_, "cannot resume '" + dir_ + "'");
    check_writable(ckpt_dir_, "cannot resume '" + dir_ + "'");
  }
  check_data_file(state_path);
  build(uint64_t(cfg_.train.seed), &rp.tokenizer);  // BPE and parallel: the checkpoint's tokens, not the files'
  if (!(data_->tokenizer() == rp.tokenizer))
    user_error("cannot resume '{}': the data's vocabulary ({} tokens) differs from the checkpoint's ({} "
               "tokens); did the data file change?",
               dir_, data_->tokenizer().size(), rp.tokenizer.size());
  load_params(rp.ck, model_->params(), rp.ckpt_path);
  load_optimizer_state(sf, st_, model_->params(), *opt_, state_path);
  data_rng_.set_state(st_.rng_data);
  drop_rng_.set_state(st_.rng_dropout);
  saved_at_ = st_.step;
  last_ckpt_ = rp.ckpt_path;
  if (!comm_.root()) return open_console();
  // checked: from here on the run directory is written to
  metrics_.truncate_after(st_.step);
  history_.truncate_after(st_.step);
  remove_stale_files(dir_, st_.kept);
  const std::string cfg_path = (fs::path(dir_) / "config.yaml").string();
  const bool cfg_changed = read_text(cfg_path) != dump_config(cfg_);
  if (cfg_changed) write_file_atomic(cfg_path, dump_config(cfg_));
  board_.start_resumed(st_.step, dump_config(cfg_), cfg_changed);
  open_console();
  con_->line(fmt::format("resume: from step {} ({}), continuing to step {}", st_.step, rp.ckpt_path,
                         cfg_.train.steps));
  for (const auto& n : rp.notes) con_->line("note: " + n);
}

// Several processes: each read the config, the data and (on resume) the checkpoint itself, so
// before the first step they compare what they start from; a difference is an error naming the
// first rank that differs. Also checks that the batch divides among them.
void Run::check_ranks_agree() {
  const int R = comm_.size(), K = cfg_.train.grad_accum, B = cfg_.train.batch_size;
  if (R == 1) return;
  if (B % (R * K) != 0 && cfg_.data.batch_tokens == 0)  // token batches are cut to a multiple of R·K
    user_error("train.batch_size {} does not divide into {} processes × train.grad_accum {} = {} micro-batches of "
               "equal size; choose a batch size that is a multiple of {}, or another process count",
               B, R, K, R * K, R * K);
  const std::string dump = dump_config(cfg_);
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the config dump, the weights' checksum and the streams
  auto mix = [&h](const std::string& t) {
    for (unsigned char c : t) h = (h ^ c) * 1099511628211ull;
  };
  mix(dump);
  mix(params_checksum(model_->params()));
  for (uint64_t w : data_rng_.state()) mix(std::to_string(w));
  for (uint64_t w : drop_rng_.state()) mix(std::to_string(w));
  mix(std::to_string(st_.step));
  const std::vector<uint64_t> all = comm_.allgather(h);
  for (int r = 1; r < R; r++)
    if (all[size_t(r)] != all[0])
      user_error("rank {} starts from a different point than rank 0 (its config, data or checkpoint differ): every "
                 "process must read the same files; on several hosts, keep the config, the data and the run "
                 "directory on a filesystem that every host sees (docs/distributed.md)",
                 r);
}

void Run::build(uint64_t seed, const Tokenizer* tokenizer) {
  precision_ = choose_precision(cfg_.train);  // a bad ATTNLAB_BF16_KERNEL: an error before anything is written
  data_ = make_training_data(cfg_, tokenizer);  // the checks `attnlab config check` also makes
  T_ = data_->row_length(cfg_.model.block_size);
  S_ = data_->source_length();
  model_ = std::make_unique<Model>(cfg_.model, data_->tokenizer().size(), seed, data_->n_classes());
  opt_ = std::make_unique<AdamW>(model_->params(), cfg_.train);
  const Rng root(seed);
  data_rng_ = root.fork(1);
  drop_rng_ = root.fork(2);
}

// train.log and the console, starting with what the run is.
void Run::open_console() {
  if (!comm_.root()) {  // ranks > 0: no file, no output
    con_ = std::make_unique<Console>("", true);
    return;
  }
  con_ = std::make_unique<Console>((fs::path(dir_) / "train.log").string(), opts_.quiet);
  const int R = comm_.size(), th = omp_get_max_threads();
  const std::string procs =
      R > 1 ? fmt::format("{} processes × {} thread{}", R, th, th == 1 ? "" : "s") : fmt::format("{} threads", th);
  con_->line(fmt::format("attnlab {} | {} | {} | gemm: {}", ATTNLAB_VERSION, cfg_.source, procs, gemm_backend()));
  if (!precision_.warning.empty()) con_->line("warning: " + precision_.warning);
  con_->line(fmt::format("data: {}", data_->describe()));
  con_->line(fmt::format("model: {} | {}, d_model {}, {} heads, positions {} | attention {} | {:.2f} M parameters",
                         option_name(cfg_.model.kind), layers_summary(cfg_.model), cfg_.model.d_model,
                         cfg_.model.n_heads, option_name(cfg_.model.positions), attention_summary(cfg_.model),
                         double(model_->params().count()) / 1e6));
  const int M = cfg_.train.grad_accum * R;  // micro-batches per step, over all processes
  const int tokens = cfg_.data.batch_tokens;  // > 0: batches of varying rows (token_batch.cpp)
  const std::string rows = tokens > 0 ? fmt::format("batches within {} padded tokens (data.batch_tokens) of rows up "
                                                    "to {} tokens", tokens, T_)
                                      : fmt::format("{} sequences × {} tokens", cfg_.train.batch_size, T_);
  con_->line(fmt::format("train: {} steps × {}{}{} | precision {} | run dir {}", cfg_.train.steps, rows,
                         S_ > 0 ? fmt::format(" (source {})", S_) : "",
                         M > 1 ? fmt::format(" | {} micro-batches of {}{}", M,
                                             tokens > 0 ? "equal rows" : fmt::format("{}", cfg_.train.batch_size / M),
                                             R > 1 ? fmt::format(", {} per process", M / R) : "")
                               : "",
                         precision_.summary, dir_));
}

TrainSummary Run::loop() {
  const TrainConfig& tc = cfg_.train;
  if (tc.threads > 0) omp_set_num_threads(tc.threads);
  const GemmBf16Scope products(precision_.kernel);  // bf16 GEMM inputs for train.precision: bf16
  // ranks > 0 keep quiet: rank 0 speaks for the job
  const StopSignals signals(opts_.handle_signals, comm_.root() ? kInterruptNote : "", comm_.root() ? kAbortNote : "");
  start_step_ = st_.step;
  t_start_ = Clock::now();
  t_log_ = t_start_;
  tokens_since_log_ = 0;
  int done = st_.step;
  bool stopped = false;
  for (int step = st_.step; step < tc.steps; step++) {
    done = step + 1;
    const bool last = done == tc.steps;
    const float lr = float(learning_rate(tc, step));
    const double gnorm = train_step(done, lr);
    if ((done % tc.log_interval == 0 || last || done == 1) && st_.loss_count > 0) log_train(done, lr, gnorm);
    if ((tc.eval_interval > 0 && done % tc.eval_interval == 0) || last) evaluate_at(done, last);
    if (tc.checkpoint_interval > 0 && done % tc.checkpoint_interval == 0 && !last) save(done);
    if (last) break;
    const bool stop = signals.requested() || (opts_.stop_after && opts_.stop_after(done));
    if (comm_.any(stop)) {  // several processes: all stop after the same step
      stopped = true;
      break;
    }
  }
  con_->finish();
  return finish(done, stopped);
}

// Step `done` (1-based): a batch, forward, backward and the update, or the skip train.on_nan asks
// for. Returns the gradient norm (0 when the loss was not finite).
double Run::train_step(int done, float lr) {
  Model& model = *model_;
  if (cfg_.data.batch_tokens > 0)  // rows of similar length within a token budget, a multiple of the micro-batches
    data_->next_token_batch(batch_, cfg_.data.batch_tokens, cfg_.train.grad_accum * comm_.size(), data_rng_);
  else
    data_->next_batch(batch_, cfg_.train.batch_size, cfg_.model.block_size, Split::train, data_rng_);
  if (opts_.before_forward) opts_.before_forward(done, model);
  // forward and backward over the batch, whole or in train.grad_accum micro-batches
  const AccumResult ar =
      accum_.run(model, batch_, cfg_.train.grad_accum, drop_rng_, float(cfg_.train.label_smoothing));
  const float loss = ar.loss;
  std::string bad;  // why this step cannot be applied
  double gnorm = 0.0;
  if (!ar.finite) {
    bad = "the loss is " + nonfinite_text(loss);
  } else {
    if (opts_.after_backward) opts_.after_backward(done, model);
    gnorm = grad_norm(model.params());  // clipping is applied inside the optimizer step
    if (!std::isfinite(gnorm)) bad = "the gradient norm is " + nonfinite_text(gnorm);
  }
  tokens_since_log_ += long(batch_.B) * (batch_.T + batch_.S);
  tokens_run_ += double(batch_.B) * (batch_.T + batch_.S);
  if (!bad.empty()) {
    skip_step(done, lr, bad);
  } else {
    opt_->step(lr, clip_scale(gnorm, cfg_.train.grad_clip));
    st_.loss_sum += loss;
    st_.loss_count++;
  }
  return gnorm;
}

// A NaN/Inf loss or gradient: stop the run (train.on_nan: stop) or skip the update.
void Run::skip_step(int done, float lr, const std::string& bad) {
  if (cfg_.train.on_nan == "stop") {
    if (!comm_.root()) throw ReportedElsewhere();  // every rank saw the same loss; rank 0 reports it
    con_->finish();
    const std::string keep = last_ckpt_.empty() ? "no checkpoint was saved yet"
                                                : fmt::format("the last good checkpoint is {}", last_ckpt_);
    con_->line(fmt::format("step {}: {}: stopped ({})", done, bad, keep));
    throw CollectiveError(
        fmt::format("step {}: {} (training diverged; lower train.lr, or set train.on_nan: skip); {}", done, bad, keep));
  }
  st_.skipped_steps++;
  con_->line(fmt::format("step {:>6}/{} | {}: update skipped (train.on_nan: skip)", done, cfg_.train.steps, bad));
  log_row({{"step", done}, {"split", "train"}, {"skipped", true}, {"reason", bad}, {"lr", lr}, {"elapsed_s", elapsed()}});
}

// The progress line and train row: the mean loss since the last one, throughput, ETA.
void Run::log_train(int done, float lr, double gnorm) {
  const int N = cfg_.train.steps;
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - t_log_).count();
  const double tps = dt > 0 ? double(tokens_since_log_) / dt : 0.0;
  const double el = elapsed();
  const double eta = (el - st_.elapsed_s) / std::max(1, done - start_step_) * (N - done);
  const float mean_loss = float(st_.loss_sum / st_.loss_count);
  st_.last_train_loss = mean_loss;
  con_->progress(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | ETA {}", done, N, mean_loss,
                             lr, tps, fmt_duration(eta)));
  log_row({{"step", done},
           {"split", "train"},
           {"loss", mean_loss},
           {"lr", lr},
           {"grad_norm", gnorm},
           {"tokens_per_s", tps},
           {"elapsed_s", el}});
  t_log_ = now;
  tokens_since_log_ = 0;
  st_.loss_sum = 0.0;
  st_.loss_count = 0;
}

// An evaluation: the val row and line, and the best weights when the val loss is the lowest yet.
void Run::evaluate_at(int done, bool last) {
  if (!comm_.root()) return;  // evaluation is rank 0's (docs/distributed.md)
  EvalOptions eo;  // periodic evaluations decode a sample of the val set; the final one all of it
  eo.max_examples = last ? -1 : 128;
  const EvalReport rep = evaluate(*model_, *data_, cfg_, eo);
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
    extra += n == "ppl"                   ? fmt::format(" | ppl {:.3f}", rep.get(n))
             : n == "bleu" || n == "chrf" ? fmt::format(" | {} {:.2f}", n, rep.get(n))  // 0..100 already
             : n == "loss_per_char"       ? fmt::format(" | loss_per_char {:.4f}", rep.get(n))
                                          : fmt::format(" | {} {:.1f}%", n, 100 * rep.get(n));
  }
  row["elapsed_s"] = elapsed();
  con_->line(fmt::format("step {:>6}/{} | val loss {:.4f}{}{}", done, cfg_.train.steps, vl, extra,
                         best ? " (best)" : ""));
  log_row(row);
  if (cfg_.train.attention_maps) history_.record(done, *model_, *data_, cfg_, board_);
  board_.flush();
  if (last) final_eval_ = rep;
  t_log_ = Clock::now();  // evaluation time is not training throughput
}

// The end of the loop: the last checkpoint, the summary and the closing lines.
TrainSummary Run::finish(int done, bool stopped) {
  const double seconds = std::chrono::duration<double>(Clock::now() - t_start_).count();
  TrainSummary sum;
  sum.start_step = start_step_;
  sum.steps = done;
  sum.interrupted = stopped;
  sum.seconds = seconds;
  const double tokens = cfg_.data.batch_tokens > 0 ? tokens_run_
                                                   : double(done - sum.start_step) * cfg_.train.batch_size * (T_ + S_);
  sum.tokens_per_s = seconds > 0 ? tokens / seconds : 0.0;
  sum.train_loss = st_.last_train_loss;
  sum.val_loss = st_.last_val_loss;
  sum.best_step = st_.best_step;
  sum.best_val_loss = st_.best_val_loss;
  sum.skipped_steps = st_.skipped_steps;
  sum.checkpoint = saved_at_ == done ? last_ckpt_ : save(done);
  if (comm_.root()) board_.flush();
  if (stopped) {
    con_->line(fmt::format("interrupted at step {}: resume with `attnlab train --resume {}`", done, dir_));
    return sum;
  }
  // train.steps 0 evaluates nothing; a val loss that was never finite has no best
  const std::string val =
      done == 0 ? std::string("no evaluation (train.steps is 0)")
      : sum.best_step < 0
          ? fmt::format("val loss {} | no best (no evaluation gave a finite loss)",
                        std::isfinite(sum.val_loss) ? fmt::format("{:.4f}", sum.val_loss) : nonfinite_text(sum.val_loss))
          : fmt::format("val loss {:.4f} | best {:.4f} at step {}", sum.val_loss, sum.best_val_loss, sum.best_step);
  con_->line(fmt::format("done: {} steps in {} | {} | checkpoint {}", done, fmt_duration(st_.elapsed_s + seconds),
                         val, sum.checkpoint));
  if (st_.skipped_steps > 0)
    con_->line(fmt::format("note: {} step{} skipped because of a NaN/Inf loss or gradient", st_.skipped_steps,
                           st_.skipped_steps == 1 ? " was" : "s were"));
  print_examples();
  return sum;
}

// seq2seq: the final evaluation's exact match and its first examples, aligned.
void Run::print_examples() {
  const EvalReport& ev = final_eval_;
  if (ev.examples.empty()) return;
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

// state file, then model, then the `latest` pointer; then old checkpoints go
std::string Run::save(int step) {
  const std::string name = step_file_name(step);
  const std::string path = (fs::path(ckpt_dir_) / name).string();
  std::vector<std::string> kept = st_.kept;
  const std::vector<std::string> drop = rotate_kept(kept, name, cfg_.train.keep_checkpoints);
  TrainState st = st_;
  st.step = step;
  st.optimizer_t = opt_->t();
  st.rng_data = data_rng_.state();
  st.rng_dropout = drop_rng_.state();
  st.elapsed_s = elapsed();
  st.kept = kept;
  st.model_file = name;
  st.model_checksum = params_checksum(model_->params());
  if (comm_.size() > 1) {  // every rank applied the same updates to the same weights: check it at each save
    const std::vector<uint64_t> sums = comm_.allgather(std::stoull(st.model_checksum, nullptr, 16));
    for (int r = 1; r < comm_.size(); r++)
      if (sums[size_t(r)] != sums[0])
        throw std::logic_error(fmt::format("step {}: the weights of rank {} differ from rank 0's (checksum {:016x} vs "
                                           "{:016x}); the processes no longer train one model",
                                           step, r, sums[size_t(r)], sums[0]));
  }
  if (!comm_.root()) {  // the same bookkeeping as rank 0, nothing written
    st_.kept = kept;
    saved_at_ = step;
    last_ckpt_ = path;
    return path;
  }
  try {
    metrics_.sync();  // the rows up to `step` are on disk before a checkpoint claims them
    board_.flush();
    write_train_state(state_path_for(path), st, model_->params(), *opt_);
    write_checkpoint(path, model_->params(), model_metadata(cfg_, data_->tokenizer(), step, model_->n_classes()));
    write_file_atomic((fs::path(ckpt_dir_) / "latest").string(), name + "\n");
  } catch (const UserError& e) {
    // `latest` still names the previous complete checkpoint; what this save wrote goes
    std::error_code ec;
    fs::remove(state_path_for(path), ec);
    fs::remove(path, ec);
    user_error("checkpoint at step {} not saved: {}; {}", step, e.what(), previous_checkpoint_note());
  }
  st_.kept = kept;
  remove_checkpoints(ckpt_dir_, drop, name);
  saved_at_ = step;
  last_ckpt_ = path;
  return path;
}

void Run::save_best(int step, float val_loss) {
  auto meta = model_metadata(cfg_, data_->tokenizer(), step, model_->n_classes());
  meta["val_loss"] = fmt::format("{}", val_loss);
  try {
    write_checkpoint((fs::path(ckpt_dir_) / "best.safetensors").string(), model_->params(), meta);
  } catch (const UserError& e) {
    user_error("best weights at step {} not saved: {}; {}", step, e.what(), previous_checkpoint_note());
  }
}

// One metrics row; a failed append (a full disk) says what the run can continue from.
void Run::log_row(const nlohmann::json& row) {
  if (!comm_.root()) return;
  try {
    metrics_.append(row);
    board_.row(row);
  } catch (const UserError& e) {
    user_error("{}; {}", e.what(), previous_checkpoint_note());
  }
}

// What a failed save leaves to continue from (for its error message).
std::string Run::previous_checkpoint_note() const {
  if (last_ckpt_.empty()) return "no checkpoint was saved yet, so the run has to start again";
  return fmt::format("the previous checkpoint '{}' is intact; once the cause is fixed, continue from it with "
                     "`attnlab train --resume {}`",
                     last_ckpt_, dir_);
}

}  // namespace

TrainSummary train(const Config& cfg, const std::string& run_dir, const TrainOptions& opts) {
  ignore_file_size_signal();
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  Run run(cfg, run_dir, opts);
  Comm& comm = Comm::world();
  on_every_rank(comm, [&] { run.start_fresh(); });
  on_every_rank(comm, [&] { run.check_ranks_agree(); });
  return run.loop();
}

TrainSummary resume(const std::string& run_dir, const std::vector<std::string>& overrides,
                    const TrainOptions& opts) {
  ignore_file_size_signal();
  Comm& comm = Comm::world();
  std::unique_ptr<Run> run;
  on_every_rank(comm, [&] {
    const ResumePoint rp = check_resume(run_dir, overrides);
    if (rp.cfg.train.threads > 0) omp_set_num_threads(rp.cfg.train.threads);
    run = std::make_unique<Run>(rp.cfg, run_dir, opts);
    run->start_resumed(rp);
  });
  on_every_rank(comm, [&] { run->check_ranks_agree(); });
  return run->loop();
}

}  // namespace attnlab
