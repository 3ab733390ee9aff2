// Encoder and encoder-decoder models end to end: finite-difference gradients of every parameter,
// padding that leaves the real positions alone, and incremental decoding (with beam reordering)
// equal to the full forward.
#include <doctest/doctest.h>

#include <cmath>

#include "config/config.h"
#include "core/error.h"
#include "model/model.h"
#include "model_checks.h"

using namespace attnlab;

namespace {

constexpr int V = 9;

ModelConfig tiny(const std::string& kind) { return test::tiny_config(kind, 8, 12, 8); }

using test::perturb;

std::vector<int> random_ids(int n, Rng& rng, int hi = V) {
  std::vector<int> v(n);
  for (auto& i : v) i = int(rng.below(hi));
  return v;
}

// A batch for the model kind: B = 2, rows of different lengths (padding), a few ignored targets.
Batch make_batch(const ModelConfig& mc, int n_classes, Rng& rng) {
  Batch b;
  b.B = 2;
  b.T = 5;
  b.x = random_ids(b.B * b.T, rng);
  b.x_len = {5, 3};
  if (n_classes > 0) {
    b.cls = {1, 0};
  } else {
    b.y = random_ids(b.B * b.T, rng);
    b.y[2] = -1;
    for (int t = 3; t < 5; t++) b.y[5 + t] = -1;  // row 1's padding carries no loss
  }
  if (mc.kind == ModelConfig::Kind::encoder_decoder) {
    b.S = 6;
    b.src = random_ids(b.B * b.S, rng);
    b.src_len = {6, 4};
  }
  return b;
}

// Every parameter tensor along a random direction (model_checks.h).
void check_gradients(const ModelConfig& mc, int n_classes = 0, float smoothing = 0.0f, float h = 3e-3f) {
  Model model(mc, V, 42, n_classes);
  Rng rng(7);
  perturb(model, rng);
  const Batch batch = make_batch(mc, n_classes, rng);
  model.params().zero_grad();
  model.forward(batch, true, &rng, smoothing);
  REQUIRE(model.loss_count() > 0);
  model.backward();
  auto loss = [&]() { return double(model.forward(batch, false, nullptr, smoothing)); };
  const int checked = test::check_param_directions(model, loss, h);
  CHECK(checked == int(model.params().all().size()));
}

bool has_param(Model& m, const std::string& name) {
  for (auto& p : m.params().all())
    if (p.name == name) return true;
  return false;
}

}  // namespace

TEST_CASE("encoder: gradients of every parameter, masked-token head with key padding") {
  check_gradients(tiny("encoder"));
}

TEST_CASE("encoder: gradients with a classification head, first-token and mean pooling") {
  ModelConfig m = tiny("encoder");
  check_gradients(m, 2);
  m.pool = "mean";
  check_gradients(m, 3);
}

TEST_CASE("encoder_decoder: gradients, pre-LN, shared embeddings, tied head") {
  check_gradients(tiny("encoder_decoder"));
}

TEST_CASE("encoder_decoder: gradients, post-LN, separate embeddings, untied head, sinusoidal, smoothing") {
  ModelConfig m = tiny("encoder_decoder");
  m.norm = ModelConfig::Norm::post;
  m.share_embeddings = false;
  m.tie_embeddings = false;
  m.positions = ModelConfig::Positions::sinusoidal;
  m.n_encoder_layers = 1;
  check_gradients(m, 0, 0.1f);
}

TEST_CASE("encoder_decoder: gradients with other variants in the slots (additive cross-attention)") {
  ModelConfig m = tiny("encoder_decoder");
  m.decoder_cross.type = "bahdanau";
  m.encoder_self.type = "luong";
  m.encoder_self.score = "general";
  check_gradients(m);
}

TEST_CASE("encoder_decoder: gradients through the bottleneck (no cross-attention)") {
  ModelConfig m = tiny("encoder_decoder");
  m.bottleneck = true;
  check_gradients(m);
  Model model(m, V, 1);
  CHECK(model.named_attention().size() == 4);  // 2 encoder self + 2 decoder self, no cross
  CHECK_FALSE(has_param(model, "decoder.blocks.0.xattn.w_q"));
}

TEST_CASE("decoder: post-LN gradients, and post-LN has no final layernorm") {
  ModelConfig m = tiny("decoder");
  m.norm = ModelConfig::Norm::post;
  check_gradients(m);
  Model model(m, V, 1);
  CHECK_FALSE(has_param(model, "lnf.w"));
}

TEST_CASE("model.mlp false: attention-only blocks in every stack, gradients of every parameter") {
  for (const std::string kind : {"decoder", "encoder", "encoder_decoder"}) {
    CAPTURE(kind);
    ModelConfig m = tiny(kind);
    m.mlp = false;
    // h = 1e-3: without MLPs the encoder_decoder's tok_emb direction has a small slope (-0.0153)
    // and a large curvature; at h = 3e-2 / 1e-2 / 3e-3 / 1e-3 the central difference gives
    // -0.0361 / -0.0177 / -0.01558 / -0.01538, converging on the analytic value as h².
    check_gradients(m, 0, 0.0f, 1e-3f);
    Model with(tiny(kind), V, 1), without(m, V, 1);
    // no mlp.* tensor and no ln2 anywhere; the attention and the rest are still there
    int mlp_tensors = 0;
    for (auto& p : without.params().all())
      mlp_tensors += p.name.find(".mlp.") != std::string::npos || p.name.find(".ln2.") != std::string::npos;
    CHECK(mlp_tensors == 0);
    const std::string pre = kind == "encoder_decoder" ? "decoder." : "";
    CHECK(has_param(with, pre + "blocks.1.mlp.fc.w"));
    CHECK(has_param(without, pre + "blocks.1.attn.w_q"));
    CHECK(has_param(without, pre + "blocks.1.ln1.w"));
    // the parameter count drops by exactly the MLP and its layernorm: per block 2FC + F + C (+ 2C)
    const size_t C = 8, F = 12, blocks = kind == "encoder_decoder" ? 4 : 2;
    CHECK(with.params().count() - without.params().count() == blocks * (2 * F * C + F + C + 2 * C));
  }
  // post-LN too: the sublayer's layernorm goes with it
  ModelConfig m = tiny("decoder");
  m.mlp = false;
  m.norm = ModelConfig::Norm::post;
  check_gradients(m);
}

TEST_CASE("encoder_decoder: parameter names say which stack they belong to") {
  Model model(tiny("encoder_decoder"), V, 1);
  CHECK(has_param(model, "encoder.blocks.1.attn.w_q"));
  CHECK(has_param(model, "decoder.blocks.1.xattn.w_k"));
  CHECK(has_param(model, "encoder.lnf.w"));
  CHECK(has_param(model, "decoder.lnf.w"));
  CHECK(has_param(model, "encoder.pos_emb"));
  CHECK(has_param(model, "decoder.pos_emb"));
  CHECK(has_param(model, "decoder.blocks.0.lnx.w"));
  CHECK_FALSE(has_param(model, "src_emb"));  // shared by default
  const auto named = model.named_attention();
  REQUIRE(named.size() == 6);
  CHECK(named[0].first == "encoder_self_L0");
  CHECK(named[2].first == "decoder_self_L0");
  CHECK(named[4].first == "decoder_cross_L0");
}

TEST_CASE("padding: source padding does not change an encoder_decoder's outputs") {
  for (bool bottleneck : {false, true}) {
    ModelConfig m = tiny("encoder_decoder");
    m.bottleneck = bottleneck;
    Model model(m, V, 3);
    Rng rng(5);
    perturb(model, rng);
    Batch a;  // one row, source of 3 tokens, no padding
    a.B = 1, a.T = 4, a.S = 3;
    a.src = {1, 2, 3};
    a.src_len = {3};
    a.x = {0, 4, 5, 6};
    model.forward(a, false, nullptr);
    const std::vector<float> ref(model.logits(), model.logits() + 4 * V);
    Batch b = a;  // the same source padded to 7 with junk tokens
    b.S = 7;
    b.src = {1, 2, 3, 8, 7, 8, 1};
    b.src_len = {3};
    model.forward(b, false, nullptr);
    double worst = 0;
    for (int i = 0; i < 4 * V; i++) worst = std::max(worst, double(std::fabs(model.logits()[i] - ref[i])));
    INFO("bottleneck " << bottleneck);
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("padding: an encoder's outputs at real positions ignore padded positions") {
  Model model(tiny("encoder"), V, 3);
  Rng rng(5);
  perturb(model, rng);
  Batch a;
  a.B = 1, a.T = 3;
  a.x = {1, 2, 3};
  a.x_len = {3};
  model.forward(a, false, nullptr);
  const std::vector<float> ref(model.logits(), model.logits() + 3 * V);
  Batch b;
  b.B = 1, b.T = 6;
  b.x = {1, 2, 3, 7, 7, 8};
  b.x_len = {3};
  model.forward(b, false, nullptr);
  double worst = 0;
  for (int i = 0; i < 3 * V; i++) worst = std::max(worst, double(std::fabs(model.logits()[i] - ref[i])));
  CHECK(worst < 1e-5);
  // and without the key-padding mask they would differ (the test can fail)
  b.x_len.clear();
  model.forward(b, false, nullptr);
  double diff = 0;
  for (int i = 0; i < 3 * V; i++) diff = std::max(diff, double(std::fabs(model.logits()[i] - ref[i])));
  CHECK(diff > 1e-3);
}

TEST_CASE("encoder_decoder: incremental decoding equals the full forward, and beam reordering moves rows") {
  for (bool bottleneck : {false, true}) {
    ModelConfig m = tiny("encoder_decoder");
    m.bottleneck = bottleneck;
    Model model(m, V, 11);
    Rng rng(2);
    perturb(model, rng);
    Batch full;
    full.B = 2, full.T = 5, full.S = 4;
    full.src = random_ids(8, rng);
    full.src_len = {4, 2};
    full.x = random_ids(10, rng);
    model.forward(full, false, nullptr);
    const std::vector<float> ref(model.logits(), model.logits() + 10 * V);

    model.encode(full.src.data(), full.src_len.data(), 2, 4);
    model.cache_reset(2, 8);
    // first two tokens of each row in one step, then one at a time
    std::vector<float> got(10 * V);
    const int first[4] = {full.x[0], full.x[1], full.x[5], full.x[6]};
    const float* lg = model.forward_cached(first, 2, 2);
    for (int b = 0; b < 2; b++)
      for (int t = 0; t < 2; t++) std::copy(lg + (b * 2 + t) * V, lg + (b * 2 + t + 1) * V, got.begin() + (b * 5 + t) * V);
    for (int t = 2; t < 5; t++) {
      const int ids[2] = {full.x[t], full.x[5 + t]};
      lg = model.forward_cached(ids, 2, 1);
      for (int b = 0; b < 2; b++) std::copy(lg + b * V, lg + (b + 1) * V, got.begin() + (b * 5 + t) * V);
    }
    double worst = 0;
    for (int i = 0; i < 10 * V; i++) worst = std::max(worst, double(std::fabs(got[i] - ref[i])));
    INFO("bottleneck " << bottleneck);
    CHECK(worst < 1e-5);

    // Reorder so both rows continue row 1: the next step's logits for both rows must equal
    // those row 1 alone gets.
    model.encode(full.src.data(), full.src_len.data(), 2, 4);
    model.cache_reset(2, 8);
    const int two[4] = {full.x[0], full.x[1], full.x[5], full.x[6]};
    model.forward_cached(two, 2, 2);
    model.cache_reorder({1, 1});
    const int nxt[2] = {3, 3};
    lg = model.forward_cached(nxt, 2, 1);
    const std::vector<float> both(lg, lg + 2 * V);
    model.encode(full.src.data(), full.src_len.data(), 2, 4);
    model.cache_reset(2, 8);
    model.forward_cached(two, 2, 2);
    lg = model.forward_cached(nxt, 2, 1);
    double d0 = 0, d1 = 0, d_before = 0;
    for (int v = 0; v < V; v++) {
      d0 = std::max(d0, double(std::fabs(both[v] - lg[V + v])));
      d1 = std::max(d1, double(std::fabs(both[V + v] - lg[V + v])));
      d_before = std::max(d_before, double(std::fabs(lg[v] - lg[V + v])));
    }
    CHECK(d0 < 1e-6);
    CHECK(d1 < 1e-6);
    CHECK(d_before > 1e-4);  // the rows did differ before the reorder
  }
}

TEST_CASE("model kinds: misuse is a user error") {
  Model ed(tiny("encoder_decoder"), V, 1);
  const int ids[2] = {1, 2};
  CHECK_THROWS_AS(ed.forward(ids, nullptr, 1, 2, false, nullptr), UserError);
  Model enc(tiny("encoder"), V, 1);
  CHECK_THROWS_AS(enc.cache_reset(1, 4), UserError);
  CHECK_THROWS_AS(enc.encode(ids, nullptr, 1, 2), UserError);
}
