#include "core/console.h"

#include <unistd.h>

#include <cstdio>

#include "core/comm.h"

namespace attnlab {

Console::Console(const std::string& log_path, bool quiet)
    // under mpirun stdout is a pseudo-terminal of mpirun's whatever mpirun's own output is: plain lines
    : tty_(!quiet && isatty(STDOUT_FILENO) && Comm::world().size() == 1), quiet_(quiet), log_(log_path, std::ios::app) {}

void Console::line(const std::string& s) {
  if (tty_ && live_) std::fputs("\r\033[K", stdout);
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
  log_ << s << "\n";
}

void Console::finish() {
  if (tty_ && live_) std::fputs("\n", stdout);
  live_ = false;
}

}  // namespace attnlab
