#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/gemm.h"
#include "data/factory.h"
#include "model/generate.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

using Clock = std::chrono::steady_clock;

std::string fmt_duration(double s) {
  if (s < 0 || !std::isfinite(s)) return "?";
  const long t = long(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

// Console output: a live progress line on a terminal, plain lines otherwise;
// every plain line is also appended to train.log.
class Console {
 public:
  explicit Console(const std::string& log_path) : tty_(isatty(STDOUT_FILENO)), log_(log_path, std::ios::app) {}
  void line(const std::string& s) {
    if (tty_ && live_) std::fputs("\r\033[K", stdout);
    live_ = false;
    std::fputs((s + "\n").c_str(), stdout);
    std::fflush(stdout);
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
  bool live_ = false;
  std::ofstream log_;
};

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path, std::ios::app);
  out << j.dump() << "\n";  // one write of a whole line
  out.flush();
  if (!out) user_error("cannot append to '{}'", path);
}

int sequence_length(const Config& cfg, const Dataset& data) {
  if (auto* task = dynamic_cast<const TaskDataset*>(&data)) return task->max_example_len() - 1;
  return cfg.model.block_size;
}

}  // namespace

float evaluate_loss(DecoderModel& model, const Dataset& data, const Config& cfg, int T) {
  Rng rng(uint64_t(cfg.train.seed) ^ 0x5eedull);
  Batch batch;
  double sum = 0.0;
  for (int i = 0; i < cfg.train.eval_batches; i++) {
    data.next_batch(batch, cfg.train.batch_size, T, Split::val, rng);
    sum += model.forward(batch.x.data(), batch.y.data(), batch.B, batch.T, false, nullptr);
  }
  return float(sum / cfg.train.eval_batches);
}

TaskEval evaluate_task(DecoderModel& model, const TaskDataset& task, int n) {
  const CharTokenizer& tok = task.tokenizer();
  TaskEval ev;
  Rng rng(0);
  SampleOptions opt;
  opt.temperature = 0.0f;
  opt.max_new_tokens = task.options().max_len + 1;
  opt.stop_token = tok.id('.');
  const auto& val = task.val_set();
  for (int i = 0; i < n && i < int(val.size()); i++) {
    const TaskExample& ex = val[i];
    std::vector<int> out = generate(model, tok.encode(ex.input + "="), opt, rng);
    std::string pred = tok.decode(out);
    if (!pred.empty() && pred.back() == '.') pred.pop_back();
    ev.results.push_back({ex, pred, pred == ex.output});
    ev.total++;
    ev.correct += pred == ex.output;
  }
  return ev;
}

TrainSummary train(const Config& cfg, const std::string& run_dir) {
  if (cfg.train.threads > 0) omp_set_num_threads(cfg.train.threads);
  std::error_code ec;
  fs::create_directories(fs::path(run_dir) / "checkpoints", ec);
  if (ec) user_error("cannot create run directory '{}': {}", run_dir, ec.message());
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  fs::remove(metrics_path, ec);
  fs::remove(fs::path(run_dir) / "train.log", ec);
  write_file_atomic((fs::path(run_dir) / "config.yaml").string(), dump_config(cfg));
  Console con((fs::path(run_dir) / "train.log").string());

  auto data = make_dataset(cfg);
  const CharTokenizer& tok = data->tokenizer();
  const int T = sequence_length(cfg, *data), B = cfg.train.batch_size;
  DecoderModel model(cfg.model, tok.size(), uint64_t(cfg.train.seed));
  AdamW opt(model.params(), cfg.train);
  const Rng root(uint64_t(cfg.train.seed));
  Rng data_rng = root.fork(1), drop_rng = root.fork(2);

  con.line(fmt::format("attnlab {} | {} | {} threads | gemm: {}", ATTNLAB_VERSION, cfg.source,
                       omp_get_max_threads(), gemm_backend()));
  con.line(fmt::format("data: {}", data->describe()));
  con.line(fmt::format("model: {} | {} layers, d_model {}, {} heads, attention {} | {:.2f} M parameters",
                       cfg.model.kind, cfg.model.n_layers, cfg.model.d_model, cfg.model.n_heads,
                       cfg.model.attention.type, double(model.params().count()) / 1e6));
  con.line(fmt::format("train: {} steps × {} sequences × {} tokens | run dir {}", cfg.train.steps, B, T, run_dir));

  const std::string ckpt_dir = (fs::path(run_dir) / "checkpoints").string();
  std::vector<std::string> kept;
  auto save = [&](int step) {
    const std::string name = fmt::format("step_{:07}.safetensors", step);
    const std::string path = (fs::path(ckpt_dir) / name).string();
    write_checkpoint(path, model.params(), model_metadata(cfg, tok, step));
    write_file_atomic((fs::path(ckpt_dir) / "latest").string(), name + "\n");
    if (kept.empty() || kept.back() != path) kept.push_back(path);
    while (int(kept.size()) > cfg.train.keep_checkpoints) {
      fs::remove(kept.front(), ec);
      kept.erase(kept.begin());
    }
    return path;
  };

  TrainSummary sum;
  Batch batch;
  const auto t_start = Clock::now();
  auto t_log = t_start;
  int tokens_since_log = 0;
  double loss_acc = 0.0;
  int loss_n = 0;
  for (int step = 0; step < cfg.train.steps; step++) {
    const float lr = float(learning_rate(cfg.train, step));
    data->next_batch(batch, B, T, Split::train, data_rng);
    model.params().zero_grad();
    const float loss =
        model.forward(batch.x.data(), batch.y.data(), B, T, true, &drop_rng, float(cfg.train.label_smoothing));
    if (!std::isfinite(loss)) user_error("step {}: the loss is {} (diverged); lower train.lr?", step + 1, loss);
    model.backward();
    const double gnorm = clip_grad_norm(model.params(), cfg.train.grad_clip);
    opt.step(lr);
    loss_acc += loss;
    loss_n++;
    tokens_since_log += B * T;
    const int done = step + 1;
    const bool last = done == cfg.train.steps;
    if (done % cfg.train.log_interval == 0 || last || done == 1) {
      const auto now = Clock::now();
      const double dt = std::chrono::duration<double>(now - t_log).count();
      const double elapsed = std::chrono::duration<double>(now - t_start).count();
      const double tps = dt > 0 ? tokens_since_log / dt : 0.0;
      const double eta = elapsed / done * (cfg.train.steps - done);
      const float mean_loss = float(loss_acc / loss_n);
      sum.train_loss = mean_loss;
      con.progress(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | {:.0f} tok/s | ETA {}", done,
                               cfg.train.steps, mean_loss, lr, tps, fmt_duration(eta)),
                   true);
      append_jsonl(metrics_path, {{"step", done},
                                  {"split", "train"},
                                  {"loss", mean_loss},
                                  {"lr", lr},
                                  {"grad_norm", gnorm},
                                  {"tokens_per_s", tps},
                                  {"elapsed_s", elapsed}});
      t_log = now;
      tokens_since_log = 0;
      loss_acc = 0.0;
      loss_n = 0;
    }
    if ((cfg.train.eval_interval > 0 && done % cfg.train.eval_interval == 0) || last) {
      const float vl = evaluate_loss(model, *data, cfg, T);
      sum.val_loss = vl;
      con.line(fmt::format("step {:>6}/{} | val loss {:.4f}", done, cfg.train.steps, vl));
      append_jsonl(metrics_path, {{"step", done},
                                  {"split", "val"},
                                  {"loss", vl},
                                  {"elapsed_s", std::chrono::duration<double>(Clock::now() - t_start).count()}});
      t_log = Clock::now();  // evaluation time is not training throughput
    }
    if (cfg.train.checkpoint_interval > 0 && done % cfg.train.checkpoint_interval == 0 && !last) save(done);
  }
  con.finish();
  sum.steps = cfg.train.steps;
  sum.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  sum.tokens_per_s = sum.seconds > 0 ? double(cfg.train.steps) * B * T / sum.seconds : 0.0;
  sum.checkpoint = save(cfg.train.steps);
  con.line(fmt::format("done: {} steps in {} | val loss {:.4f} | checkpoint {}", sum.steps,
                       fmt_duration(sum.seconds), sum.val_loss, sum.checkpoint));

  if (auto* task = dynamic_cast<const TaskDataset*>(data.get())) {
    const TaskEval ev = evaluate_task(model, *task, int(task->val_set().size()));
    con.line(fmt::format("held-out {} examples: exact match {}/{} = {:.1f}%", task->options().name, ev.correct,
                         ev.total, 100.0 * ev.correct / std::max(1, ev.total)));
    for (int i = 0; i < int(ev.results.size()) && i < 8; i++) {
      const auto& r = ev.results[i];
      con.line(fmt::format("  {:<{}} -> {:<{}} {}", r.example.input, task->options().max_len, r.predicted,
                           task->options().max_len, r.correct ? "ok" : "(expected " + r.example.output + ")"));
    }
    append_jsonl(metrics_path, {{"step", sum.steps},
                                {"split", "val"},
                                {"exact_match", double(ev.correct) / std::max(1, ev.total)}});
  }
  return sum;
}

}  // namespace attnlab
