#include "core/console.h"

#include <unistd.h>

#include <cstdio>

namespace attnlab {

Console::Console(const std::string& log_path, bool quiet)
    : tty_(!quiet && isatty(STDOUT_FILENO)), quiet_(quiet), log_(log_path, std::ios::app) {}

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
