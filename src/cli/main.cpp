// attnlab: build, train and inspect small transformers from a YAML config.
#include <cstdio>
#include <exception>
#include <map>

#include "cli/commands.h"
#include "core/comm.h"
#include "core/console.h"
#include "core/error.h"
#include "core/gemm.h"

int main(int argc, char** argv) {
  // under mpirun -np N (N > 1): MPI from here to the end of main (core/comm.h)
  const attnlab::MpiSession mpi(&argc, &argv);
  attnlab::Comm& comm = attnlab::Comm::world();
  CLI::App app{"attnlab: an educational transformer trainer with pluggable attention"};
  app.set_version_flag("--version", std::string("attnlab ") + ATTNLAB_VERSION + " | MPI: " +
                                        (attnlab::built_with_mpi() ? attnlab::mpi_library() : "not built in"));
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
  add(attnlab::cli::add_report);
  add(attnlab::cli::add_score);
  add(attnlab::cli::add_tokenizer);
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
    attnlab::gemm_select_from_env();
    for (auto* sub : app.get_subcommands()) {
      if (!runs.count(sub)) continue;
      // train and bench are the commands that run as one job of several processes
      if (comm.size() > 1 && sub->get_name() != "train" && sub->get_name() != "bench")
        throw attnlab::CollectiveError(fmt::format(
            "attnlab {} runs in one process; under mpirun (here {} processes) only `train` and `bench train` run",
            sub->get_name(), comm.size()));
      return runs[sub]();
    }
    return 2;
  } catch (const attnlab::ReportedElsewhere&) {
    return 2;  // another rank printed the error that every rank met
  } catch (const attnlab::CollectiveError& e) {
    if (comm.root() || comm.size() == 1 || std::string(e.what()).rfind("rank ", 0) == 0) {
      std::fflush(stdout);
      attnlab::end_live_line();
      std::fprintf(stderr, "error: %s\n", e.what());
    }
    return 2;
  } catch (const attnlab::UserError& e) {
    std::fflush(stdout);
    attnlab::end_live_line();  // an error starts on a line of its own, without a blank line before it
    if (comm.size() > 1) {  // met by this rank alone: the others would wait for it forever
      std::fprintf(stderr, "error (rank %d of %d, stopping the job): %s\n", comm.rank(), comm.size(), e.what());
      comm.abort(2);
    }
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    attnlab::end_live_line();
    std::fprintf(stderr, "internal error: %s\n", e.what());
    if (comm.size() > 1) comm.abort(1);
    return 1;
  }
}
