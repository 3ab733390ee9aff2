// train.grad_accum: K micro-batches give the full batch's gradient (weights 1/N, N = the batch's
// real targets), K = 1 is the trainer's old step bit for bit, a micro-batch can be recomputed on
// its own (the contract a data-parallel step relies on), and K > 1 runs train and resume exactly.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/error.h"
#include "data/factory.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/grad_accum.h"
#include "train/run_state.h"
#include "train/trainer.h"

using namespace attnlab;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A padded seq2seq task: sources and targets of 2..7 symbols, so micro-batches hold different
// numbers of real target tokens. No dropout, so that K = 1 and K > 1 see the same forward.
Config seq2seq_config(double dropout = 0.0) {
  Config c = load_config_text(R"(
model: {kind: encoder_decoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 6, min_len: 2, max_len: 7, n_val: 20}
train: {batch_size: 8, threads: 1}
)",
                              "test");
  c.model.dropout = dropout;
  return c;
}

struct Grads {
  std::vector<float> g;
  float loss = 0.0f;
};

// the gradient of one batch with K micro-batches, from the model's initial weights
Grads grads_of(const Config& cfg, const Batch& batch, int K, Rng drop) {
  auto data = make_dataset(cfg);
  Model model(cfg.model, data->tokenizer().size(), uint64_t(cfg.train.seed), data->n_classes());
  GradAccumulator acc;
  Grads r;
  const AccumResult ar = acc.run(model, batch, K, drop, 0.0f);
  REQUIRE(ar.finite);
  r.loss = ar.loss;
  copy_grads(model.params(), r.g);
  return r;
}

Batch batch_of(const Config& cfg, uint64_t seed = 7) {
  auto data = make_dataset(cfg);
  Batch b;
  Rng rng(seed);
  data->next_batch(b, cfg.train.batch_size, cfg.model.block_size, Split::train, rng);
  return b;
}

float max_abs(const std::vector<float>& a) {
  float m = 0.0f;
  for (float v : a) m = std::max(m, std::fabs(v));
  return m;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Tolerance for "the same gradient summed in another order": each element is a float sum over
// the batch's rows (inside GEMMs and in the accumulator) of terms no larger than max|g|·(a few);
// regrouping such a sum changes it by a few units in the last place of its largest partial sums.
// 1e-5·max|g| is ~80 float ulps of the largest element: far above reordering noise, far below
// any weighting mistake (which changes gradients by tens of percent, checked below).
float tolerance(const std::vector<float>& g) { return 1e-5f * max_abs(g); }

std::string fresh_dir(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / ("attnlab_accum_" + name + "_XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl + "/run";
}

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

std::string config_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    load_config_text(yaml, "cfg.yaml", sets);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("grad_accum: K = 2 and K = 4 give the full-batch gradient on a padded seq2seq task") {
  const Config cfg = seq2seq_config();
  const Batch batch = batch_of(cfg);
  // the micro-batches really differ in real targets (else 1/n_k and 1/N would coincide)
  auto data = make_dataset(cfg);
  Model probe(cfg.model, data->tokenizer().size(), 1, 0);
  Batch m0, m1;
  slice_rows(batch, 0, 4, m0);
  slice_rows(batch, 4, 8, m1);
  const int n0 = probe.count_targets(m0), n1 = probe.count_targets(m1);
  REQUIRE(n0 != n1);
  REQUIRE(n0 + n1 == probe.count_targets(batch));

  const Grads full = grads_of(cfg, batch, 1, Rng(3));
  const float tol = tolerance(full.g);
  REQUIRE(max_abs(full.g) > 0.0f);
  for (int K : {2, 4, 8}) {
    CAPTURE(K);
    const Grads acc = grads_of(cfg, batch, K, Rng(3));
    const float d = max_abs_diff(full.g, acc.g);
    MESSAGE("K=" << K << ": max |g_K - g_1| = " << d << ", max |g_1| = " << max_abs(full.g));
    CHECK(d <= tol);
    CHECK(std::fabs(acc.loss - full.loss) <= 1e-5f * full.loss);
  }
}

TEST_CASE("grad_accum: weighting each micro-batch by its own count (1/n_k, then /K) is wrong") {
  const Config cfg = seq2seq_config();
  const Batch batch = batch_of(cfg);
  const Grads full = grads_of(cfg, batch, 1, Rng(3));
  auto data = make_dataset(cfg);
  Model model(cfg.model, data->tokenizer().size(), uint64_t(cfg.train.seed), data->n_classes());
  const int K = 2, rows = batch.B / K, N = model.count_targets(batch);
  // the same loop as GradAccumulator::run, once with each micro-batch's mean (denom 0) averaged
  // over K, once with the batch's count N
  for (const bool per_micro_mean : {true, false}) {
    CAPTURE(per_micro_mean);
    std::vector<float> acc;
    Batch micro;
    for (int k = 0; k < K; k++) {
      slice_rows(batch, k * rows, (k + 1) * rows, micro);
      model.params().zero_grad();
      Rng rng(0);
      int n = 0;
      micro_step(model, micro, &rng, 0.0f, per_micro_mean ? 0 : N, &n);
      if (k == 0) copy_grads(model.params(), acc);
      else add_grads(model.params(), acc);
    }
    if (per_micro_mean)
      for (float& v : acc) v /= float(K);
    const float d = max_abs_diff(full.g, acc);
    MESSAGE(std::string(per_micro_mean ? "1/n_k then /K" : "1/N") << ": max |diff| = " << d);
    if (per_micro_mean) CHECK(d > 100 * tolerance(full.g));
    else CHECK(d <= tolerance(full.g));
  }
}

TEST_CASE("grad_accum: classification counts rows") {
  Config cfg = load_config_text(R"(
model: {kind: encoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 16, pool: mean}
data: {task: parity, min_len: 2, max_len: 9, n_val: 20}
train: {batch_size: 8, threads: 1}
)",
                                "test");
  const Batch batch = batch_of(cfg);
  REQUIRE(batch.cls.size() == 8);
  const Grads full = grads_of(cfg, batch, 1, Rng(3));
  const Grads acc = grads_of(cfg, batch, 4, Rng(3));
  CHECK(max_abs_diff(full.g, acc.g) <= tolerance(full.g));
  CHECK(std::fabs(acc.loss - full.loss) <= 1e-5f * full.loss);
}

TEST_CASE("grad_accum: K = 1 is the trainer's old step, bit for bit (dropout stream included)") {
  const Config cfg = seq2seq_config(0.2);
  const Batch batch = batch_of(cfg);
  auto data = make_dataset(cfg);
  Model a(cfg.model, data->tokenizer().size(), 5, 0), b(cfg.model, data->tokenizer().size(), 5, 0);
  Rng ra(11), rb(11);
  // the step as the trainer took it before grad_accum existed
  a.params().zero_grad();
  const float la = a.forward(batch, true, &ra);
  a.backward();
  GradAccumulator acc;
  const AccumResult r = acc.run(b, batch, 1, rb, 0.0f);
  CHECK(r.loss == la);
  CHECK(r.count == a.loss_count());
  CHECK(ra.state() == rb.state());
  std::vector<float> ga, gb;
  copy_grads(a.params(), ga);
  copy_grads(b.params(), gb);
  CHECK(ga == gb);
}

TEST_CASE("grad_accum: a micro-batch recomputed alone gives the same bits (what a data-parallel rank does)") {
  const Config cfg = seq2seq_config(0.2);  // dropout on: each micro-batch's stream must be its own
  const Batch batch = batch_of(cfg);
  const Rng root(21);
  Rng drop = root;
  const Grads acc = grads_of(cfg, batch, 2, drop);
  // each micro-batch on a fresh model, in reverse order, as two processes would run them
  auto data = make_dataset(cfg);
  const int N = Model(cfg.model, data->tokenizer().size(), 1, 0).count_targets(batch);
  std::vector<std::vector<float>> g(2);
  std::vector<std::pair<float, int>> losses(2);
  for (int k : {1, 0}) {
    Model m(cfg.model, data->tokenizer().size(), uint64_t(cfg.train.seed), data->n_classes());
    Batch micro;
    slice_rows(batch, k * 4, (k + 1) * 4, micro);
    m.params().zero_grad();
    Rng rng = dropout_stream(root, k);
    losses[k].first = micro_step(m, micro, &rng, 0.0f, N, &losses[k].second);
    copy_grads(m.params(), g[k]);
  }
  std::vector<float> sum(g[0].size());
  for (size_t i = 0; i < sum.size(); i++) sum[i] = g[1][i] + g[0][i];  // an all-reduce of two: either order
  CHECK(sum == acc.g);
  const double weighted = double(losses[0].first) * losses[0].second + double(losses[1].first) * losses[1].second;
  CHECK(float(weighted / N) == acc.loss);
  // the streams differ between micro-batches and from the root's own
  Rng s0 = dropout_stream(root, 0), s1 = dropout_stream(root, 1), r = root;
  const uint64_t a = s0.next_u64(), b = s1.next_u64(), c = r.next_u64();
  CHECK(a != b);
  CHECK(a != c);
  // the root moved on by exactly one draw
  Rng moved = root;
  advance_dropout_root(moved);
  Rng after = root;
  GradAccumulator ga;
  auto model = Model(cfg.model, data->tokenizer().size(), 1, 0);
  ga.run(model, batch, 4, after, 0.0f);
  CHECK(after.state() == moved.state());
}

TEST_CASE("grad_accum: slice_rows copies every per-row field") {
  Batch in;
  in.B = 3, in.T = 2, in.S = 1;
  in.x = {1, 2, 3, 4, 5, 6};
  in.y = {7, 8, 9, 10, 11, 12};
  in.x_len = {2, 1, 2};
  in.src = {13, 14, 15};
  in.src_len = {1, 0, 1};
  Batch out;
  slice_rows(in, 1, 3, out);
  CHECK(out.B == 2);
  CHECK(out.T == 2);
  CHECK(out.S == 1);
  CHECK(out.x == std::vector<int>{3, 4, 5, 6});
  CHECK(out.y == std::vector<int>{9, 10, 11, 12});
  CHECK(out.x_len == std::vector<int>{1, 2});
  CHECK(out.src == std::vector<int>{14, 15});
  CHECK(out.src_len == std::vector<int>{0, 1});
  CHECK(out.cls.empty());
}

TEST_CASE("grad_accum: a bad value is a config error naming both keys, with its location") {
  const std::string text = "data: {task: text, path: x.txt}\ntrain:\n  batch_size: 8\n  grad_accum: 3\n";
  CHECK(config_error(text) ==
        "cfg.yaml:4:15: key 'train.grad_accum': expected a divisor of train.batch_size (8), got 3");
  CHECK(config_error("data: {task: text, path: x.txt}\ntrain: {grad_accum: 0}\n")
            .find("cfg.yaml:2:21: key 'train.grad_accum': expected an integer in [1, 1048576], got 0") == 0);
  CHECK(config_error(text, {"train.grad_accum=4"}) == "");
  // only written when used: a K = 1 config dumps as it did before the key existed
  const Config one = load_config_text("data: {task: text, path: x.txt}\n", "cfg.yaml");
  CHECK(dump_config(one).find("grad_accum") == std::string::npos);
  const Config two = load_config_text("data: {task: text, path: x.txt}\ntrain: {grad_accum: 2}\n", "cfg.yaml");
  CHECK(dump_config(two).find("grad_accum: 2") != std::string::npos);
  CHECK(load_config_text(dump_config(two), "dump").train.grad_accum == 2);
}

TEST_CASE("grad_accum: K = 2 trains, and an interrupted K = 2 run resumes to the same bits") {
  Config cfg = load_config_text(R"(
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16, dropout: 0.1}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 40, batch_size: 8, grad_accum: 2, lr: 0.003, warmup_steps: 5, eval_interval: 10,
        eval_batches: 2, log_interval: 4, checkpoint_interval: 10, keep_checkpoints: 2, threads: 1}
)",
                                "test");
  TrainOptions quiet;
  quiet.quiet = true;
  const std::string a = fresh_dir("straight"), b = fresh_dir("stopped");
  train(cfg, a, quiet);
  auto train_losses = [](const std::string& dir) {
    std::vector<float> out;
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      if (j["split"] == "train") out.push_back(j["loss"].get<float>());
    }
    return out;
  };
  // the same run with K = 1: the same batches and updates up to rounding and dropout draws
  Config one = cfg;
  one.train.grad_accum = 1;
  const std::string o = fresh_dir("k1");
  train(one, o, quiet);
  const std::vector<float> l2 = train_losses(a), l1 = train_losses(o);
  REQUIRE(l2.size() >= 5);
  REQUIRE(l1.size() == l2.size());
  std::string curve;
  for (size_t i = 0; i < l2.size(); i++) curve += fmt::format(" {:.3f}/{:.3f}", l1[i], l2[i]);
  MESSAGE("train loss K=1/K=2 every 4 steps:" << curve);
  CHECK(l2.back() < 0.9f * l2.front());
  CHECK(std::fabs(l2.back() - l1.back()) < 0.1f * l1.back());

  TrainOptions stop13 = quiet;
  stop13.stop_after = [](int done) { return done == 13; };
  CHECK(train(cfg, b, stop13).interrupted);
  const TrainSummary s = resume(b, {}, quiet);
  CHECK(s.start_step == 13);
  CHECK(s.steps == 40);
  const auto ra = metric_rows(a), rb = metric_rows(b);
  REQUIRE(ra.size() > 10);
  CHECK(ra == rb);
  const std::string ck = "/checkpoints/step_0000040.safetensors";
  CHECK(read_checkpoint(a + ck).metadata.at("checksum_fnv1a64") ==
        read_checkpoint(b + ck).metadata.at("checksum_fnv1a64"));
  // the AdamW moments too (the state file's tensor checksum covers them)
  CheckpointFile fa, fb;
  const TrainState ta = read_train_state(state_path_for(a + ck), &fa);
  const TrainState tb = read_train_state(state_path_for(b + ck), &fb);
  CHECK(fa.metadata.at("checksum_fnv1a64") == fb.metadata.at("checksum_fnv1a64"));
  CHECK(ta.rng_dropout == tb.rng_dropout);
  CHECK(ta.rng_data == tb.rng_data);
  CHECK(tb.optimizer_t == 40);

  SUBCASE("grad_accum may change on resume; the state file does not depend on it") {
    const std::string c = fresh_dir("change");
    CHECK(train(cfg, c, stop13).interrupted);
    const TrainSummary s1 = resume(c, {"train.grad_accum=1"}, quiet);
    CHECK(s1.steps == 40);
    CHECK(load_config(c + "/config.yaml").train.grad_accum == 1);
  }
}

TEST_CASE("grad_accum: a NaN in any micro-batch stops or skips the step as with K = 1") {
  Config cfg = load_config_text(R"(
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 10, batch_size: 8, grad_accum: 4, lr: 0.003, warmup_steps: 2, eval_interval: 0, threads: 1}
)",
                                "test");
  TrainOptions poison;
  poison.quiet = true;
  poison.before_forward = [](int done, Model& m) {
    if (done == 4) m.params().all()[0].w[0] = std::numeric_limits<float>::quiet_NaN();
  };
  std::string err;
  try {
    train(cfg, fresh_dir("nan"), poison);
  } catch (const UserError& e) {
    err = e.what();
  }
  CHECK(err.find("step 4: the loss is nan") == 0);
  cfg.train.on_nan = "skip";
  TrainOptions grad;
  grad.quiet = true;
  grad.after_backward = [](int done, Model& m) {
    if (done == 3) m.params().all()[1].g[0] = std::numeric_limits<float>::infinity();
  };
  const TrainSummary s = train(cfg, fresh_dir("skip"), grad);
  CHECK(s.steps == 10);
  CHECK(s.skipped_steps == 1);
}
