// .npy reader/writer; see npy.h for the format and the contract.
#include "core/npy.h"

#include <unistd.h>

#include <atomic>
#include <bit>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <system_error>

#include "core/error.h"

namespace attnlab {

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr size_t kMagicLen = 6;

// ---- little-endian decoding, independent of the host's byte order
uint64_t load_le(const unsigned char* p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

void store_le(unsigned char* p, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; i++) {
    p[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
}

// ---- the header dict: {'key': value, ...} with values 'string', True/False, (int, ...)
struct HeaderValue {
  enum Kind { kString, kBool, kTuple } kind = kString;
  std::string str;
  bool b = false;
  std::vector<int64_t> tuple;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  std::map<std::string, HeaderValue> parse() {
    std::map<std::string, HeaderValue> dict;
    ws();
    expect('{');
    while (true) {
      ws();
      if (peek() == '}') {
        pos_++;
        break;
      }
      const std::string key = quoted();
      ws();
      expect(':');
      ws();
      HeaderValue v = value(key);
      if (!dict.emplace(key, std::move(v)).second) fail(fmt::format("key '{}' appears twice", key));
      ws();
      if (peek() == ',') {
        pos_++;
        continue;
      }
      ws();
      expect('}');
      break;
    }
    ws();
    if (pos_ != s_.size()) fail("unexpected text after the closing '}'");
    return dict;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    user_error("npy file '{}': malformed header ({}) in: {}", path_, what, s_);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) pos_++;
  }
  void expect(char c) {
    if (peek() != c) fail(fmt::format("expected '{}' at offset {}", c, pos_));
    pos_++;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') fail(fmt::format("expected a quoted string at offset {}", pos_));
    pos_++;
    const size_t end = s_.find(q, pos_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  bool word(const char* w) {
    const size_t n = std::strlen(w);
    if (s_.compare(pos_, n, w) == 0) {
      pos_ += n;
      return true;
    }
    return false;
  }
  int64_t integer() {
    const size_t start = pos_;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) pos_++;
    if (pos_ == start) fail(fmt::format("expected a non-negative integer at offset {}", start));
    // numpy may write Python 2 longs as "3L"
    if (peek() == 'L') pos_++;
    const std::string digits = s_.substr(start, pos_ - start);
    if (digits.size() > 18) fail(fmt::format("dimension {} is too large", digits));
    return std::stoll(digits);
  }
  HeaderValue value(const std::string& key) {
    HeaderValue v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = HeaderValue::kString;
      v.str = quoted();
    } else if (word("True")) {
      v.kind = HeaderValue::kBool;
      v.b = true;
    } else if (word("False")) {
      v.kind = HeaderValue::kBool;
      v.b = false;
    } else if (c == '(') {
      pos_++;
      v.kind = HeaderValue::kTuple;
      while (true) {
        ws();
        if (peek() == ')') {
          pos_++;
          break;
        }
        v.tuple.push_back(integer());
        ws();
        if (peek() == ',') {
          pos_++;
          continue;
        }
        expect(')');
        break;
      }
    } else if (c == '[' && key == "descr") {
      user_error("npy file '{}': unsupported dtype (structured arrays are not supported)", path_);
    } else {
      fail(fmt::format("unexpected value for key '{}' at offset {}", key, pos_));
    }
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

enum class Dtype { kF4, kF8, kI4, kI8, kU1, kI1, kB1 };

struct DtypeInfo {
  Dtype type;
  int size;
};

std::optional<DtypeInfo> parse_descr(const std::string& d) {
  // '<' little endian, '|' not applicable (one byte), '=' native (we only run little-endian
  // hosts through numpy-written files, so '=' is treated as little endian for multi-byte types
  // only when the host is little endian)
  const bool host_le = std::endian::native == std::endian::little;
  if (d.size() < 2) return std::nullopt;
  const char order = d[0];
  const std::string t = d.substr(1);
  const bool le = order == '<' || (order == '=' && host_le);
  if (t == "f4" && le) return DtypeInfo{Dtype::kF4, 4};
  if (t == "f8" && le) return DtypeInfo{Dtype::kF8, 8};
  if (t == "i4" && le) return DtypeInfo{Dtype::kI4, 4};
  if (t == "i8" && le) return DtypeInfo{Dtype::kI8, 8};
  if (order == '|' || order == '<' || order == '>' || order == '=') {
    if (t == "u1") return DtypeInfo{Dtype::kU1, 1};
    if (t == "i1") return DtypeInfo{Dtype::kI1, 1};
    if (t == "b1") return DtypeInfo{Dtype::kB1, 1};
  }
  return std::nullopt;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

}  // namespace

size_t NpyArray::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

std::vector<float> NpyArray::to_float() const {
  std::vector<float> out(data.size());
  for (size_t i = 0; i < data.size(); i++) out[i] = static_cast<float>(data[i]);
  return out;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) user_error("npy file '{}': no such file", path);
    user_error("npy file '{}': cannot open for reading", path);
  }
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) user_error("npy file '{}': cannot determine the file size ({})", path, ec.message());

  // preamble: magic (6), version (2), header length (2 or 4)
  unsigned char pre[12] = {};
  if (file_size < 10 || !in.read(reinterpret_cast<char*>(pre), 10))
    user_error("npy file '{}': too short to be a .npy file ({} bytes)", path, file_size);
  if (std::memcmp(pre, kMagic, kMagicLen) != 0)
    user_error("npy file '{}': bad magic (not a .npy file)", path);
  const int major = pre[6], minor = pre[7];
  uint64_t header_len = 0;
  size_t preamble = 10;
  if (major == 1) {
    header_len = load_le(pre + 8, 2);
  } else if (major == 2 || major == 3) {
    if (file_size < 12 || !in.read(reinterpret_cast<char*>(pre + 10), 2))
      user_error("npy file '{}': truncated header", path);
    header_len = load_le(pre + 8, 4);
    preamble = 12;
  } else {
    user_error("npy file '{}': unsupported format version {}.{} (supported: 1.0, 2.0, 3.0)", path,
               major, minor);
  }
  if (preamble + header_len > file_size)
    user_error("npy file '{}': truncated header (header length {} but the file has {} bytes)", path,
               header_len, file_size);
  std::string header(header_len, '\0');
  if (!in.read(header.data(), std::streamsize(header_len)))
    user_error("npy file '{}': truncated header", path);

  const auto dict = HeaderParser(header, path).parse();
  for (const auto& [k, v] : dict)
    if (k != "descr" && k != "fortran_order" && k != "shape")
      user_error("npy file '{}': unexpected header key '{}'", path, k);
  auto get = [&](const char* key, HeaderValue::Kind kind, const char* what) -> const HeaderValue& {
    auto it = dict.find(key);
    if (it == dict.end()) user_error("npy file '{}': header has no '{}'", path, key);
    if (it->second.kind != kind) user_error("npy file '{}': header '{}' is not {}", path, key, what);
    return it->second;
  };
  const std::string descr = get("descr", HeaderValue::kString, "a string").str;
  const bool fortran = get("fortran_order", HeaderValue::kBool, "True or False").b;
  const std::vector<int64_t> shape = get("shape", HeaderValue::kTuple, "a tuple").tuple;

  const auto dt = parse_descr(descr);
  if (!dt)
    user_error("npy file '{}': unsupported dtype '{}' (supported: <f4, <f8, <i4, <i8, |u1, |i1, |b1)",
               path, descr);
  if (fortran)
    user_error("npy file '{}': Fortran-ordered arrays are not supported (save a C-ordered array)",
               path);

  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(d))
      user_error("npy file '{}': shape {} is too large", path, shape_str(shape));
    numel *= uint64_t(d);
  }
  const uint64_t need = numel * uint64_t(dt->size);
  const uint64_t have = file_size - preamble - header_len;
  if (have < need)
    user_error("npy file '{}': truncated data (shape {} of {} needs {} bytes, the file has {})", path,
               shape_str(shape), descr, need, have);
  if (have > need)
    user_error("npy file '{}': {} unexpected bytes after the data (shape {} of {})", path, have - need,
               shape_str(shape), descr);

  std::vector<unsigned char> raw(need);
  if (need > 0 && !in.read(reinterpret_cast<char*>(raw.data()), std::streamsize(need)))
    user_error("npy file '{}': read error in the data", path);

  NpyArray arr;
  arr.shape = shape;
  arr.descr = descr;
  arr.data.resize(numel);
  const unsigned char* p = raw.data();
  for (uint64_t i = 0; i < numel; i++, p += dt->size) {
    double v = 0.0;
    switch (dt->type) {
      case Dtype::kF4: v = std::bit_cast<float>(uint32_t(load_le(p, 4))); break;
      case Dtype::kF8: v = std::bit_cast<double>(load_le(p, 8)); break;
      case Dtype::kI4: v = double(int32_t(uint32_t(load_le(p, 4)))); break;
      case Dtype::kI8: {
        const int64_t x = int64_t(load_le(p, 8));
        constexpr int64_t kExact = int64_t(1) << 53;
        if (x > kExact || x < -kExact)
          user_error("npy file '{}': int64 value {} at index {} cannot be represented exactly", path,
                     x, i);
        v = double(x);
        break;
      }
      case Dtype::kU1: v = double(p[0]); break;
      case Dtype::kI1: v = double(int8_t(p[0])); break;
      case Dtype::kB1: v = p[0] ? 1.0 : 0.0; break;
    }
    arr.data[i] = v;
  }
  return arr;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) user_error("npy file '{}': negative dimension in shape {}", path, shape_str(shape));
    numel *= uint64_t(d);
  }
  if (numel > 0 && data == nullptr) user_error("npy file '{}': no data to write", path);

  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_str(shape) + ", }";
  // version 1.0 has a 10-byte preamble and a 16-bit header length; pad (spaces, then '\n') so the
  // data starts on a 64-byte boundary, as numpy does
  int major = 1;
  size_t preamble = 10;
  size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  if (total - preamble > 0xffff) {
    major = 2;
    preamble = 12;
    total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  }
  const size_t header_len = total - preamble;
  std::string header = dict;
  header.append(header_len - dict.size() - 1, ' ');
  header.push_back('\n');

  std::vector<unsigned char> bytes(total + numel * 4);
  std::memcpy(bytes.data(), kMagic, kMagicLen);
  bytes[6] = static_cast<unsigned char>(major);
  bytes[7] = 0;
  store_le(bytes.data() + 8, header_len, major == 1 ? 2 : 4);
  std::memcpy(bytes.data() + preamble, header.data(), header.size());
  unsigned char* p = bytes.data() + total;
  for (uint64_t i = 0; i < numel; i++, p += 4) store_le(p, std::bit_cast<uint32_t>(data[i]), 4);

  // temp file in the same directory, then an atomic rename over the target
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), counter.fetch_add(1));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) user_error("npy file '{}': cannot open '{}' for writing", path, tmp);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      user_error("npy file '{}': write error (disk full?)", path);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ec2;
    std::filesystem::remove(tmp, ec2);
    user_error("npy file '{}': cannot rename the temporary file into place ({})", path, ec.message());
  }
}

void write_npy(const std::string& path, const std::vector<float>& data,
               const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) write_npy(path, data.data(), shape);  // throws: negative dimension
    numel *= uint64_t(d);
  }
  if (numel != data.size())
    user_error("npy file '{}': shape {} holds {} values but {} were given", path, shape_str(shape),
               numel, data.size());
  write_npy(path, data.data(), shape);
}

}  // namespace attnlab
