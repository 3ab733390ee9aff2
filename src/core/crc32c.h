// Checksums of byte strings: CRC-32C (Castagnoli, the checksum of TensorBoard's TFRecord framing)
// with the TFRecord mask, and CRC-32 (ISO-HDLC, the checksum of PNG chunks and gzip).
//   crc32c("123456789") = 0xe3069283, crc32("123456789") = 0xcbf43926
// Both are table-driven (one 256-entry table each), reflected, initial value and final xor ~0.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace attnlab {

// CRC-32C of `n` bytes; `crc` continues an earlier value (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
inline uint32_t crc32c(std::string_view s) { return crc32c(s.data(), s.size()); }
// The TFRecord framing stores a rotated CRC-32C plus a constant, so that the checksum of data
// that itself holds checksums is not degenerate: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t crc32c_masked(uint32_t crc);

// CRC-32 (polynomial 0x04c11db7 reflected) of `n` bytes; `crc` continues an earlier value.
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace attnlab
