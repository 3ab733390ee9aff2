// Console output of a long-running command: a live progress line on a terminal, plain lines
// otherwise; every plain line is also appended to a log file.
#pragma once
#include <fstream>
#include <string>

namespace attnlab {

class Console {
 public:
  // quiet: lines go to the log only, not to stdout.
  Console(const std::string& log_path, bool quiet);
  // A plain line (ends a live progress line first).
  void line(const std::string& s);
  // A progress line: overwritten in place on a terminal, a plain line otherwise; logged either way.
  void progress(const std::string& s);
  // Ends a live progress line with a newline.
  void finish();

 private:
  bool tty_;
  bool quiet_;
  bool live_ = false;
  std::ofstream log_;
};

// A live progress line on stdout, open now, is one an error message must end first (else the
// message would be glued to it on the terminal). Console keeps this up to date; a command with a
// progress display of its own reports its line with set_live_line.
void set_live_line(bool live);
// Ends an open live progress line with a newline on stdout; does nothing when none is open.
void end_live_line();

}  // namespace attnlab
