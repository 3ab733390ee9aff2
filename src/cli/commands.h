// One function per subcommand: each adds itself to the CLI11 app and returns
// the callback that runs it. All logic lives in attnlab_core.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace attnlab::cli {

using Run = std::function<int()>;
Run add_train(CLI::App& app);
Run add_sample(CLI::App& app);
Run add_config(CLI::App& app);
Run add_bench(CLI::App& app);
Run add_inspect(CLI::App& app);
Run add_gradcheck(CLI::App& app);
Run add_eval(CLI::App& app);
Run add_experiment(CLI::App& app);
Run add_report(CLI::App& app);
Run add_score(CLI::App& app);
Run add_tokenizer(CLI::App& app);

}  // namespace attnlab::cli
