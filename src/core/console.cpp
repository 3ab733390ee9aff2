#include "core/console.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "core/comm.h"

namespace attnlab {

namespace {
std::atomic<bool> g_live_line{false};  // set_live_line: a progress line without its newline is on stdout
}  // namespace

void set_live_line(bool live) { g_live_line = live; }

void end_live_line() {
  if (!g_live_line.exchange(false)) return;
  std::fputs("\n", stdout);
  std::fflush(stdout);
}

Console::Console(const std::string& log_path, bool quiet)
    // under mpirun stdout is a pseudo-terminal of mpirun's whatever mpirun's own output is: plain lines
    : tty_(!quiet && isatty(STDOUT_FILENO) && Comm::world().size() == 1), quiet_(quiet), log_(log_path, std::ios::app) {}

void Console::line(const std::string& s) {
  if (tty_ && live_) {
    std::fputs("\r\033[K", stdout);
    set_live_line(false);
  }
  live_ = false;
  if (!quiet_) {
    std::fputs((s + "\n").c_str(), stdout);
    std::fflush(stdout);
  }
  log_ << s << "\n";
  log_.flush();
}

void Console::progress(const std::string& s) {
  if (!tty_) return line(s);
  std::fputs(("\r\033[K" + s).c_str(), stdout);
  std::fflush(stdout);
  live_ = true;
  set_live_line(true);
  log_ << s << "\n";
}

void Console::finish() {
  if (tty_ && live_) {
    std::fputs("\n", stdout);
    set_live_line(false);
  }
  live_ = false;
}

}  // namespace attnlab
