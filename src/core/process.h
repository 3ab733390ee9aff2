// Child processes: one program run to completion with its output in a log file.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace attnlab {

// Spawns `exe args...` in a process group of its own (a terminal's Ctrl-C reaches only the
// parent), stdin from /dev/null, stdout and stderr appended to log_path, and waits for it.
// Once `stop` (polled every 50 ms, may be null) returns true, the child gets one SIGTERM.
// Returns its exit status, 128 + the signal when a signal ended it; std::runtime_error when it
// cannot start.
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path,
                const std::function<bool()>& stop = {});

}  // namespace attnlab
