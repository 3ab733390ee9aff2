// Small text helpers: whole-file reads, trimming, durations for people.
#pragma once
#include <string>
#include <vector>

namespace attnlab {

// The whole file ("" if it cannot be read).
std::string read_text(const std::string& path);
// The lines of a file (a text file of one item per line): each without its '\n' and a '\r' before
// it; a last line without '\n' counts, a final '\n' starts no line. UserError naming `what` and
// the path when the file cannot be read.
std::vector<std::string> read_lines(const std::string& path, const std::string& what);
// `s` without leading and trailing whitespace.
std::string trim(std::string s);

// How fmt_duration writes a duration under a minute.
enum class UnderMinute {
  whole,  // "42s"; a negative or non-finite duration is "?"
  tenths  // "41.7s" (an elapsed time read from a file, printed as it is, sign included)
};
// "3m05s" and "1h02m" from a minute on; below, as `under` says.
std::string fmt_duration(double seconds, UnderMinute under = UnderMinute::whole);

// Standard base64 (RFC 4648, with padding) and its inverse; a character outside the alphabet is a
// UserError naming `what`.
std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text, const std::string& what);

}  // namespace attnlab
