#include "core/signals.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

namespace attnlab {

namespace {

// The handler touches only these: a lock-free counter, and the notes and status set before it is
// installed.
std::atomic<int> g_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);
const char* g_first_note = "";
const char* g_abort_note = "";
int g_abort_status = 0;

void on_signal(int sig) {
  if (g_signals.fetch_add(1) == 0) {
    (void)!::write(STDERR_FILENO, g_first_note, std::strlen(g_first_note));
    return;
  }
  (void)!::write(STDERR_FILENO, g_abort_note, std::strlen(g_abort_note));
  ::_exit(g_abort_status != 0 ? g_abort_status : 128 + sig);
}

}  // namespace

StopSignals::StopSignals(bool on, const char* first_note, const char* abort_note, int abort_status) : on_(on) {
  if (!on_) return;
  g_signals = 0;
  g_first_note = first_note;
  g_abort_note = abort_note;
  g_abort_status = abort_status;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
  ::sigaction(SIGUSR1, &sa, &old_usr1_);  // mpirun passes SIGUSR1 on to every rank (docs/distributed.md)
}

StopSignals::~StopSignals() {
  if (!on_) return;
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
  ::sigaction(SIGUSR1, &old_usr1_, nullptr);
}

bool StopSignals::requested() const { return on_ && g_signals.load() > 0; }

}  // namespace attnlab
