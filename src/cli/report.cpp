#include <cstdio>

#include "cli/commands.h"
#include "inspect/report.h"

namespace attnlab::cli {

Run add_report(CLI::App& app) {
  struct Opts {
    std::string run_dir, out;
    int examples = 5;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("report", "Write one self-contained HTML page about a run: curves, evaluations, "
                                           "attention maps (and how they formed), decoded examples");
  sub->add_option("run_dir", o->run_dir, "The run directory")->required();
  sub->add_option("-o,--output", o->out, "The HTML file to write (default: RUN_DIR/report.html)");
  sub->add_option("--examples", o->examples, "seq2seq: how many val examples to decode")
      ->check(CLI::Range(0, 1000));
  return [o]() {
    ReportOptions opt;
    opt.decoded_examples = o->examples;
    const nlohmann::json r = write_report(o->run_dir, o->out, opt);
    std::printf("report: %s (%.1f KB) | %s | curves: %d train / %d val points | %d attention maps",
                r["path"].get<std::string>().c_str(), r["bytes"].get<double>() / 1024.0,
                r["status"].get<std::string>().c_str(), r["train_points"].get<int>(), r["val_points"].get<int>(),
                r["maps"].get<int>());
    if (r["history_total"].get<int>() > 0)
      std::printf(" | history: %d of %d evaluations", r["history_frames"].get<int>(), r["history_total"].get<int>());
    std::printf("\n");
    return 0;
  };
}

}  // namespace attnlab::cli
