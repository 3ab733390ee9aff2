// A small reader/writer for NumPy .npy files (format versions 1.0, 2.0, 3.0).
//
// File layout (numpy/lib/format.py):
//   "\x93NUMPY" major minor  header_len (uint16 LE for 1.x, uint32 LE for 2.x/3.x)
//   header: a Python dict literal, e.g.
//     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   padded with spaces and ended by '\n' so the data starts on a 64-byte boundary,
//   then the raw elements in C (row-major) order.
//
// Reading accepts the little-endian dtypes '<f4', '<f8', '<i4', '<i8' and the
// one-byte '|u1', '|i1', '|b1'; every value is converted to double (int64 values
// beyond ±2^53 are rejected, as they would not survive the conversion).
// Writing produces '<f4' (version 1.0, or 2.0 if the header would not fit).
// Every problem (missing file, bad magic, unsupported dtype, Fortran order,
// truncated data, ...) throws UserError naming the file and the problem.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab {

struct NpyArray {
  std::vector<int64_t> shape;  // empty = a 0-d scalar (one element)
  std::vector<double> data;    // row-major, numel() values
  std::string descr;           // dtype as stored in the file, e.g. "<f4"

  size_t numel() const;
  std::vector<float> to_float() const;  // data converted to float
};

// Reads a whole .npy file.
NpyArray read_npy(const std::string& path);

// Writes data (row-major, product(shape) values) as '<f4'. The file is written
// to a temporary next to `path` and renamed over it, so readers never see a
// half-written file.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const std::vector<float>& data,
               const std::vector<int64_t>& shape);

}  // namespace attnlab
