// Seq2seq answers end at the task's end token; checkpoint_data (eval/sample --set data.*) raises a
// RoPE model's context to the new rows and refuses what a learned position table cannot hold.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>

#include "config/config.h"
#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"
#include "model/generate.h"
#include "model/model.h"
#include "train/eval_data.h"
#include "train/evaluate.h"

using namespace attnlab;

namespace {

LoadedModel copy_model(const std::string& kind, const std::string& positions, uint64_t seed) {
  LoadedModel lm;
  lm.config = load_config_text("model: {kind: " + kind + ", n_layers: 1, d_model: 16, n_heads: 2, block_size: 13, "
                               "positions: " + positions + "}\n"
                               "data: {task: copy, n_symbols: 6, min_len: 2, max_len: 6, n_val: 20}\n",
                               "test");
  const auto data = make_dataset(lm.config);
  lm.tokenizer = data->tokenizer();
  lm.model = std::make_unique<Model>(lm.config.model, lm.tokenizer.size(), seed);
  Rng rng(seed + 1);
  for (auto& p : lm.model->params().all())
    for (auto& w : p.w) w += 0.5f * rng.normal();
  return lm;
}

}  // namespace

TEST_CASE("answer_seq2seq: the answer ends where the free decoding first emits the end token") {
  int ended = 0;
  for (const char* kind : {"decoder", "encoder_decoder"})
    for (uint64_t seed = 1; seed <= 6; seed++) {
      CAPTURE(kind);
      CAPTURE(seed);
      LoadedModel lm = copy_model(kind, "learned", seed);
      const auto data = make_dataset(lm.config);
      const TaskDataset* task = data->task();
      const std::vector<int> input = lm.tokenizer.encode("abcab");
      SampleOptions o;
      o.temperature = 0;
      o.max_new_tokens = 7;
      Rng r(1);
      // the free decoding, without a stop token
      std::vector<int> free;
      if (lm.config.model.kind == ModelConfig::Kind::encoder_decoder) {
        free = translate(*lm.model, input, task->sep_id(), o, r);
      } else {
        std::vector<int> prompt = input;
        prompt.push_back(task->sep_id());
        free = generate(*lm.model, prompt, o, r);
      }
      const auto end = std::find(free.begin(), free.end(), task->end_id());
      ended += end != free.end();
      CHECK(answer_seq2seq(*lm.model, *task, input, o, r) == std::vector<int>(free.begin(), end));
    }
  CHECK(ended >= 2);  // the end token came up early in some of them: the stop was exercised
}

TEST_CASE("checkpoint_data: longer rows raise a RoPE model's context, a learned table names its limit") {
  LoadedModel rope = copy_model("decoder", "rope", 3);
  const CheckpointData cd = checkpoint_data(rope, "rope.safetensors", {"data.min_len=7", "data.max_len=12"});
  const TaskDataset* task = cd.data->task();
  REQUIRE(task);
  CHECK(task->max_input_len() == 12);
  CHECK(task->batch_T() == 25);  // 12 + separator + 12 + end - 1
  CHECK(rope.model->context() == 25);
  CHECK(cd.config.model.block_size == 25);
  REQUIRE(cd.overrides.size() == 2);
  CHECK(cd.overrides[1].key == "data.max_len");
  CHECK(cd.overrides[1].trained == "6");
  CHECK(cd.overrides[1].value == "12");
  const EvalReport rep = evaluate(*rope.model, *cd.data, cd.config, EvalOptions{});
  CHECK(rep.examples.size() == 20);
  for (const auto& p : rep.examples) CHECK(p.input.size() >= 7);

  LoadedModel learned = copy_model("decoder", "learned", 3);
  try {
    checkpoint_data(learned, "learned.safetensors", {"data.max_len=12"});
    FAIL("a learned table of 13 positions cannot hold rows of 25");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("needs rows of 25 tokens; this checkpoint's learned positions hold 13") !=
          std::string::npos);
  }
  CHECK(learned.model->context() == 13);
  CHECK_THROWS_AS(checkpoint_data(learned, "x", {"model.d_model=32"}), UserError);
  CHECK_THROWS_AS(checkpoint_data(learned, "x", {"data.task=reverse"}), UserError);
  CHECK_THROWS_AS(checkpoint_data(learned, "x", {"data.n_symbols=7"}), UserError);
  // fewer symbols keep the ids of the ones left
  CHECK(checkpoint_data(learned, "x", {"data.n_symbols=4"}).data->tokenizer().size() == 6);
}
