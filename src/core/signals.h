// SIGINT/SIGTERM/SIGUSR1 as a stop request that a loop polls. The first signal prints `first_note` to
// stderr and sets the request; a second one prints `abort_note` and exits the process at once
// with `abort_status` (0: 128 + the signal number). Both notes are written as given, from the
// handler (static strings: the handler keeps the pointers; "" prints nothing).
#pragma once
#include <signal.h>

namespace attnlab {

// Installs the handlers for its lifetime (when `on`), then restores the previous ones.
class StopSignals {
 public:
  StopSignals(bool on, const char* first_note, const char* abort_note, int abort_status = 0);
  ~StopSignals();
  // A signal has arrived since this scope began (always false when not `on`).
  bool requested() const;
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  bool on_;
  struct sigaction old_int_ {}, old_term_ {}, old_usr1_ {};
};

}  // namespace attnlab
