// The files of a run directory (layout: train/trainer.h): checkpoint names, the `latest`
// pointer, what a new run clears and what a resumed run cleans up, checkpoint rotation.
#pragma once
#include <string>
#include <vector>

namespace attnlab {

// "step_NNNNNNN...safetensors": a step checkpoint or its training state.
bool is_step_file(const std::string& name);
// step_0000300.safetensors for step 300.
std::string step_file_name(int step);
// The model checkpoint a step file belongs to: step_N.state.safetensors -> step_N.safetensors
// (a model checkpoint's name is returned as it is).
std::string model_name_of(const std::string& step_file);

// Fails with a clear error unless a file can be created in `dir` (a read-only mount, a
// directory without write permission): checked before a run writes anything there.
void check_writable(const std::string& dir, const std::string& context);

// checkpoints/latest of a run directory, as read (not yet judged: callers word their errors).
struct LatestPointer {
  bool present = false;  // the file exists
  std::string name;      // its content without surrounding whitespace
  std::string path;      // run_dir/checkpoints/<name>
  // Names a file in checkpoints/ (not empty, no '/').
  bool names_file() const { return !name.empty() && name.find('/') == std::string::npos; }
};
LatestPointer read_latest(const std::string& run_dir);
// The checkpoint `latest` names in run_dir/checkpoints (UserError if there is none).
std::string latest_checkpoint(const std::string& run_dir);

// What an earlier run left in `dir`, in words for an error message ("a run at step 300 with 1
// checkpoint"), or "" when there is none: no checkpoint, no metrics, no config.yaml. A new run
// refuses such a directory unless it is told to replace it (TrainOptions::overwrite).
std::string earlier_run(const std::string& dir);

// A new run in `dir`: removes `latest` first (a start killed half-way must not leave it naming
// a removed checkpoint), then the step checkpoints, best weights and temporary files of
// checkpoints/, then train.log. Returns how many model checkpoints were removed.
int clear_earlier_run(const std::string& dir);
// A resumed run: removes what a killed run can leave behind: temporary files of interrupted
// atomic writes, the files of a save that never reached `latest`, and checkpoints rotated out
// of `kept` whose removal did not happen.
void remove_stale_files(const std::string& dir, const std::vector<std::string>& kept);

// The checkpoint file meant by the argument of eval / sample / inspect: a checkpoint file as it
// is; a run directory -> its checkpoints/best.safetensors, else the checkpoint `latest` names;
// a checkpoints/latest pointer -> the checkpoint it names. `note` says which file was chosen
// and why when that is not the argument itself ("" otherwise).
struct CheckpointArg {
  std::string path, note;
};
CheckpointArg resolve_checkpoint_arg(const std::string& arg);

// Adds checkpoint `name` to `kept` (oldest first) and drops the oldest beyond `keep`;
// returns the dropped names.
std::vector<std::string> rotate_kept(std::vector<std::string>& kept, const std::string& name, int keep);
// Removes checkpoints (model file and training state) named in `names` from ckpt_dir, except `except`.
void remove_checkpoints(const std::string& ckpt_dir, const std::vector<std::string>& names,
                        const std::string& except);

}  // namespace attnlab
