// The report's small encoders: base64, palette PNGs of attention maps (stored deflate blocks: no
// compression library; a 64×64 map is about 4 KB), and the text of token labels.
#include <array>
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "inspect/report.h"

namespace attnlab::report_detail {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

uint32_t crc32(const std::string& s, size_t from) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; n++) {
      uint32_t c = n;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (size_t i = from; i < s.size(); i++) c = table[(c ^ uint8_t(s[i])) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void put_be32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; k--) s += char((v >> (8 * k)) & 0xff);
}

void chunk(std::string& png, const char* type, const std::string& data) {
  put_be32(png, uint32_t(data.size()));
  const size_t start = png.size();
  png += type;
  png += data;
  put_be32(png, crc32(png, start));
}

// zlib stream of `raw` in stored (uncompressed) deflate blocks.
std::string zlib_stored(const std::string& raw) {
  std::string z = {char(0x78), char(0x01)};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    z += char(last ? 1 : 0);
    z += char(n & 0xff);
    z += char(n >> 8);
    z += char(~n & 0xff);
    z += char((~n >> 8) & 0xff);
    z.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);
  return z;
}

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

std::vector<uint8_t> pixel_rows(const std::vector<uint8_t>& idx, int w, int h) {
  std::vector<uint8_t> raw;
  raw.reserve(size_t(h) * (w + 1));
  for (int r = 0; r < h; r++) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), idx.begin() + ptrdiff_t(r) * w, idx.begin() + ptrdiff_t(r + 1) * w);
  }
  return raw;
}

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

std::string png_indexed(const std::vector<uint8_t>& idx, int w, int h, const std::vector<uint8_t>& palette) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, uint32_t(w));
  put_be32(ihdr, uint32_t(h));
  ihdr += {char(8), char(3), char(0), char(0), char(0)};  // 8 bits, palette, deflate, filter 0, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "PLTE", std::string(palette.begin(), palette.end()));
  const std::vector<uint8_t> raw = pixel_rows(idx, w, h);
  chunk(png, "IDAT", zlib_stored(std::string(raw.begin(), raw.end())));
  chunk(png, "IEND", "");
  return png;
}

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
  return base64_encode(png_indexed(idx, cols, rows, negative ? palette_diverging() : palette_sequential()));
}

std::string heatmap_png_u8(const uint8_t* b, int rows, int cols) {
  static const std::array<uint8_t, 256> to_sqrt = [] {
    std::array<uint8_t, 256> t{};
    for (int i = 0; i < 256; i++) t[size_t(i)] = uint8_t(std::lround(255.0 * std::sqrt(i / 255.0)));
    return t;
  }();
  std::vector<uint8_t> idx(size_t(rows) * cols);
  for (size_t i = 0; i < idx.size(); i++) idx[i] = to_sqrt[b[i]];
  return base64_encode(png_indexed(idx, cols, rows, palette_sequential()));
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
