#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "inspect/inspect.h"
#include "train/run_dir.h"

namespace attnlab::cli {

Run add_inspect(CLI::App& app) {
  struct Opts {
    std::string path, input, dump;
    bool json = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("inspect", "Show what a checkpoint or a run directory holds; dump attention maps");
  sub->add_option("path", o->path,
                  "A .safetensors checkpoint, a run directory, or a run's checkpoints/latest (the checkpoint it "
                  "names)")
      ->required();
  sub->add_flag("--json", o->json, "Print JSON for machines instead of text");
  auto* input = sub->add_option("--input", o->input,
                                "With --dump: text to run one forward pass on (a run directory uses its latest "
                                "checkpoint)");
  auto* dump = sub->add_option("--dump", o->dump,
                               "With --input: directory (created) for logits.npy, attn_<slot>_L<i>.npy and "
                               "tokens.json");
  sub->add_flag("--quiet", o->quiet, "With --dump: no progress line on stderr");
  input->needs(dump);
  dump->needs(input);
  return [o]() {
    namespace fs = std::filesystem;
    std::error_code ec;
    const bool is_dir = fs::is_directory(o->path, ec);
    if (!is_dir && !fs::exists(o->path, ec)) user_error("cannot inspect '{}': no such file or directory", o->path);
    nlohmann::json r;
    std::string text;
    if (!o->dump.empty()) {
      const std::string ckpt = is_dir ? latest_checkpoint(o->path) : resolve_checkpoint_arg(o->path).path;
      ProgressMeter meter("inspect --dump", 0, "stages", o->quiet);
      r = dump_forward(ckpt, o->input, o->dump, [&meter](long done, long total, const std::string& what) {
        meter.set_total(total);
        meter.tick(done > 0 ? 1 : 0, what);
      });
      meter.done();
      if (!o->json) text = render_dump(r);
    } else if (is_dir) {
      r = inspect_run(o->path);
      if (!o->json) text = render_run(r);
    } else {
      const CheckpointArg ck = resolve_checkpoint_arg(o->path);  // checkpoints/latest: the checkpoint it names
      if (!ck.note.empty()) std::fprintf(stderr, "note: %s\n", ck.note.c_str());
      r = inspect_checkpoint(ck.path);
      if (!o->json) text = render_checkpoint(r);
    }
    if (o->json) text = r.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fputs(text.c_str(), stdout);
    return 0;
  };
}

}  // namespace attnlab::cli
