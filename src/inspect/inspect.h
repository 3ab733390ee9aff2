// `attnlab inspect`: what a checkpoint or a run directory holds, for people
// (render_*) and machines (the JSON the render functions read).
//
//   inspect_checkpoint(path)  kind, layers, attention per slot with its options,
//                             parameter count per module, every tensor with shape /
//                             mean / std / L2 norm, and the training state when the
//                             companion step_NNNNNNN.state.safetensors exists.
//   inspect_run(dir)          config summary, progress, last and best metrics, the
//                             checkpoints, and a sparkline of the train loss.
//   dump_forward(...)         one forward pass on a text: logits.npy [T,V],
//                             attn_<slot>_L<i>.npy [heads,Tq,Tk] per layer, tokens.json.
// Every problem (missing or corrupt file, not a run directory, text outside the
// vocabulary, ...) is a UserError naming the file and the problem.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace attnlab {

nlohmann::json inspect_checkpoint(const std::string& path);
nlohmann::json inspect_run(const std::string& run_dir);
std::string render_checkpoint(const nlohmann::json& report);
std::string render_run(const nlohmann::json& report);

// A unicode sparkline (▁▂▃▄▅▆▇█) of `values`, averaged into at most `width` buckets.
std::string sparkline(const std::vector<double>& values, int width = 60);


// One forward pass of the checkpoint's model on `text`; writes the files into dir
// (created) and returns what it wrote (for --json and the summary).
// progress (optional) is called before each stage: (stages done, stages in all, what comes next).
using DumpProgress = std::function<void(long done, long total, const std::string& what)>;
nlohmann::json dump_forward(const std::string& checkpoint, const std::string& text, const std::string& dir,
                            const DumpProgress& progress = {});
std::string render_dump(const nlohmann::json& report);

// The short name of an attention slot in file names: model.decoder.self_attention -> decoder_self.
std::string slot_short_name(const std::string& slot);

}  // namespace attnlab
