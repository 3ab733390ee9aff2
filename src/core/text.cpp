#include "core/text.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace attnlab {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) user_error("{} '{}': is a directory, expected a text file", what, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("{} '{}': cannot be read (no such file, or no permission)", what, path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) user_error("{} '{}': reading failed", what, path);
  const std::string text = ss.str();
  std::vector<std::string> lines;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string::npos) j = text.size();
    size_t e = j;
    if (e > i && text[e - 1] == '\r') --e;
    lines.push_back(text.substr(i, e - i));
    i = j + 1;
  }
  return lines;
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

namespace {
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    for (int k = 3; k >= 0; k--) out += kB64[(v >> (6 * k)) & 63];
  }
  if (i < in.size()) {
    const bool two = i + 1 < in.size();
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | (two ? uint32_t(uint8_t(in[i + 1])) << 8 : 0);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += two ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  static const std::array<int, 256> dec = [] {
    std::array<int, 256> d{};
    d.fill(-1);
    for (int i = 0; i < 64; i++) d[uint8_t(kB64[i])] = i;
    return d;
  }();
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const int v = dec[uint8_t(c)];
    if (v < 0) user_error("{}: not base64 (character '{}')", what, c);
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace attnlab
