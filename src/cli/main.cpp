// attnlab: build, train and inspect small transformers from a YAML config.
#include <cstdio>
#include <exception>
#include <map>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"attnlab: an educational transformer trainer with pluggable attention"};
  app.set_version_flag("--version", std::string("attnlab ") + ATTNLAB_VERSION);
  app.require_subcommand(1);
  std::map<CLI::App*, attnlab::cli::Run> runs;
  auto add = [&](attnlab::cli::Run (*f)(CLI::App&)) {
    attnlab::cli::Run r = f(app);
    runs[app.get_subcommands({}).back()] = r;
  };
  add(attnlab::cli::add_train);
  add(attnlab::cli::add_sample);
  add(attnlab::cli::add_eval);
  add(attnlab::cli::add_config);
  add(attnlab::cli::add_bench);
  add(attnlab::cli::add_inspect);
  add(attnlab::cli::add_gradcheck);
  add(attnlab::cli::add_experiment);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    for (auto* sub : app.get_subcommands())
      if (runs.count(sub)) return runs[sub]();
    return 2;
  } catch (const attnlab::UserError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ninternal error: %s\n", e.what());
    return 1;
  }
}
