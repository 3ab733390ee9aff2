// core/crc32c and core/png: the published check values of both CRCs, the TFRecord mask, and a
// PNG whose chunks, zlib stream and pixels are taken apart again here.
#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "core/crc32c.h"
#include "core/png.h"

using namespace attnlab;

TEST_CASE("crc32c: RFC 3720 B.4 test vectors and the usual check value") {
  std::string zeros(32, '\0'), ones(32, '\xff'), up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; i++) up[size_t(i)] = char(i), down[size_t(i)] = char(31 - i);
  CHECK(crc32c(zeros) == 0x8a9136aau);
  CHECK(crc32c(ones) == 0x62a8ab43u);
  CHECK(crc32c(up) == 0x46dd794eu);
  CHECK(crc32c(down) == 0x113fdb5cu);
  CHECK(crc32c("123456789") == 0xe3069283u);
  CHECK(crc32c("") == 0u);
  // continuing a CRC over a split buffer gives the CRC of the whole
  CHECK(crc32c(up.data() + 10, 22, crc32c(up.data(), 10)) == 0x46dd794eu);
}

TEST_CASE("crc32c: the TFRecord mask rotates right by 15 and adds 0xa282ead8") {
  CHECK(crc32c_masked(0u) == 0xa282ead8u);
  CHECK(crc32c_masked(0x00008000u) == 0xa282ead8u + 1u);  // bit 15 rotates to bit 0
  CHECK(crc32c_masked(1u) == 0xa282ead8u + (1u << 17));
  CHECK(crc32c_masked(0xffffffffu) == 0xffffffffu + 0xa282ead8u);
}

TEST_CASE("crc32: the ISO-HDLC check value (PNG, gzip)") {
  CHECK(crc32("123456789", 9) == 0xcbf43926u);
  CHECK(crc32("", 0) == 0u);
}

namespace {
uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}
}  // namespace

TEST_CASE("png: signature, chunk CRCs, stored zlib blocks and the pixels back") {
  for (const auto& [h, w, c] : std::vector<std::tuple<int, int, int>>{{3, 5, 1}, {2, 4, 3}, {300, 300, 1}}) {
    std::vector<uint8_t> px(size_t(h) * w * c);
    for (size_t i = 0; i < px.size(); i++) px[i] = uint8_t(i * 7 + 3);
    const std::string png = encode_png(px, h, w, c);
    REQUIRE(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    std::vector<std::string> types;
    std::string idat;
    size_t at = 8;
    while (at < png.size()) {
      const uint32_t n = be32(png, at);
      REQUIRE(at + 12 + n <= png.size());
      const std::string type = png.substr(at + 4, 4);
      CHECK(be32(png, at + 8 + n) == crc32(png.data() + at + 4, 4 + n));
      if (type == "IHDR") {
        CHECK(be32(png, at + 8) == uint32_t(w));
        CHECK(be32(png, at + 12) == uint32_t(h));
        CHECK(png[at + 16] == 8);
        CHECK(png[at + 17] == (c == 1 ? 0 : 2));
      }
      if (type == "IDAT") idat += png.substr(at + 8, n);
      types.push_back(type);
      at += 12 + n;
    }
    CHECK(types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
    // zlib header, then stored blocks (BFINAL on the last), then Adler-32 of the raw rows
    REQUIRE(idat.size() > 6);
    CHECK((uint8_t(idat[0]) * 256 + uint8_t(idat[1])) % 31 == 0);
    std::string raw;
    size_t p = 2;
    bool final = false;
    while (!final) {
      final = idat[p] & 1;
      CHECK((idat[p] & 6) == 0);
      const size_t len = uint8_t(idat[p + 1]) | size_t(uint8_t(idat[p + 2])) << 8;
      const size_t nlen = uint8_t(idat[p + 3]) | size_t(uint8_t(idat[p + 4])) << 8;
      CHECK(len == (~nlen & 0xffff));
      raw += idat.substr(p + 5, len);
      p += 5 + len;
    }
    CHECK(p + 4 == idat.size());
    uint32_t a = 1, b = 0;
    for (unsigned char ch : raw) a = (a + ch) % 65521, b = (b + a) % 65521;
    CHECK(be32(idat, p) == (b << 16 | a));
    const size_t stride = size_t(w) * c;
    REQUIRE(raw.size() == (stride + 1) * size_t(h));
    for (int r = 0; r < h; r++) {
      CHECK(raw[size_t(r) * (stride + 1)] == 0);
      CHECK(raw.compare(size_t(r) * (stride + 1) + 1, stride, reinterpret_cast<const char*>(px.data()) + r * stride,
                        stride) == 0);
    }
  }
  CHECK_THROWS_AS(encode_png({1, 2, 3}, 2, 2, 1), std::invalid_argument);
  CHECK_THROWS_AS(encode_png({}, 0, 2, 1), std::invalid_argument);
}

TEST_CASE("png: palette images carry IHDR colour type 3, the PLTE chunk and the indices") {
  const std::vector<uint8_t> palette = {0, 0, 0, 255, 255, 255, 200, 10, 10};
  const std::vector<uint8_t> idx = {0, 1, 2, 2, 1, 0};
  const std::string png = encode_png_indexed(idx, 2, 3, palette);
  std::vector<std::string> types;
  size_t at = 8;
  while (at < png.size()) {
    const uint32_t n = be32(png, at);
    REQUIRE(at + 12 + n <= png.size());
    const std::string type = png.substr(at + 4, 4);
    CHECK(be32(png, at + 8 + n) == crc32(png.data() + at + 4, 4 + n));
    if (type == "IHDR") {
      CHECK(be32(png, at + 8) == 3u);   // width
      CHECK(be32(png, at + 12) == 2u);  // height
      CHECK(png[at + 17] == 3);         // indexed colour
    }
    if (type == "PLTE") CHECK(png.substr(at + 8, n) == std::string(palette.begin(), palette.end()));
    if (type == "IDAT") {  // one stored block: 2 rows of (filter byte, 3 indices)
      const std::string raw = png.substr(at + 8 + 2 + 5, 8);
      CHECK(raw == std::string("\0\0\1\2\0\2\1\0", 8));
    }
    types.push_back(type);
    at += 12 + n;
  }
  CHECK(types == std::vector<std::string>{"IHDR", "PLTE", "IDAT", "IEND"});
  CHECK_THROWS_AS(encode_png_indexed(idx, 2, 3, {}), std::invalid_argument);
  CHECK_THROWS_AS(encode_png_indexed(idx, 2, 3, {1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(encode_png_indexed(idx, 3, 3, palette), std::invalid_argument);
}
