// Exact resume, interruption, NaN handling, the training-state file and its
// corruption classes, keep-last-K + best, metrics.csv, and `inspect`.
#include <doctest/doctest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/error.h"
#include "core/npy.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "inspect/inspect.h"
#include "train/optimizer.h"
#include "train/metrics_log.h"
#include "train/run_dir.h"
#include "train/run_state.h"
#include "train/trainer.h"

using namespace attnlab;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A path that does not exist yet, inside a new private directory (mkdtemp: unique even when
// other checkouts run these tests at the same time).
std::string fresh_dir(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / ("attnlab_resume_" + name + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl + "/run";
}

// Dropout on (the dropout stream must be restored too), a log interval that does not divide the
// interruption step (the loss accumulator must be restored too), evaluations and checkpoints.
Config resume_config() {
  return load_config_text(R"(
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16, dropout: 0.1}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 40, batch_size: 8, lr: 0.003, warmup_steps: 5, eval_interval: 10, eval_batches: 2,
        log_interval: 4, checkpoint_interval: 10, keep_checkpoints: 2, threads: 1}
)",
                          "test");
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s;
}

// metrics.jsonl rows without the wall-clock fields, one dump per row (exact numbers kept)
std::vector<std::string> metric_rows(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    j.erase("elapsed_s");
    j.erase("tokens_per_s");
    out.push_back(j.dump());
  }
  return out;
}

// metrics.csv rows without the tokens_per_s and elapsed_s columns
std::vector<std::string> csv_rows(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in(dir + "/metrics.csv");
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    if (line.back() == ',') cells.push_back("");
    REQUIRE(cells.size() == metrics_columns().size());
    cells.erase(cells.begin() + 5, cells.begin() + 7);
    std::string row;
    for (auto& c : cells) row += c + "|";
    out.push_back(row);
  }
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string ckpt(const std::string& dir, int step) { return fmt::format("{}/checkpoints/step_{:07}.safetensors", dir, step); }

}  // namespace

TEST_CASE("resume: interrupted twice and resumed gives bitwise the same metrics, weights and moments") {
  const Config cfg = resume_config();
  const std::string a = fresh_dir("straight"), b = fresh_dir("stopped");
  train(cfg, a);

  TrainOptions stop13;
  stop13.stop_after = [](int done) { return done == 13; };  // not a log, eval or checkpoint step
  TrainSummary s1 = train(cfg, b, stop13);
  CHECK(s1.interrupted);
  CHECK(s1.steps == 13);
  CHECK(s1.checkpoint == ckpt(b, 13));
  CHECK(fs::exists(state_path_for(ckpt(b, 13))));
  CHECK(slurp(b + "/checkpoints/latest") == "step_0000013.safetensors\n");

  TrainOptions stop20;
  stop20.stop_after = [](int done) { return done == 20; };  // a checkpoint step: saved once
  TrainSummary s2 = resume(b, {}, stop20);
  CHECK(s2.interrupted);
  CHECK(s2.start_step == 13);
  CHECK(s2.steps == 20);

  TrainSummary s3 = resume(b);
  CHECK_FALSE(s3.interrupted);
  CHECK(s3.start_step == 20);
  CHECK(s3.steps == 40);

  const auto ra = metric_rows(a), rb = metric_rows(b);
  REQUIRE(ra.size() > 10);
  CHECK(ra == rb);  // every train/val loss, lr, grad_norm and exact-match line, bitwise
  CHECK(csv_rows(a) == csv_rows(b));

  // the final weights and optimizer moments are identical too
  const CheckpointFile wa = read_checkpoint(ckpt(a, 40)), wb = read_checkpoint(ckpt(b, 40));
  CHECK(wa.metadata.at("checksum_fnv1a64") == wb.metadata.at("checksum_fnv1a64"));
  const TrainState ta = read_train_state(state_path_for(ckpt(a, 40)));
  CheckpointFile fa, fb;
  read_train_state(state_path_for(ckpt(a, 40)), &fa);
  const TrainState tb = read_train_state(state_path_for(ckpt(b, 40)), &fb);
  CHECK(fa.metadata.at("checksum_fnv1a64") == fb.metadata.at("checksum_fnv1a64"));
  CHECK(ta.rng_data == tb.rng_data);
  CHECK(ta.rng_dropout == tb.rng_dropout);
  CHECK(ta.best_val_loss == tb.best_val_loss);
  CHECK(ta.best_step == tb.best_step);
  CHECK(tb.optimizer_t == 40);
  // the logs were appended to, not restarted
  const std::string log = slurp(b + "/train.log");
  CHECK(log.find("interrupted at step 13: resume with `attnlab train --resume " + b + "`") != std::string::npos);
  CHECK(log.find("resume: from step 13") != std::string::npos);
  CHECK(log.find("resume: from step 20") != std::string::npos);
  CHECK(log.find("done: 40 steps") != std::string::npos);
}

TEST_CASE("resume: after a crash, metric rows past the checkpoint are dropped and redone identically") {
  Config cfg = resume_config();
  cfg.train.keep_checkpoints = 10;
  const std::string a = fresh_dir("crash");
  train(cfg, a);
  const auto full = metric_rows(a);
  // as if the process died after step 27: latest still names step 20, the log runs further
  spit(a + "/checkpoints/latest", "step_0000020.safetensors\n");
  spit(a + "/checkpoints/step_0000030.safetensors.tmp", "half-written");
  const TrainSummary s = resume(a);
  CHECK(s.start_step == 20);
  CHECK(metric_rows(a) == full);
  CHECK_FALSE(fs::exists(a + "/checkpoints/step_0000030.safetensors.tmp"));
}

TEST_CASE("resume: --set may only change safe keys - train.steps extends a finished run") {
  Config cfg = resume_config();
  cfg.train.steps = 20;
  const std::string d = fresh_dir("set");
  train(cfg, d);
  CHECK(error_of([&] { resume(d); }).find("already finished") != std::string::npos);
  const std::string e = error_of([&] { resume(d, {"model.d_model=32"}); });
  CHECK(e.find("'model.d_model' cannot be changed when resuming") != std::string::npos);
  CHECK(e.find("train.steps") != std::string::npos);  // says what may change
  CHECK(error_of([&] { resume(d, {"train.lr=0.1"}); }).find("cannot be changed") != std::string::npos);
  CHECK(error_of([&] { resume(d, {"train.steps=abc"}); }).find("train.steps") != std::string::npos);
  // a hand-edited config.yaml that no longer matches the checkpoint
  const std::string yaml = slurp(d + "/config.yaml");
  std::string edited = yaml;
  const auto at = edited.find("lr: 0.003");
  REQUIRE(at != std::string::npos);
  edited.replace(at, 9, "lr: 0.002");
  spit(d + "/config.yaml", edited);
  CHECK(error_of([&] { resume(d, {"train.steps=30"}); }).find("differs from the config embedded") !=
        std::string::npos);
  spit(d + "/config.yaml", yaml);
  const TrainSummary s = resume(d, {"train.steps=30"});
  CHECK(s.start_step == 20);
  CHECK(s.steps == 30);
  CHECK(load_config(d + "/config.yaml").train.steps == 30);  // the run's config records the change
  CHECK(slurp(d + "/train.log").find("note: train.steps 20 -> 30") != std::string::npos);
}

TEST_CASE("resume: a directory that is not a run, or has no checkpoint, is a clear error") {
  const std::string d = fresh_dir("notarun");
  CHECK(error_of([&] { resume(d); }).find("not a directory") != std::string::npos);
  fs::create_directories(d);
  CHECK(error_of([&] { resume(d); }).find("no config.yaml") != std::string::npos);
  spit(d + "/config.yaml", dump_config(resume_config()));
  CHECK(error_of([&] { resume(d); }).find("no checkpoint yet") != std::string::npos);
}

TEST_CASE("training state: every corruption class is detected by resume and inspect, naming the file") {
  const Config cfg = resume_config();
  const std::string d = fresh_dir("corrupt");
  TrainOptions stop;
  stop.stop_after = [](int done) { return done == 10; };
  train(cfg, d, stop);
  const std::string model = ckpt(d, 10), state = state_path_for(model);
  const std::string good = slurp(state), metrics = slurp(d + "/metrics.jsonl");
  auto both = [&](const std::string& want) {
    const std::string r = error_of([&] { resume(d); });
    const std::string i = error_of([&] { inspect_checkpoint(model); });
    const std::string ir = error_of([&] { inspect_run(d); });
    CHECK_MESSAGE(r.find(want) != std::string::npos, "resume: " << r);
    CHECK_MESSAGE(i.find(want) != std::string::npos, "inspect: " << i);
    CHECK_MESSAGE(ir.find(want) != std::string::npos, "inspect run: " << ir);
    CHECK(r.find(state) != std::string::npos);
    CHECK(slurp(d + "/metrics.jsonl") == metrics);  // a refused resume writes nothing
  };
  SUBCASE("truncated") {
    spit(state, good.substr(0, good.size() - 64));
    both("file truncated?");
  }
  SUBCASE("truncated to a few bytes") {
    spit(state, good.substr(0, 5));
    both("truncated (only 5 bytes)");
  }
  SUBCASE("bad header length") {
    std::string s = good;
    s[6] = '\x7f';
    spit(state, s);
    both("header length");
  }
  SUBCASE("header is not JSON") {
    std::string s = good;
    s[8] = '#';
    spit(state, s);
    both("the header is not a JSON object");
  }
  SUBCASE("checksum mismatch") {
    std::string s = good;
    s[s.size() - 5] ^= 0x10;
    spit(state, s);
    both("checksum mismatch");
  }
  SUBCASE("malformed metadata") {
    std::string s = good;
    const auto at = s.find("\"rng_data\":\"");
    REQUIRE(at != std::string::npos);
    s[at + 12] = 'x';
    spit(state, s);
    both("metadata 'rng_data' is malformed");
  }
  SUBCASE("shape mismatch: the state of another model") {
    Config other = cfg;
    other.model.d_model = 8;
    Model m(other.model, 6, 1);
    AdamW opt(m.params(), other.train);
    TrainState st = read_train_state(state);
    write_train_state(state, st, m.params(), opt);
    both("has shape [");
  }
  SUBCASE("a missing moment") {
    Model m(cfg.model, 6, 1);
    AdamW opt(m.params(), cfg.train);
    TrainState st = read_train_state(state);
    m.params().all().pop_back();  // drop the last parameter's moments
    opt.m().pop_back();
    opt.v().pop_back();
    write_train_state(state, st, m.params(), opt);
    both("is missing");
  }
  SUBCASE("the state of a different checkpoint") {
    TrainState st = read_train_state(state);
    st.model_checksum = "0123456789abcdef";
    Model m(cfg.model, 6, 1);
    AdamW opt(m.params(), cfg.train);
    write_train_state(state, st, m.params(), opt);
    both("does not belong to checkpoint");
  }
  SUBCASE("a model checkpoint in place of the state") {
    fs::copy_file(model, state, fs::copy_options::overwrite_existing);
    both("this is a model checkpoint, not a training-state file");
  }
  SUBCASE("missing state: resume refuses, inspect says it cannot be resumed") {
    fs::remove(state);
    CHECK(error_of([&] { resume(d); }).find("training state '" + state + "' is missing") != std::string::npos);
    CHECK(inspect_checkpoint(model)["train_state"].is_null());
    CHECK(render_checkpoint(inspect_checkpoint(model)).find("cannot be resumed") != std::string::npos);
  }
  SUBCASE("the good file resumes") {
    CHECK(resume(d).steps == 40);
  }
}

TEST_CASE("training state: numbers round-trip exactly (a diverged last val loss included)") {
  const Config cfg = resume_config();
  Model m(cfg.model, 6, 1);
  AdamW opt(m.params(), cfg.train);
  for (auto& v : opt.m()) std::fill(v.begin(), v.end(), 0.1f);
  opt.set_t(7);
  TrainState st;
  st.step = 9;
  st.optimizer_t = 7;
  st.skipped_steps = 2;
  st.rng_data = {1, 2, 3, 18446744073709551615ull};
  st.rng_dropout = {5, 6, 7, 8};
  st.best_step = 4;
  st.best_val_loss = 1.0f / 3.0f;
  st.last_train_loss = 0.1f + 0.2f;
  st.last_val_loss = std::numeric_limits<float>::quiet_NaN();
  st.loss_sum = 0.1 + 0.2;
  st.loss_count = 3;
  st.elapsed_s = 1e-300;
  st.kept = {"step_0000004.safetensors", "step_0000009.safetensors"};
  st.model_file = "step_0000009.safetensors";
  st.model_checksum = "0011223344556677";
  const std::string path = fresh_dir("roundtrip") + ".state.safetensors";
  write_train_state(path, st, m.params(), opt);
  CheckpointFile f;
  const TrainState r = read_train_state(path, &f);
  CHECK(r.rng_data == st.rng_data);
  CHECK(r.rng_dropout == st.rng_dropout);
  CHECK(r.best_val_loss == st.best_val_loss);
  CHECK(r.last_train_loss == st.last_train_loss);
  CHECK(std::isnan(r.last_val_loss));
  CHECK(r.loss_sum == st.loss_sum);
  CHECK(r.elapsed_s == st.elapsed_s);
  CHECK(r.kept == st.kept);
  CHECK(r.optimizer_t == 7);
  AdamW back(m.params(), cfg.train);
  load_optimizer_state(f, r, m.params(), back, path);
  CHECK(back.t() == 7);
  CHECK(back.m() == opt.m());
  CHECK(back.v() == opt.v());
  fs::remove(path);
}

TEST_CASE("checkpoints: the last K with their state files, best.safetensors at the lowest val loss") {
  Config cfg = resume_config();
  cfg.train.lr = 0.03;  // noisy enough that the val loss does not fall at every evaluation
  const std::string d = fresh_dir("best");
  const TrainSummary s = train(cfg, d);
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(d + "/checkpoints")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"best.safetensors", "latest", "step_0000030.safetensors",
                                          "step_0000030.state.safetensors", "step_0000040.safetensors",
                                          "step_0000040.state.safetensors"});
  // the best val loss of the log, its step, and the copy of the weights at that step
  float best = std::numeric_limits<float>::infinity();
  int best_step = -1;
  for (const auto& row : read_metrics(d + "/metrics.jsonl"))
    if (row["split"] == "val" && row.contains("loss") && row["loss"].get<float>() < best) {
      best = row["loss"].get<float>();
      best_step = row["step"].get<int>();
    }
  CHECK(s.best_step == best_step);
  CHECK(s.best_val_loss == best);
  const LoadedModel lm = load_model(d + "/checkpoints/best.safetensors");
  CHECK(lm.step == best_step);
  const CheckpointFile bf = read_checkpoint(d + "/checkpoints/best.safetensors");
  CHECK(std::strtof(bf.metadata.at("val_loss").c_str(), nullptr) == best);
  const TrainState st = read_train_state(state_path_for(ckpt(d, 40)));
  CHECK(st.kept == std::vector<std::string>{"step_0000030.safetensors", "step_0000040.safetensors"});
  CHECK(st.best_step == best_step);
  // a new run in the same directory is refused, naming both ways out, and touches nothing ...
  cfg.train.steps = 10;
  const std::string log_before = slurp(d + "/train.log"), metrics_before = slurp(d + "/metrics.jsonl");
  const std::string refused = "run directory '" + d + "' already holds a run at step 40 with 2 checkpoints and "
                              "best.safetensors; continue it with `attnlab train --resume " + d +
                              "`, or add --overwrite to delete it and start afresh (or choose another --run-dir)";
  CHECK_THROWS_WITH_AS(train(cfg, d), refused.c_str(), UserError);
  CHECK(fs::exists(ckpt(d, 40)));
  CHECK(slurp(d + "/checkpoints/latest") == "step_0000040.safetensors\n");
  CHECK(slurp(d + "/train.log") == log_before);
  CHECK(slurp(d + "/metrics.jsonl") == metrics_before);
  // ... and with overwrite it replaces the old run's files
  TrainOptions overwrite;
  overwrite.overwrite = true;
  train(cfg, d, overwrite);
  CHECK_FALSE(fs::exists(ckpt(d, 40)));
  CHECK(read_metrics(d + "/metrics.jsonl").back()["step"] == 10);
  CHECK(slurp(d + "/train.log").find("note: --overwrite: deleted an earlier run in " + d + " (2 checkpoints)") !=
        std::string::npos);
}

TEST_CASE("earlier_run: what counts as an earlier run, in words") {
  const std::string d = fresh_dir("earlier");
  CHECK(earlier_run(d) == "");  // absent
  fs::create_directories(d + "/checkpoints");
  spit(d + "/notes.txt", "mine");
  CHECK(earlier_run(d) == "");  // empty, or files that are not a run's
  spit(d + "/config.yaml", "model: {}\n");
  spit(d + "/metrics.jsonl", "");
  CHECK(earlier_run(d) == "a run without checkpoints (config.yaml, metrics.jsonl)");
  spit(d + "/checkpoints/step_0000005.safetensors", "x");
  spit(d + "/checkpoints/step_0000005.state.safetensors", "x");
  spit(d + "/checkpoints/latest", "step_0000005.safetensors\n");
  CHECK(earlier_run(d) == "a run at step 5 with 1 checkpoint");
}

TEST_CASE("on_nan: stop names the step and keeps the last good checkpoint - skip skips the update") {
  Config cfg = resume_config();
  cfg.train.checkpoint_interval = 5;
  const std::string d = fresh_dir("nan");
  TrainOptions poison;  // a NaN weight from step 7 on: the loss is NaN
  poison.before_forward = [](int done, Model& m) {
    if (done == 7) m.params().all()[0].w[0] = std::numeric_limits<float>::quiet_NaN();
  };
  cfg.train.on_nan = "stop";
  const std::string e = error_of([&] { train(cfg, d, poison); });
  CHECK(e.find("step 7: the loss is nan") != std::string::npos);
  CHECK(e.find("the last good checkpoint is " + ckpt(d, 5)) != std::string::npos);
  CHECK(slurp(d + "/checkpoints/latest") == "step_0000005.safetensors\n");
  CHECK(load_model(ckpt(d, 5)).step == 5);  // intact and loadable
  CHECK(read_train_state(state_path_for(ckpt(d, 5))).step == 5);
  for (const auto& row : read_metrics(d + "/metrics.jsonl")) CHECK(row["step"].get<int>() < 7);

  SUBCASE("a NaN gradient stops as well") {
    TrainOptions grad;
    grad.after_backward = [](int done, Model& m) {
      if (done == 3) m.params().all()[1].g[0] = std::numeric_limits<float>::infinity();
    };
    grad.overwrite = true;  // the stopped run above is in d
    const std::string e2 = error_of([&] { train(cfg, d, grad); });
    CHECK(e2.find("step 3: the gradient norm is inf") != std::string::npos);
    CHECK(e2.find("no checkpoint was saved yet") != std::string::npos);
  }
  SUBCASE("skip") {
    cfg.train.on_nan = "skip";
    TrainOptions grad;
    grad.after_backward = [](int done, Model& m) {
      if (done == 7 || done == 8) m.params().all()[1].g[0] = std::numeric_limits<float>::quiet_NaN();
    };
    grad.overwrite = true;
    const TrainSummary s = train(cfg, d, grad);
    CHECK(s.steps == 40);
    CHECK(s.skipped_steps == 2);
    int skipped = 0;
    for (const auto& row : read_metrics(d + "/metrics.jsonl")) {
      if (row.value("skipped", false)) {
        skipped++;
        CHECK((row["step"] == 7 || row["step"] == 8));
        CHECK(row["reason"] == "the gradient norm is nan");
      } else if (row.contains("loss")) {
        CHECK(std::isfinite(row["loss"].get<double>()));
      }
    }
    CHECK(skipped == 2);
    CHECK(slurp(d + "/metrics.csv").find("\n7,train,,") != std::string::npos);
    const TrainState st = read_train_state(state_path_for(ckpt(d, 40)));
    CHECK(st.optimizer_t == 38);
    CHECK(st.skipped_steps == 2);
    // named: a range-for keeps only its last temporary alive, and the weights belong to the model
    const LoadedModel loaded = load_model(ckpt(d, 40));
    for (float w : loaded.model->params().all()[1].w) CHECK(std::isfinite(w));
  }
}

TEST_CASE("signals: SIGINT during a step finishes it, saves, and the run resumes to the same log") {
  const Config cfg = resume_config();
  const std::string a = fresh_dir("sig_straight"), b = fresh_dir("sig_stopped");
  train(cfg, a);
  struct sigaction before {}, after {};
  ::sigaction(SIGINT, nullptr, &before);
  TrainOptions opts;
  opts.handle_signals = true;
  opts.before_forward = [](int done, Model&) {
    if (done == 17) std::raise(SIGINT);  // arrives mid-step
  };
  const TrainSummary s = train(cfg, b, opts);
  CHECK(s.interrupted);
  CHECK(s.steps == 17);
  CHECK(load_model(ckpt(b, 17)).step == 17);
  ::sigaction(SIGINT, nullptr, &after);
  CHECK(bool(after.sa_handler == before.sa_handler));  // the previous handler is back
  resume(b);
  CHECK(metric_rows(a) == metric_rows(b));
}

TEST_CASE("metrics.csv: the same rows as metrics.jsonl under a fixed header") {
  const Config cfg = resume_config();
  const std::string d = fresh_dir("csv");
  train(cfg, d);
  std::ifstream in(d + "/metrics.csv");
  std::string header;
  std::getline(in, header);
  CHECK(header == "step,split,loss,lr,grad_norm,tokens_per_s,elapsed_s,exact_match,skipped,ppl,token_acc,label_acc,"
                  "class_acc,greedy_token_acc,bleu,chrf,loss_per_char");
  const auto rows = read_metrics(d + "/metrics.jsonl");
  size_t n = 0;
  for (std::string line; std::getline(in, line); n++) {
    REQUIRE(n < rows.size());
    CHECK(line == metrics_csv_line(rows[n]));
    CHECK(line.rfind(std::to_string(rows[n]["step"].get<int>()) + ",", 0) == 0);
    if (rows[n].contains("loss")) CHECK(line.find("," + rows[n]["loss"].dump() + ",") != std::string::npos);
  }
  CHECK(n == rows.size());
}

TEST_CASE("inspect: checkpoint report, run report, sparkline, forward dump") {
  Config cfg = resume_config();
  const std::string d = fresh_dir("inspect");
  TrainOptions stop;
  stop.stop_after = [](int done) { return done == 30; };
  train(cfg, d, stop);
  const json c = inspect_checkpoint(ckpt(d, 30));
  CHECK(c["kind"] == "decoder");
  CHECK(c["step"] == 30);
  CHECK(c["attention"].size() == 1);
  CHECK(c["attention"][0]["short"] == "decoder_self");
  CHECK(c["train_state"]["step"] == 30);
  CHECK(c["train_state"]["best_step"].is_number());
  long long total = 0;
  for (const auto& m : c["parameters"]["modules"]) total += m["count"].get<long long>();
  CHECK(total == c["parameters"]["total"].get<long long>());
  CHECK(c["parameters"]["modules"][0]["name"] == "tok_emb");
  // the layernorm weight starts at 1: mean ≈ 1, L2 = sqrt(sum of squares)
  const LoadedModel lm = load_model(ckpt(d, 30));
  for (const auto& t : c["tensors"])
    if (t["name"] == "blocks.0.ln1.w") {
      const auto& w = lm.model->params().find("blocks.0.ln1.w")->w;
      double sq = 0, sum = 0;
      for (float v : w) sq += double(v) * v, sum += v;
      CHECK(t["l2"].get<double>() == doctest::Approx(std::sqrt(sq)));
      CHECK(t["mean"].get<double>() == doctest::Approx(sum / double(w.size())));
      CHECK(t["shape"] == json::array({16}));
    }
  const std::string text = render_checkpoint(c);
  CHECK(text.find("decoder_self") != std::string::npos);
  CHECK(text.find("training state") != std::string::npos);

  const json r = inspect_run(d);
  CHECK(r["status"] == "stopped");
  CHECK(r["step"] == 30);
  CHECK(r["metrics"]["last_train"]["step"] == 28);  // log_interval 4
  CHECK(r["metrics"]["best_val"]["step"].is_number());
  CHECK(!r["train_loss"]["sparkline"].get<std::string>().empty());
  CHECK(render_run(r).find("resume with `attnlab train --resume " + d + "`") != std::string::npos);
  CHECK(error_of([&] { inspect_run(d + "/checkpoints"); }).find("not a run directory") != std::string::npos);

  CHECK(sparkline({1, 2, 3, 4, 5, 6, 7, 8}) == "▁▂▃▄▅▆▇█");
  CHECK(sparkline({3, 3, 3}) == "▁▁▁");
  CHECK(sparkline({}) == "");
  CHECK(sparkline(std::vector<double>(1000, 1.0), 60).size() == 60 * 3);  // 3 UTF-8 bytes per bar

  const std::string dump = d + "/dump/nested";
  const json j = dump_forward(ckpt(d, 30), "abd=", dump);
  CHECK(j["ids"].size() == 4);
  const NpyArray logits = read_npy(dump + "/logits.npy");
  CHECK(logits.shape == std::vector<int64_t>{4, lm.model->vocab_size()});
  const NpyArray att = read_npy(dump + "/attn_decoder_self_L0.npy");
  CHECK(att.shape == std::vector<int64_t>{2, 4, 4});
  for (int h = 0; h < 2; h++)
    for (int q = 0; q < 4; q++) {
      double row = 0;
      for (int k = 0; k < 4; k++) row += att.data[size_t((h * 4 + q) * 4 + k)];
      CHECK(row == doctest::Approx(1.0).epsilon(1e-5));                 // a softmax row
      CHECK(att.data[size_t((h * 4 + 0) * 4 + 3)] == 0.0);              // causal: query 0 never sees key 3
    }
  const json tokens = json::parse(slurp(dump + "/tokens.json"));
  CHECK(tokens["tokens"] == json::array({"a", "b", "d", "="}));
  CHECK(tokens["ids"].size() == 4);
  CHECK(error_of([&] { dump_forward(ckpt(d, 30), "abz", dump); }).find("'z'") != std::string::npos);
  CHECK(error_of([&] { dump_forward(ckpt(d, 30), std::string(40, 'a'), dump); }).find("block_size is 16") !=
        std::string::npos);
  CHECK(error_of([&] { dump_forward(ckpt(d, 30), "", dump); }).find("empty") != std::string::npos);
  spit(d + "/afile", "x");
  CHECK(error_of([&] { dump_forward(ckpt(d, 30), "ab", d + "/afile/sub"); }).find("cannot create") !=
        std::string::npos);
}
