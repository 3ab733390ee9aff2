// Progress of a long command that is not `train` (which has its own console): `eval`, `bench`,
// `inspect --dump`. The line goes to stderr, so stdout keeps only the command's result (its table
// or its JSON) and can be piped.
//
//   ProgressMeter meter("eval val", total, "batches", quiet);
//   for (...) { ...; meter.tick(); }
//   meter.done();
//
// Nothing is shown for work that ends within the first 2 seconds (ATTNLAB_PROGRESS_DELAY=S in the
// environment changes that; the tests set 0). After that, on a terminal,
// one live line is redrawn at most 4 times a second:
//   eval val: 120/1000 batches (12%) | 45.2/s | ETA 0:19
// and erased when the work ends. When stderr is not a terminal the same text is written as plain
// lines (no carriage returns, no escape codes), at most one every 10 seconds and a last one at
// the end. quiet shows nothing.
#pragma once
#include <chrono>
#include <string>

namespace attnlab {

class ProgressMeter {
 public:
  ProgressMeter(std::string label, long total, std::string unit, bool quiet);
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  // `n` more units are done; `what` (optional) names the current piece of work.
  void tick(long n = 1, const std::string& what = "");
  // More work was found: the total grows (e.g. a length skipped or added).
  void set_total(long total) { total_ = total; }
  // Erases a live line now (before the command prints a result line to stdout); the next tick
  // redraws it.
  void clear();
  // The work is over: erases the live line, or writes the last plain line if any were written.
  void done();

  // The line as shown, for tests: "label: done/total unit (p%) | rate/s | ETA m:ss[ | what]".
  std::string text() const;

 private:
  using Clock = std::chrono::steady_clock;
  void show(bool force);
  std::string label_, unit_, what_;
  long total_, done_ = 0;
  bool quiet_, tty_, shown_ = false, live_ = false, finished_ = false;
  Clock::time_point start_ = Clock::now(), last_ = start_;
};

}  // namespace attnlab
