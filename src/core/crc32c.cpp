#include "core/crc32c.h"

#include <array>

namespace attnlab {

namespace {

// The byte-at-a-time table of a reflected CRC with polynomial `poly` (bit-reversed form).
std::array<uint32_t, 256> make_table(uint32_t poly) {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t run(const std::array<uint32_t, 256>& t, const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; i++) c = t[(c ^ p[i]) & 0xffu] ^ (c >> 8);
  return ~c;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table(0x82f63b78u);  // Castagnoli 0x1edc6f41 reflected
  return run(table, data, n, crc);
}

uint32_t crc32c_masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table(0xedb88320u);  // 0x04c11db7 reflected
  return run(table, data, n, crc);
}

}  // namespace attnlab
