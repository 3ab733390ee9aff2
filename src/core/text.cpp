#include "core/text.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

namespace attnlab {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(uint8_t(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(uint8_t(s[i]))) i++;
  return s.substr(i);
}

std::string fmt_duration(double s, UnderMinute under) {
  if (under == UnderMinute::whole && (s < 0 || !std::isfinite(s))) return "?";
  const long t = long(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  if (under == UnderMinute::tenths) return fmt::format("{:.1f}s", s);
  return fmt::format("{}s", t);
}

}  // namespace attnlab
