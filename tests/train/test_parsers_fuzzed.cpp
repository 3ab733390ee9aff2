// Inputs found by fuzzing (tests/fuzz, docs/reliability.md "Fuzzing") that made a parser fail with
// something other than a UserError: each is pinned here with the behaviour it has now.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "inspect/inspect.h"
#include "train/metrics_log.h"
#include "train/run_state.h"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {
std::string fresh(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("attnlab_test_fuzzed_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}
}  // namespace

TEST_CASE("fuzzed: metrics.jsonl rows with fields of the wrong type are skipped, and inspect still reports") {
  const std::string run = fresh("metrics");
  Config cfg;
  cfg.data.task = "reverse";  // loadable without a data file
  std::ofstream(run + "/config.yaml") << dump_config(cfg);
  std::ofstream(run + "/metrics.jsonl")
      << R"({"step":1,"split":"train","loss":2.5,"skipped":false})" "\n"
      << R"({"step":2,"split":"train","loss":"x","skipped":"yes"})" "\n"  // was: internal error in inspect
      << R"({"step":3,"split":3,"loss":1.0})" "\n"
      << R"({"step":4,"split":"val","loss":null,"exact_match":[1]})" "\n"
      << R"({"step":5,"split":"val","loss":2.0,"ppl":null})" "\n";
  const auto rows = read_metrics(run + "/metrics.jsonl");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["step"] == 1);
  CHECK(rows[1]["step"] == 5);  // null stands for a value that was not finite: kept
  const auto r = inspect_run(run);
  CHECK(r["metrics"]["rows"] == 2);
  CHECK(r["metrics"]["best_val"]["step"] == 5);
  CHECK_FALSE(render_run(r).empty());
}

TEST_CASE("fuzzed: a YAML key that is a list or a mapping is a config error, not a conversion exception") {
  // was: YAML::TypedBadConversion escaping load_config_text (an internal error in the CLI)
  CHECK_THROWS_WITH_AS(load_config_text("model:\n  ? [a, b]\n  : 1\n", "c.yaml"),
                       doctest::Contains("c.yaml:2:5: expected a key name, got a list"), UserError);
  CHECK_THROWS_WITH_AS(load_config_text("? {x: 1}\n: 2\n", "c.yaml"), doctest::Contains("got a mapping"), UserError);
}

TEST_CASE("fuzzed: a checkpoint whose embedded config claims a far larger model is refused before building it") {
  Config cfg;
  cfg.data.task = "reverse";
  cfg.model.n_layers = 1;
  cfg.model.d_model = 8;
  cfg.model.n_heads = 2;
  cfg.model.block_size = 8;
  const Tokenizer tok = Tokenizer::from_vocab("abc");
  Model small(cfg.model, tok.size(), 1);
  const std::string dir = fresh("big_config");
  // the weights of the small model, with a config that claims d_model 60000 (~2e10 parameters)
  Config big = cfg;
  big.model.d_model = 60000;
  big.model.n_heads = 1;
  write_checkpoint(dir + "/m.safetensors", small.params(), model_metadata(big, tok, 1));
  CHECK_THROWS_WITH_AS(load_model(dir + "/m.safetensors"), doctest::Contains("at least"), UserError);
  // the honest file loads
  write_checkpoint(dir + "/ok.safetensors", small.params(), model_metadata(cfg, tok, 1));
  CHECK(load_model(dir + "/ok.safetensors").model->params().count() == small.params().count());
}
