#include "core/png.h"

#include <algorithm>
#include <stdexcept>

#include "core/crc32c.h"

namespace attnlab {

namespace {

void put_be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xffu));
}

// One chunk: length, type, data, CRC-32 of type and data.
void chunk(std::string& out, const char type[4], const std::string& data) {
  put_be32(out, uint32_t(data.size()));
  const size_t start = out.size();
  out.append(type, 4);
  out += data;
  put_be32(out, crc32(out.data() + start, out.size() - start));
}

// A zlib stream (RFC 1950) of `raw` in stored deflate blocks (RFC 1951, BTYPE 00).
std::string zlib_stored(const std::string& raw) {
  std::string z = {char(0x78), char(0x01)};  // deflate, 32 KiB window; 0x7801 % 31 == 0
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(raw.size() - pos, 65535);
    const bool last = pos + n == raw.size();
    z.push_back(char(last ? 1 : 0));
    z.push_back(char(n & 0xff));
    z.push_back(char(n >> 8));
    z.push_back(char(~n & 0xff));
    z.push_back(char((~n >> 8) & 0xff));
    z.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char c : raw) {
    a = (a + c) % 65521u;
    b = (b + a) % 65521u;
  }
  put_be32(z, (b << 16) | a);
  return z;
}

// The file: 8-bit samples of `bytes_per_pixel` bytes in colour type `colour_type`, a PLTE chunk
// when `palette` is not empty.
std::string png_file(const std::vector<uint8_t>& pixels, int height, int width, int bytes_per_pixel, char colour_type,
                     const std::vector<uint8_t>& palette) {
  const size_t stride = size_t(width) * bytes_per_pixel;
  if (pixels.size() != stride * size_t(height))
    throw std::invalid_argument("encode_png: pixel count does not match height × width × channels");
  std::string raw;
  raw.reserve((stride + 1) * size_t(height));
  for (int r = 0; r < height; r++) {
    raw.push_back(0);  // filter type 0 (none)
    raw.append(reinterpret_cast<const char*>(pixels.data()) + size_t(r) * stride, stride);
  }
  std::string ihdr;
  put_be32(ihdr, uint32_t(width));
  put_be32(ihdr, uint32_t(height));
  ihdr += {char(8), colour_type, 0, 0, 0};  // bit depth, colour type, compression, filter, interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  chunk(out, "IHDR", ihdr);
  if (!palette.empty()) chunk(out, "PLTE", std::string(palette.begin(), palette.end()));
  chunk(out, "IDAT", zlib_stored(raw));
  chunk(out, "IEND", "");
  return out;
}

}  // namespace

std::string encode_png(const std::vector<uint8_t>& pixels, int height, int width, int channels) {
  if (height <= 0 || width <= 0 || (channels != 1 && channels != 3))
    throw std::invalid_argument("encode_png: height and width must be positive, channels 1 or 3");
  return png_file(pixels, height, width, channels, char(channels == 1 ? 0 : 2), {});
}

std::string encode_png_indexed(const std::vector<uint8_t>& indices, int height, int width,
                               const std::vector<uint8_t>& palette) {
  if (height <= 0 || width <= 0) throw std::invalid_argument("encode_png_indexed: height and width must be positive");
  if (palette.empty() || palette.size() % 3 != 0 || palette.size() > 3 * 256)
    throw std::invalid_argument("encode_png_indexed: the palette must hold 1 to 256 RGB triples");
  return png_file(indices, height, width, 1, char(3), palette);
}

}  // namespace attnlab
