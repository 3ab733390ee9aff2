// The report's small encoders: palette PNGs of attention maps (core/png: stored deflate blocks, no
// compression library; a 64×64 map is about 4 KB), and the text of token labels.
#include <array>
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "core/png.h"
#include "core/text.h"
#include "inspect/report.h"

namespace attnlab::report_detail {

namespace {

// 256 colours interpolated between anchors (r, g, b at evenly spaced positions).
std::vector<uint8_t> ramp(const std::vector<std::array<int, 3>>& anchors) {
  std::vector<uint8_t> p;
  const int n = int(anchors.size()) - 1;
  for (int i = 0; i < 256; i++) {
    const double t = double(i) / 255.0 * n;
    const int k = std::min(n - 1, int(t));
    const double f = t - k;
    for (int c = 0; c < 3; c++)
      p.push_back(uint8_t(std::lround(anchors[size_t(k)][size_t(c)] * (1 - f) + anchors[size_t(k) + 1][size_t(c)] * f)));
  }
  return p;
}

}  // namespace

const std::vector<uint8_t>& palette_sequential() {
  static const std::vector<uint8_t> p =
      ramp({{255, 255, 255}, {222, 235, 247}, {158, 202, 225}, {66, 146, 198}, {8, 81, 156}, {8, 29, 88}});
  return p;
}

const std::vector<uint8_t>& palette_diverging() {
  static const std::vector<uint8_t> p =
      ramp({{5, 48, 97}, {67, 147, 195}, {209, 229, 240}, {255, 255, 255}, {253, 219, 199}, {214, 96, 77},
            {103, 0, 31}});
  return p;
}

std::string heatmap_png(const float* w, int rows, int cols) {
  const size_t n = size_t(rows) * cols;
  bool negative = false;
  for (size_t i = 0; i < n; i++) negative = negative || w[i] < 0.0f;
  std::vector<uint8_t> idx(n);
  for (size_t i = 0; i < n; i++) {
    const double v = std::isfinite(w[i]) ? std::clamp(double(w[i]), -1.0, 1.0) : 0.0;
    const double s = std::sqrt(std::fabs(v));
    idx[i] = negative ? uint8_t(std::lround(127.5 + (v < 0 ? -s : s) * 127.5)) : uint8_t(std::lround(255.0 * s));
  }
  return base64_encode(encode_png_indexed(idx, rows, cols, negative ? palette_diverging() : palette_sequential()));
}

std::string heatmap_png_u8(const uint8_t* b, int rows, int cols) {
  static const std::array<uint8_t, 256> to_sqrt = [] {
    std::array<uint8_t, 256> t{};
    for (int i = 0; i < 256; i++) t[size_t(i)] = uint8_t(std::lround(255.0 * std::sqrt(i / 255.0)));
    return t;
  }();
  std::vector<uint8_t> idx(size_t(rows) * cols);
  for (size_t i = 0; i < idx.size(); i++) idx[i] = to_sqrt[b[i]];
  return base64_encode(encode_png_indexed(idx, rows, cols, palette_sequential()));
}

std::string display_token(const std::string& tok) {
  if (tok == " ") return "␣";
  std::string out;
  for (size_t i = 0; i < tok.size();) {
    const uint8_t c = uint8_t(tok[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + size_t(len) <= tok.size();
    for (int k = 1; ok && k < len; k++) ok = (uint8_t(tok[i + size_t(k)]) >> 6) == 2;
    if (!ok) {
      out += fmt::format("\\x{:02x}", c);
      i++;
    } else if (c == '\n') {
      out += "↵", i++;
    } else if (c == '\t') {
      out += "⇥", i++;
    } else if (c < 32 || c == 127) {
      out += fmt::format("\\x{:02x}", c), i++;
    } else {
      out.append(tok, i, size_t(len));
      i += size_t(len);
    }
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace attnlab::report_detail
