// A minimal PNG encoder: 8-bit grayscale or RGB, no interlacing, filter 0 on every row, and the
// image data in uncompressed ("stored") deflate blocks, which every PNG decoder reads. The files
// are about as large as the pixels (plus 5 bytes per 64 KiB): meant for small images such as
// attention maps, where compressing would cost more time than the bytes are worth.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab {

// The PNG file of a `height` × `width` image with `channels` 1 (gray) or 3 (RGB) bytes per pixel,
// row-major. Throws std::invalid_argument when pixels.size() != height·width·channels or a
// dimension is not positive.
std::string encode_png(const std::vector<uint8_t>& pixels, int height, int width, int channels);

// The PNG file of a `height` × `width` image of palette indices (one byte per pixel, row-major)
// with `palette` the RGB triples of up to 256 colours (colour type 3). Throws
// std::invalid_argument on a size mismatch or a palette that is empty, longer than 256 colours or
// not a multiple of 3 bytes.
std::string encode_png_indexed(const std::vector<uint8_t>& indices, int height, int width,
                               const std::vector<uint8_t>& palette);

}  // namespace attnlab
