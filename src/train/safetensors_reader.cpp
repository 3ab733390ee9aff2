// The safetensors reader (declared in train/checkpoint.h). It accepts only what the format allows
// and turns everything else into one UserError line naming the file (docs/reliability.md, "Strict
// safetensors"):
//   - the 8-byte header length is at most 100,000,000 and fits in the file; it is checked before
//     the header is read, so a lying length costs no memory;
//   - the header is valid UTF-8, starts with '{' and is one JSON object, with no key repeated in
//     any object (nlohmann keeps the last duplicate silently, so a parser callback watches keys);
//   - "__metadata__", if present, maps strings to strings;
//   - every other key is a tensor {"dtype", "shape", "data_offsets"} with no other field; shape and
//     offsets are non-negative integers (not floats, not negative), begin <= end;
//   - dtype is a safetensors dtype, and its byte size times the number of elements equals
//     end - begin (computed without overflow);
//   - sorted by offset, the tensors tile the data section exactly: the first starts at 0, each
//     starts where the previous ends (no hole, no overlap), the last ends at the end of the file.
// attnlab itself reads only F32; another valid dtype is reported as unsupported after the layout
// checks.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "train/checkpoint.h"

namespace attnlab {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Bytes per element of the safetensors dtypes (sub-byte ones are not listed: attnlab reads F32).
int dtype_size(const std::string& d) {
  static const std::pair<const char*, int> table[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},     {"U32", 4},     {"F32", 4},
      {"F64", 8},  {"I64", 8}, {"U64", 8}};
  for (const auto& [name, size] : table)
    if (d == name) return size;
  return 0;
}

// A name from the file as it appears in an error: JSON-quoted (so a newline or a quote in it
// cannot break the one-line message), shortened when long.
std::string shown(const std::string& s) {
  std::string q = json(s).dump(-1, ' ', false, json::error_handler_t::replace);
  if (q.size() > 80) q = q.substr(0, 60) + "...\" (" + std::to_string(s.size()) + " bytes)";
  return q;
}

// Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, no surrogates,
// nothing above U+10FFFF), or npos.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return i;
    if (i + size_t(len) > s.size()) return i;
    for (int k = 1; k < len; k++) {
      const unsigned char b = s[i + size_t(k)];
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return i;
    }
    i += size_t(len);
  }
  return std::string_view::npos;
}

// A JSON array of non-negative integers (each an unsigned JSON number), or a UserError.
std::vector<uint64_t> unsigned_list(const json& v, const std::string& where, const char* field) {
  if (!v.is_array()) user_error("{}: {} is not a list", where, field);
  std::vector<uint64_t> out;
  for (const auto& e : v) {
    if (!e.is_number_unsigned())
      user_error("{}: {} holds {}, not a non-negative integer", where, field, e.dump(-1, ' ', false,
                                                                                      json::error_handler_t::replace));
    out.push_back(e.get<uint64_t>());
  }
  return out;
}

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// The header as JSON, refusing a key that repeats within one object (at any depth).
json parse_header(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json header;
  try {
    header = json::parse(text.begin(), text.end(), [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) open_objects.emplace_back();
      else if (ev == json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
      else if (ev == json::parse_event_t::key && !open_objects.empty() && duplicate.empty() &&
               !open_objects.back().insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const json::exception& e) {
    user_error("{}: the header is not valid JSON ({})", file, e.what());
  }
  if (!duplicate.empty()) user_error("{}: the header repeats the key {}", file, shown(duplicate));
  if (!header.is_object()) user_error("{}: the header is not a JSON object", file);
  return header;
}

// One tensor's description, checked: known fields and dtype, offsets inside the data section, and
// a size that matches dtype and shape.
Entry read_entry(const std::string& name, const json& t, const std::string& file, uint64_t nbytes) {
  const std::string where = fmt::format("{}: tensor {}", file, shown(name));
  if (!t.is_object()) user_error("{} is not described by an object", where);
  for (auto f = t.begin(); f != t.end(); ++f)
    if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
      user_error("{} has an unknown field {}", where, shown(f.key()));
  for (const char* f : {"dtype", "shape", "data_offsets"})
    if (!t.contains(f)) user_error("{} has no {}", where, f);
  if (!t["dtype"].is_string()) user_error("{}: dtype is not a string", where);
  Entry e;
  e.name = name;
  e.dtype = t["dtype"].get<std::string>();
  const int esize = dtype_size(e.dtype);
  if (esize == 0) user_error("{} has an unknown dtype {}", where, shown(e.dtype));
  const auto dims = unsigned_list(t["shape"], where, "shape");
  const auto off = unsigned_list(t["data_offsets"], where, "data_offsets");
  if (off.size() != 2) user_error("{}: data_offsets must be [begin, end], it has {} numbers", where, off.size());
  e.begin = off[0];
  e.end = off[1];
  if (e.begin > e.end) user_error("{}: data_offsets [{}, {}] end before they begin", where, e.begin, e.end);
  if (e.end > nbytes)
    user_error("{}: data_offsets [{}, {}] reach past the data section ({} bytes; file truncated?)", where,
               e.begin, e.end, nbytes);
  // bytes = esize * prod(dims), with the overflow noted (such a size disagrees with any span)
  const uint64_t span = e.end - e.begin;
  uint64_t bytes = uint64_t(esize);
  bool overflow = false;
  for (uint64_t d : dims) {
    overflow = overflow || d > uint64_t(INT64_MAX) || __builtin_mul_overflow(bytes, d, &bytes);
    e.shape.push_back(int64_t(std::min<uint64_t>(d, uint64_t(INT64_MAX))));
  }
  if (overflow || bytes != span)
    user_error("{}: dtype {} and shape [{}] need {} bytes, data_offsets [{}, {}] hold {}", where, e.dtype,
               fmt::join(dims, ", "), overflow ? std::string("more than 2^64") : std::to_string(bytes), e.begin,
               e.end, span);
  return e;
}

// Sorts the entries into data order and checks that they tile [0, nbytes) exactly.
void check_tiling(std::vector<Entry>& entries, const std::string& file, uint64_t nbytes) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::pair(a.begin, a.end) < std::pair(b.begin, b.end); });
  uint64_t at = 0;
  for (const auto& e : entries) {
    if (e.begin > at)
      user_error("{}: bytes [{}, {}) of the data section belong to no tensor (a hole before tensor {})", file, at,
                 e.begin, shown(e.name));
    if (e.begin < at)
      user_error("{}: tensor {} (data_offsets [{}, {}]) overlaps the tensor before it, which ends at {}", file,
                 shown(e.name), e.begin, e.end, at);
    at = e.end;
  }
  if (at != nbytes)
    user_error("{}: the last {} bytes of the data section belong to no tensor", file, nbytes - at);
}

}  // namespace

CheckpointFile read_safetensors(const std::string& path, const std::string& what) {
  const std::string file = fmt::format("{} '{}'", what, path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) user_error("cannot read {}: it is a directory", file);
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read {}: {}", file, std::strerror(errno));

  unsigned char len[8] = {};
  in.read(reinterpret_cast<char*>(len), 8);
  if (in.gcount() < 8) user_error("{}: truncated (only {} bytes)", file, in.gcount());
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= uint64_t(len[i]) << (8 * i);
  if (n > kMaxHeaderBytes)
    user_error("{}: header length {} is over the format's limit of {} bytes (not a safetensors file?)", file, n,
               kMaxHeaderBytes);
  std::string s;
  {
    std::stringstream ss;
    ss << in.rdbuf();
    s = std::move(ss).str();
  }
  if (n > s.size())
    user_error("{}: header length {} exceeds the file size (truncated, or not a safetensors file)", file, n);
  const std::string_view text(s.data(), size_t(n));
  if (const size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    user_error("{}: the header is not valid UTF-8 (byte {} of the header)", file, bad);
  if (text.empty() || text[0] != '{') user_error("{}: the header is not a JSON object (it must start with '{{')", file);

  const json header = parse_header(text, file);

  const uint64_t nbytes = s.size() - n;
  CheckpointFile ck;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) user_error("{}: __metadata__ is not a JSON object", file);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          user_error("{}: __metadata__ value {} is not a string", file, shown(m.key()));
        ck.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(read_entry(it.key(), *it, file, nbytes));
  }

  check_tiling(entries, file, nbytes);
  for (const auto& e : entries)
    if (e.dtype != "F32")
      user_error("{}: tensor {} has dtype {}; attnlab reads only F32", file, shown(e.name), e.dtype);

  auto sum = ck.metadata.find("checksum_fnv1a64");
  if (sum != ck.metadata.end()) {
    const std::string got = fmt::format("{:016x}", fnv1a64(s.data() + n, size_t(nbytes)));
    if (got != sum->second)
      user_error("{}: checksum mismatch (stored {}, computed {}): the file is corrupt", file,
                 shown(sum->second), got);
  }
  for (auto& e : entries) {
    TensorData td;
    td.shape = e.shape;
    td.data.resize(size_t((e.end - e.begin) / 4));
    if (!td.data.empty()) std::memcpy(td.data.data(), s.data() + n + e.begin, size_t(e.end - e.begin));
    ck.order.push_back(e.name);
    ck.tensors.emplace(e.name, std::move(td));
  }
  return ck;
}

}  // namespace attnlab
