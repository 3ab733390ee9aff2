#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "config/config.h"
#include "train/trainer.h"

namespace attnlab::cli {

Run add_train(CLI::App& app) {
  struct Opts {
    std::string config, run_dir;
    std::vector<std::string> sets;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("train", "Train a model from a YAML config");
  sub->add_option("config", o->config, "YAML config file")->required();
  sub->add_option("--set", o->sets, "Override a key: --set train.lr=3e-4 (repeatable)");
  sub->add_option("--run-dir", o->run_dir, "Where to write logs and checkpoints (default runs/<config name>)");
  return [o]() {
    const Config cfg = load_config(o->config, o->sets);
    std::string dir = o->run_dir;
    if (dir.empty()) dir = (std::filesystem::path("runs") / std::filesystem::path(o->config).stem()).string();
    train(cfg, dir);
    return 0;
  };
}

}  // namespace attnlab::cli
