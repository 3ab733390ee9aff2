#include <cstdio>

#include "cli/commands.h"
#include "config/config.h"
#include "data/factory.h"

namespace attnlab::cli {

Run add_config(CLI::App& app) {
  struct Opts {
    std::string config;
    std::vector<std::string> sets;
    bool show = false, keys = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("config", "Validate a config or print it fully resolved");
  sub->require_subcommand(1);
  for (const char* name : {"show", "check"}) {
    auto* s = sub->add_subcommand(name, std::string(name) == "show"
                                            ? "Print the resolved config (every key, defaults filled in)"
                                            : "Run every check `attnlab train` makes before its first step (the "
                                              "keys, the task against the model, lengths, the data file); exit 0 "
                                              "if the config would train, 2 with the error if not");
    s->add_option("config", o->config, "YAML config file")->required();
    s->add_option("--set", o->sets, "Override a key: --set train.lr=3e-4 (repeatable)");
    if (std::string(name) == "show") s->callback([o] { o->show = true; });
  }
  sub->add_subcommand("keys", "Print every config key with its type, default and meaning (Markdown)")
      ->callback([o] { o->keys = true; });
  return [o]() {
    if (o->keys) {
      std::printf("| key | type | default | meaning |\n|---|---|---|---|\n");
      for (const auto& k : config_keys())
        std::printf("| `%s` | %s | `%s` | %s |\n", k.key.c_str(), k.type.c_str(),
                    k.default_value.empty() ? "\"\"" : k.default_value.c_str(), k.doc.c_str());
      return 0;
    }
    const Config cfg = load_config(o->config, o->sets);
    if (o->show) {
      std::fputs(dump_config(cfg).c_str(), stdout);
      return 0;
    }
    make_training_data(cfg);  // the dataset (and its checks) exactly as train builds it
    std::printf("%s: ok\n", o->config.c_str());
    return 0;
  };
}

}  // namespace attnlab::cli
