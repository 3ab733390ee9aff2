// describe_data_config (data/factory.h): the data line of `inspect RUN_DIR` states each task's own
// options, and those are the options the task really reads.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/factory.h"
#include "data/tasks.h"

using namespace attnlab;

namespace {

const std::vector<std::string> kGenKeys = {"n_symbols", "min_len", "max_len", "n_pairs", "n_digits"};

// A config whose options each task accepts (the model kind: the first the task suits).
Config config_for(const std::string& task) {
  Config c;
  c.data.task = task;
  c.data.n_symbols = 6, c.data.min_len = 3, c.data.max_len = 6, c.data.n_val = 32, c.data.n_digits = 2;
  if (task == "mqar") c.data.n_symbols = 64, c.data.n_pairs = 4, c.data.max_len = 24;
  if (task == "needle") c.data.n_symbols = 64, c.data.n_pairs = 3, c.data.max_len = 20;
  if (task == "parity") c.data.min_len = 6, c.data.max_len = 12;
  if (task == "balanced_parens") c.data.min_len = 6, c.data.max_len = 14;
  const std::string kind = TaskDataset::kinds_for(task).front();
  c.model.kind = kind == "decoder" ? ModelConfig::Kind::decoder
                 : kind == "encoder" ? ModelConfig::Kind::encoder
                                     : ModelConfig::Kind::encoder_decoder;
  c.model.block_size = 4096;
  c.train.seed = 5;
  return c;
}

int& key_of(Config& c, const std::string& key) {
  if (key == "n_symbols") return c.data.n_symbols;
  if (key == "min_len") return c.data.min_len;
  if (key == "max_len") return c.data.max_len;
  if (key == "n_pairs") return c.data.n_pairs;
  return c.data.n_digits;
}

std::vector<std::vector<int>> val_inputs(const Config& c) {
  const TaskDataset ds(task_options(c), option_name(c.model.kind), c.model.block_size);
  std::vector<std::vector<int>> v;
  for (const auto& ex : ds.eval_set(Split::val)) v.push_back(ex.input);
  return v;
}

}  // namespace

TEST_CASE("describe_data_config: each task's line names its own options with their values, no others") {
  CHECK(describe_data_config(config_for("dates")) == "dates (val_fraction 0.1, n_val 32)");
  CHECK(describe_data_config(config_for("reverse")) == "reverse (n_symbols 6, min_len 3, max_len 6, val_fraction 0.1, n_val 32)");
  CHECK(describe_data_config(config_for("addition")) == "addition (n_digits 2, val_fraction 0.1, n_val 32)");
  CHECK(describe_data_config(config_for("mqar")) == "mqar (n_symbols 64, n_pairs 4, max_len 24, val_fraction 0.1, n_val 32)");
  CHECK(describe_data_config(config_for("parity")) == "parity (min_len 6, max_len 12, val_fraction 0.1, n_val 32)");
  Config text;
  text.data.task = "text";
  text.data.path = "data/x.txt";
  CHECK(describe_data_config(text) == "text data/x.txt (val_fraction 0.1)");
  text.model.kind = ModelConfig::Kind::encoder;
  CHECK(describe_data_config(text) == "text data/x.txt (val_fraction 0.1, mask_prob 0.15)");
  for (const auto& task : TaskDataset::names()) {
    const std::string line = describe_data_config(config_for(task));
    const auto used = TaskDataset::option_keys(task);
    for (const auto& k : kGenKeys) {
      const bool listed = std::find(used.begin(), used.end(), k) != used.end();
      CHECK_MESSAGE((line.find(k) != std::string::npos) == listed, task, ": ", line);
    }
  }
  CHECK_THROWS_AS(TaskDataset::option_keys("copying"), UserError);
}

TEST_CASE("option_keys: a key a task does not list leaves its examples unchanged; a listed one changes them") {
  for (const auto& task : TaskDataset::names()) {
    const Config base = config_for(task);
    const auto want = val_inputs(base);
    const auto used = TaskDataset::option_keys(task);
    for (const auto& k : kGenKeys) {
      Config c = base;
      key_of(c, k) += 2;  // balanced_parens has even lengths only
      const bool listed = std::find(used.begin(), used.end(), k) != used.end();
      if (!listed) {
        CHECK_MESSAGE(val_inputs(c) == want, task, " changed with data.", k);
        continue;
      }
      bool changed = true;  // an out-of-range value is rejected: the task reads the key too
      try {
        changed = val_inputs(c) != want;
      } catch (const UserError&) {
      }
      CHECK_MESSAGE(changed, task, " ignores data.", k);
    }
  }
}
