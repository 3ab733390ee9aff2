// What `attnlab train --resume` checks before it writes anything: the run directory, the
// overrides (only resume_keys() may change), config.yaml against the config embedded in the
// latest checkpoint.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "data/tokenizer.h"
#include "train/checkpoint.h"

namespace attnlab {

struct ResumePoint {
  Config cfg;                      // run_dir/config.yaml with the overrides
  std::string ckpt_path;           // the checkpoint `latest` names
  CheckpointFile ck;               // ... as read and verified
  Tokenizer tokenizer;             // its vocabulary
  std::vector<std::string> notes;  // what the overrides change about the run, for the log
};

// UserError (naming run_dir) when the run cannot be resumed as asked.
ResumePoint check_resume(const std::string& run_dir, const std::vector<std::string>& overrides);

}  // namespace attnlab
