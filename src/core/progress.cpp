#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>

#include "core/console.h"
#include "core/text.h"

namespace attnlab {

namespace {
// seconds before anything is shown; ATTNLAB_PROGRESS_DELAY overrides it (the tests set 0)
double delay_seconds() {
  static const double d = [] {
    const char* e = std::getenv("ATTNLAB_PROGRESS_DELAY");
    char* end = nullptr;
    const double v = e ? std::strtod(e, &end) : 2.0;
    return e && end != e && v >= 0 ? v : 2.0;
  }();
  return d;
}
constexpr double kLiveEvery = 0.25;     // a terminal's line is redrawn at most this often
constexpr double kPlainEvery = 10.0;    // plain lines, at most one per this many seconds
}  // namespace

ProgressMeter::ProgressMeter(std::string label, long total, std::string unit, bool quiet)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), quiet_(quiet),
      tty_(isatty(STDERR_FILENO) != 0) {}

ProgressMeter::~ProgressMeter() {
  // an exception unwinding through the work: leave no half-drawn line behind the error message
  if (live_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}

std::string ProgressMeter::text() const {
  const double el = std::chrono::duration<double>(Clock::now() - start_).count();
  std::string s = fmt::format("{}: {}/{} {}", label_, done_, total_, unit_);
  if (total_ > 0) s += fmt::format(" ({}%)", std::clamp<long>(100 * done_ / total_, 0, 100));
  if (el > 0 && done_ > 0) {
    const double rate = double(done_) / el;
    s += rate >= 10 ? fmt::format(" | {:.0f}/s", rate) : fmt::format(" | {:.2f}/s", rate);
    if (total_ > done_) s += " | ETA " + fmt_duration(double(total_ - done_) / rate);
  }
  if (!what_.empty()) s += " | " + what_;
  return s;
}

void ProgressMeter::tick(long n, const std::string& what) {
  done_ += n;
  if (!what.empty()) what_ = what;
  show(false);
}

void ProgressMeter::show(bool force) {
  if (quiet_ || finished_) return;
  const auto now = Clock::now();
  const double el = std::chrono::duration<double>(now - start_).count();
  if (el < delay_seconds()) return;
  const double since = std::chrono::duration<double>(now - last_).count();
  if (tty_) {
    if (!force && shown_ && since < kLiveEvery) return;
    std::fputs(("\r\033[K" + text()).c_str(), stderr);
    live_ = true;
  } else {
    if (!force && shown_ && since < kPlainEvery) return;
    std::fputs((text() + "\n").c_str(), stderr);
  }
  std::fflush(stderr);
  shown_ = true;
  last_ = now;
}

void ProgressMeter::clear() {
  if (!live_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  live_ = false;
  shown_ = false;  // redraw at the next tick
}

void ProgressMeter::done() {
  if (finished_) return;
  if (tty_) {
    if (live_) std::fputs("\r\033[K", stderr);
    live_ = false;
  } else if (shown_ && !quiet_) {
    std::fputs((text() + "\n").c_str(), stderr);
  }
  std::fflush(stderr);
  finished_ = true;
}

}  // namespace attnlab
