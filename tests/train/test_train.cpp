// Optimizer, schedule, checkpoints and the training loop.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <omp.h>

#include "config/config.h"
#include "core/error.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "inspect/inspect.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "temp_dir.h"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {

Config task_config() {
  Config c = load_config_text(R"(
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {steps: 30, batch_size: 8, lr: 0.003, warmup_steps: 5, eval_interval: 10, eval_batches: 2,
        log_interval: 5, checkpoint_interval: 10, keep_checkpoints: 2, threads: 1}
)",
                              "test");
  return c;
}

// the "loss" values of metrics.jsonl lines, optionally only those of one split
std::vector<double> losses(const std::string& metrics, const std::string& split = "") {
  std::ifstream in(metrics);
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    if (!split.empty() && line.find("\"split\":\"" + split + "\"") == std::string::npos) continue;
    auto k = line.find("\"loss\":");
    if (k != std::string::npos) out.push_back(std::stod(line.substr(k + 7)));
  }
  return out;
}
}  // namespace

TEST_CASE("AdamW: first step moves each weight by lr against the gradient's sign - decay only on weights") {
  ParamStore store;
  Param* w = store.add("w", {2}, ParamKind::weight);
  Param* b = store.add("b", {2}, ParamKind::bias);
  w->w = {1.0f, -2.0f};
  b->w = {1.0f, -2.0f};
  w->g = {0.5f, -3.0f};
  b->g = {0.5f, -3.0f};
  TrainConfig tc;
  tc.weight_decay = 0.1;
  AdamW opt(store, tc);
  opt.step(0.01f);
  // m̂ = g, v̂ = g², so the Adam step is lr·sign(g) (up to ε); decay adds lr·λ·w
  CHECK(w->w[0] == doctest::Approx(1.0 - 0.01 - 0.01 * 0.1 * 1.0).epsilon(1e-5));
  CHECK(w->w[1] == doctest::Approx(-2.0 + 0.01 + 0.01 * 0.1 * 2.0).epsilon(1e-5));
  CHECK(b->w[0] == doctest::Approx(1.0 - 0.01).epsilon(1e-5));
  CHECK(b->w[1] == doctest::Approx(-2.0 + 0.01).epsilon(1e-5));
}

TEST_CASE("gradient clipping scales to the requested global norm") {
  ParamStore store;
  Param* p = store.add("p", {2}, ParamKind::weight);
  p->g = {3.0f, 4.0f};
  CHECK(clip_grad_norm(store, 1.0) == doctest::Approx(5.0));
  CHECK(grad_norm(store) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(clip_grad_norm(store, 10.0) == doctest::Approx(1.0).epsilon(1e-5));  // under the limit: unchanged
  CHECK(grad_norm(store) == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("AdamW with grad_scale equals clipping the gradients first, bit for bit") {
  auto make = [](ParamStore& st) {
    Rng rng(9);
    for (int i = 0; i < 2; i++) {
      Param* p = st.add("p" + std::to_string(i), {40000 * (i + 1)}, ParamKind::weight);  // threaded sizes
      for (auto& x : p->w) x = rng.normal();
      for (auto& x : p->g) x = 3.0f * rng.normal();
    }
  };
  ParamStore a, b;
  make(a);
  make(b);
  TrainConfig tc;
  tc.weight_decay = 0.1;
  AdamW oa(a, tc), ob(b, tc);
  const double norm = clip_grad_norm(a, 1.0);  // scales a's gradients in place
  oa.step(0.01f);
  const float s = clip_scale(grad_norm(b), 1.0);
  CHECK(s < 0.01f);  // the gradients are far over the limit: the scale matters
  CHECK(grad_norm(b) == norm);
  ob.step(0.01f, s);
  for (size_t i = 0; i < a.all().size(); i++) CHECK(a.all()[i].w == b.all()[i].w);
  CHECK(clip_scale(0.5, 1.0) == 1.0f);
  CHECK(clip_scale(5.0, 0.0) == 1.0f);  // max_norm 0: no clipping
}

TEST_CASE("grad_norm: the same bits with 1 and 2 threads, and equal to a plain double sum") {
  ParamStore store;
  Rng rng(4);
  for (int i = 0; i < 3; i++) {
    Param* p = store.add("p" + std::to_string(i), {1000 + 70000 * i}, ParamKind::weight);
    for (auto& g : p->g) g = rng.normal();
  }
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = grad_norm(store);
  omp_set_num_threads(2);
  const double two = grad_norm(store);
  omp_set_num_threads(before);
  CHECK(one == two);
  double ref = 0;
  for (const auto& p : store.all())
    for (float g : p.g) ref += double(g) * double(g);
  CHECK(one == doctest::Approx(std::sqrt(ref)).epsilon(1e-12));
  // clipping scales every gradient to the requested norm
  clip_grad_norm(store, 1.0);
  CHECK(grad_norm(store) == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("schedule: linear warm-up, cosine to min_lr, constant, inverse square root") {
  TrainConfig tc;
  tc.lr = 1.0;
  tc.min_lr = 0.1;
  tc.warmup_steps = 10;
  tc.steps = 110;
  CHECK(learning_rate(tc, 0) == doctest::Approx(0.1));
  CHECK(learning_rate(tc, 9) == doctest::Approx(1.0));
  CHECK(learning_rate(tc, 60) == doctest::Approx(0.55));
  CHECK(learning_rate(tc, 110) == doctest::Approx(0.1));
  tc.schedule = "constant";
  CHECK(learning_rate(tc, 60) == doctest::Approx(1.0));
  tc.schedule = "inverse_sqrt";  // lr·√(warmup/(step+1)): continuous at the end of warm-up
  CHECK(learning_rate(tc, 9) == doctest::Approx(1.0));
  CHECK(learning_rate(tc, 39) == doctest::Approx(0.5));
  CHECK(learning_rate(tc, 999) == doctest::Approx(0.1));
}

TEST_CASE("checkpoint: round trip restores config, tokenizer and identical logits") {
  const std::string dir = test::temp_dir("ckpt");
  Config cfg = task_config();
  cfg.model.tie_embeddings = false;
  Tokenizer tok = Tokenizer::from_vocab(".=abcd");
  Model model(cfg.model, tok.size(), 5);
  const std::string path = dir + "/m.safetensors";
  write_checkpoint(path, model.params(), model_metadata(cfg, tok, 17));
  LoadedModel lm = load_model(path);
  CHECK(lm.step == 17);
  CHECK(lm.tokenizer.vocab() == ".=abcd");
  CHECK(dump_config(lm.config) == dump_config(cfg));
  std::vector<int> ids = {2, 3, 4, 1};
  model.forward(ids.data(), nullptr, 1, 4, false, nullptr);
  lm.model->forward(ids.data(), nullptr, 1, 4, false, nullptr);
  for (int i = 0; i < 4 * tok.size(); i++) CHECK(model.logits()[i] == lm.model->logits()[i]);
  // the file is plain safetensors: 8-byte little-endian header length, then JSON
  std::ifstream in(path, std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= uint64_t(len[i]) << (8 * i);
  std::string header(n, ' ');
  in.read(header.data(), long(n));
  CHECK(header.front() == '{');
  CHECK(header.find("\"tok_emb\"") != std::string::npos);
  CHECK((8 + n) % 8 == 0);
}

TEST_CASE("checkpoint: a model without MLPs round-trips, and inspect says it has none") {
  const std::string dir = test::temp_dir("nomlp");
  Config cfg = task_config();
  cfg.model.mlp = false;
  Tokenizer tok = Tokenizer::from_vocab(".=abcd");
  Model model(cfg.model, tok.size(), 5);
  const std::string path = dir + "/m.safetensors";
  write_checkpoint(path, model.params(), model_metadata(cfg, tok, 3));
  LoadedModel lm = load_model(path);
  CHECK_FALSE(lm.config.model.mlp);
  CHECK(lm.model->params().count() == model.params().count());
  CHECK(lm.model->params().find("blocks.0.mlp.fc.w") == nullptr);
  std::vector<int> ids = {2, 3, 4, 1};
  model.forward(ids.data(), nullptr, 1, 4, false, nullptr);
  lm.model->forward(ids.data(), nullptr, 1, 4, false, nullptr);
  for (int i = 0; i < 4 * tok.size(); i++) CHECK(model.logits()[i] == lm.model->logits()[i]);
  // the same file cannot be read into a model that has MLPs: their tensors are missing
  Config with = cfg;
  with.model.mlp = true;
  Model big(with.model, tok.size(), 5);
  CHECK_THROWS_AS(load_params(read_checkpoint(path), big.params(), "m"), UserError);
  const nlohmann::json r = inspect_checkpoint(path);
  CHECK(r["model"]["mlp"] == false);
  CHECK(r["model"]["d_ff"] == 0);
  CHECK(r["parameters"]["total"].get<long long>() == (long long)model.params().count());
  const std::string text = render_checkpoint(r);
  CHECK(text.find("no MLP") != std::string::npos);
  CHECK(text.find("d_ff") == std::string::npos);
}

TEST_CASE("checkpoint: corruption and truncation are detected and named") {
  const std::string dir = test::temp_dir("corrupt");
  Config cfg = task_config();
  Tokenizer tok = Tokenizer::from_vocab(".=abcd");
  Model model(cfg.model, tok.size(), 5);
  const std::string path = dir + "/m.safetensors";
  write_checkpoint(path, model.params(), model_metadata(cfg, tok, 1));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::string& s) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << s;
  };
  auto error_of = [&]() -> std::string {
    try {
      load_model(path);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  std::string flipped = bytes;
  flipped[bytes.size() - 3] ^= 0x40;
  write(flipped);
  CHECK(error_of().find("checksum mismatch") != std::string::npos);
  write(bytes.substr(0, bytes.size() - 100));
  CHECK(error_of().find("offsets") != std::string::npos);
  write(bytes.substr(0, 5));
  CHECK(error_of().find("truncated") != std::string::npos);
  write(std::string("\xff\xff\xff\xff\x00\x00\x00\x00garbage", 15));
  CHECK(error_of().find("header length") != std::string::npos);
  CHECK(error_of().find(path) != std::string::npos);
  fs::remove(path);
  CHECK(error_of().find("cannot read") != std::string::npos);
}

TEST_CASE("checkpoint: a shape mismatch with the model is an error") {
  const std::string dir = test::temp_dir("shape");
  Config cfg = task_config();
  Model a(cfg.model, 6, 1);
  cfg.model.d_model = 8;
  Model b(cfg.model, 6, 1);
  write_checkpoint(dir + "/a.safetensors", a.params(), {{"format", "attnlab"}});
  CheckpointFile ck = read_checkpoint(dir + "/a.safetensors");
  CHECK_THROWS_WITH_AS(load_params(ck, b.params(), "a"), doctest::Contains("has shape"), UserError);
}

TEST_CASE("train: same seed and threads give identical losses - a different seed does not") {
  Config cfg = task_config();
  cfg.train.threads = 2;  // the parallel loops too (the other tests use 1: fast on a busy machine)
  cfg.train.steps = 15;
  const std::string d1 = test::temp_dir("det1"), d2 = test::temp_dir("det2"), d3 = test::temp_dir("det3");
  train(cfg, d1);
  train(cfg, d2);
  cfg.train.seed = 99;
  train(cfg, d3);
  const auto a = losses(d1 + "/metrics.jsonl"), b = losses(d2 + "/metrics.jsonl"), c = losses(d3 + "/metrics.jsonl");
  REQUIRE(a.size() >= 5);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("train: run directory holds config, metrics, log, and the last K checkpoints with a latest pointer") {
  Config cfg = task_config();
  const std::string d = test::temp_dir("rundir");
  TrainSummary s = train(cfg, d);
  CHECK(fs::exists(d + "/config.yaml"));
  CHECK(fs::exists(d + "/train.log"));
  CHECK(fs::exists(d + "/metrics.jsonl"));
  std::ifstream latest(d + "/checkpoints/latest");
  std::string name;
  latest >> name;
  CHECK(name == "step_0000030.safetensors");
  CHECK(s.checkpoint == d + "/checkpoints/step_0000030.safetensors");
  CHECK(fs::exists(d + "/checkpoints/step_0000020.safetensors"));
  CHECK_FALSE(fs::exists(d + "/checkpoints/step_0000010.safetensors"));  // keep_checkpoints: 2
  int n = 0;
  for (auto& e : fs::directory_iterator(d + "/checkpoints")) n += e.path().extension() == ".tmp";
  CHECK(n == 0);
  CHECK(load_config(d + "/config.yaml").train.steps == 30);
}

TEST_CASE("train: the loss falls on the reversal task") {
  Config cfg = task_config();
  cfg.model.d_model = 32;
  cfg.train.steps = 300;
  cfg.train.checkpoint_interval = 0;
  cfg.train.eval_interval = 0;
  const std::string d = test::temp_dir("learn");
  train(cfg, d);
  const auto tr = losses(d + "/metrics.jsonl", "train"), val = losses(d + "/metrics.jsonl", "val");
  REQUIRE(tr.size() > 3);
  REQUIRE(val.size() == 1);
  // chance level is ln(6) ≈ 1.79 nats; a learning model halves it on this easy task
  CHECK(tr.front() > 1.5);
  CHECK(val.back() < 0.5 * tr.front());
}
