// .npy reader/writer: round trips, numpy-written files, hand-built headers, and every error path.
#include <doctest/doctest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/npy.h"

namespace fs = std::filesystem;
using namespace attnlab;

namespace {

// A fresh empty directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int n = 0;
    dir = fs::temp_directory_path() /
          ("attnlab_test_npy_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

template <typename T>
std::string le_bytes(const std::vector<T>& v) {
  static_assert(std::endian::native == std::endian::little, "test assumes a little-endian host");
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// A .npy file built by hand: any header text, version 1.x or 2.x, any payload.
std::string make_npy(const std::string& dict, const std::string& payload, int major = 1,
                     const std::string& magic = "\x93NUMPY") {
  const size_t pre = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((pre + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string s = magic;
  s += char(major);
  s += char(0);
  const uint32_t len = uint32_t(header.size());
  s += char(len & 0xff);
  s += char((len >> 8) & 0xff);
  if (major != 1) {
    s += char((len >> 16) & 0xff);
    s += char((len >> 24) & 0xff);
  }
  return s + header + payload;
}

// Expects read_npy(path) to throw UserError whose message names the file and contains `what`.
void check_read_error(const std::string& path, const std::string& what) {
  bool threw = false;
  try {
    read_npy(path);
  } catch (const UserError& e) {
    threw = true;
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  }
  CHECK_MESSAGE(threw, "no UserError for " << path << " (expected: " << what << ")");
}

}  // namespace

TEST_CASE("npy: float32 round trip keeps every bit and the shape") {
  TempDir tmp;
  const std::vector<float> vals = {0.0f, -0.0f, 1.5f, -3.25e-7f, 1e30f,
                                   std::numeric_limits<float>::denorm_min(),
                                   std::numeric_limits<float>::infinity(), 42.0f};
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{8}, {2, 4}, {2, 2, 2}, {1, 8, 1}}) {
    const std::string path = tmp.file("a.npy");
    write_npy(path, vals, shape);
    const NpyArray a = read_npy(path);
    CHECK(a.shape == shape);
    CHECK(a.descr == "<f4");
    REQUIRE(a.numel() == vals.size());
    const std::vector<float> back = a.to_float();
    REQUIRE(back.size() == vals.size());
    for (size_t i = 0; i < vals.size(); i++) {
      CHECK(std::memcmp(&back[i], &vals[i], sizeof(float)) == 0);  // bitwise, incl. -0 and inf
    }
  }
  // NaN survives too
  const std::string path = tmp.file("nan.npy");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  write_npy(path, &nan, {1});
  CHECK(std::isnan(read_npy(path).data.at(0)));
}

TEST_CASE("npy: scalars and empty arrays") {
  TempDir tmp;
  const float x = 7.0f;
  write_npy(tmp.file("s.npy"), &x, {});
  NpyArray s = read_npy(tmp.file("s.npy"));
  CHECK(s.shape.empty());
  CHECK(s.numel() == 1);
  CHECK(s.data == std::vector<double>{7.0});

  write_npy(tmp.file("e.npy"), nullptr, {0, 3});
  NpyArray e = read_npy(tmp.file("e.npy"));
  CHECK(e.shape == std::vector<int64_t>{0, 3});
  CHECK(e.data.empty());
}

TEST_CASE("npy: the written header is what numpy writes") {
  TempDir tmp;
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  write_npy(tmp.file("h.npy"), v, {2, 3});
  const std::string b = read_bytes(tmp.file("h.npy"));
  REQUIRE(b.size() > 10);
  CHECK(b.compare(0, 6, "\x93NUMPY") == 0);
  CHECK(b[6] == 1);
  CHECK(b[7] == 0);
  const size_t hlen = uint8_t(b[8]) | (size_t(uint8_t(b[9])) << 8);
  CHECK((10 + hlen) % 64 == 0);  // data aligned to 64 bytes
  CHECK(b[10 + hlen - 1] == '\n');
  CHECK(b.substr(10, hlen).find("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") == 0);
  CHECK(b.size() == 10 + hlen + v.size() * 4);

  write_npy(tmp.file("one.npy"), v, {6});
  const std::string b1 = read_bytes(tmp.file("one.npy"));
  CHECK(b1.find("'shape': (6,), }") != std::string::npos);  // one-element tuple has a comma
}

TEST_CASE("npy: a header too long for version 1.0 is written as version 2.0") {
  TempDir tmp;
  // 30000 dimensions of size 1: the shape tuple alone is ~90 KB, past 1.0's 16-bit length
  const std::vector<int64_t> shape(30000, 1);
  const float x = 3.5f;
  write_npy(tmp.file("v2.npy"), &x, shape);
  const std::string b = read_bytes(tmp.file("v2.npy"));
  CHECK(b[6] == 2);
  const NpyArray a = read_npy(tmp.file("v2.npy"));
  CHECK(a.shape == shape);
  CHECK(a.data == std::vector<double>{3.5});
}

TEST_CASE("npy: reads float64, int32, int64 and byte dtypes") {
  TempDir tmp;
  const std::vector<double> d = {1.0 / 3.0, -2.5e-300, 1e300};
  write_bytes(tmp.file("f8.npy"),
              make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", le_bytes(d)));
  NpyArray a = read_npy(tmp.file("f8.npy"));
  CHECK(a.descr == "<f8");
  CHECK(a.data == d);  // exact: no detour through float

  const std::vector<int32_t> i4 = {0, -1, 2147483647, -2147483647 - 1};
  write_bytes(tmp.file("i4.npy"),
              make_npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", le_bytes(i4)));
  NpyArray b = read_npy(tmp.file("i4.npy"));
  CHECK(b.shape == std::vector<int64_t>{2, 2});
  CHECK(b.data == std::vector<double>{0, -1, 2147483647.0, -2147483648.0});

  const std::vector<int64_t> i8 = {5, -(int64_t(1) << 53), int64_t(1) << 53};
  write_bytes(tmp.file("i8.npy"),
              make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", le_bytes(i8)));
  CHECK(read_npy(tmp.file("i8.npy")).data ==
        std::vector<double>{5, -9007199254740992.0, 9007199254740992.0});

  write_bytes(tmp.file("u1.npy"),
              make_npy("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
                       std::string("\x00\x01\xff", 3)));
  CHECK(read_npy(tmp.file("u1.npy")).data == std::vector<double>{0, 1, 255});

  write_bytes(tmp.file("b1.npy"),
              make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
                       std::string("\x01\x00", 2)));
  CHECK(read_npy(tmp.file("b1.npy")).data == std::vector<double>{1, 0});
}

TEST_CASE("npy: header variations numpy may produce") {
  TempDir tmp;
  const std::vector<float> v = {1, 2};
  // keys in another order, double quotes, no trailing comma, no spaces, version 2.0, 3.0
  const char* dicts[] = {
      "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
      "{'descr':'<f4','fortran_order':False,'shape':(2,),}",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
  };
  for (const char* dict : dicts) {
    INFO(dict);
    write_bytes(tmp.file("v.npy"), make_npy(dict, le_bytes(v)));
    CHECK(read_npy(tmp.file("v.npy")).data == std::vector<double>{1, 2});
  }
  for (int major : {2, 3}) {
    write_bytes(tmp.file("v.npy"),
                make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", le_bytes(v), major));
    CHECK(read_npy(tmp.file("v.npy")).data == std::vector<double>{1, 2});
  }
}

TEST_CASE("npy: reads files written by numpy (the attention fixtures)") {
  const std::string dir = std::string(ATTNLAB_FIXTURE_DIR) + "/attention/key_padding";
  // int32 mask [3,7]: row 0 keeps everything, row 1 pads the last 3 keys, row 2 pads keys 1 and 3
  const NpyArray keep = read_npy(dir + "/key_keep.npy");
  CHECK(keep.descr == "<i4");
  REQUIRE(keep.shape == std::vector<int64_t>{3, 7});
  const std::vector<double> expect = {1, 1, 1, 1, 1, 1, 1,  //
                                      1, 1, 1, 1, 0, 0, 0,  //
                                      1, 0, 1, 0, 1, 1, 1};
  CHECK(keep.data == expect);
  const NpyArray out = read_npy(dir + "/out.npy");
  CHECK(out.descr == "<f8");
  CHECK(out.shape == std::vector<int64_t>{3, 7, 16});
  const NpyArray w = read_npy(dir + "/w_q.npy");
  CHECK(w.descr == "<f4");
  CHECK(w.shape == std::vector<int64_t>{16, 16});
}

TEST_CASE("npy: writing is atomic and overwrites") {
  TempDir tmp;
  const std::string path = tmp.file("w.npy");
  const std::vector<float> a = {1, 2, 3}, b = {4, 5};
  write_npy(path, a, {3});
  write_npy(path, b, {2});  // replaces the old file
  CHECK(read_npy(path).data == std::vector<double>{4, 5});
  // nothing but the target is left in the directory (no temp files)
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.dir)) {
    CHECK(e.path().filename() == "w.npy");
    files++;
  }
  CHECK(files == 1);
}

TEST_CASE("npy: write errors are UserErrors naming the file") {
  TempDir tmp;
  const std::string path = tmp.file("no_such_dir/x.npy");
  const float x = 1.0f;
  try {
    write_npy(path, &x, {1});
    FAIL("no error for a missing directory");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(tmp.dir / "no_such_dir"));
  CHECK_THROWS_AS(write_npy(tmp.file("neg.npy"), &x, {-1}), UserError);
  CHECK_THROWS_AS(write_npy(tmp.file("size.npy"), std::vector<float>{1, 2, 3}, {2, 2}), UserError);
  CHECK_FALSE(fs::exists(tmp.dir / "neg.npy"));
  CHECK_FALSE(fs::exists(tmp.dir / "size.npy"));
}

TEST_CASE("npy: read errors are UserErrors naming the file and the problem") {
  TempDir tmp;
  const std::vector<float> v2 = {1, 2};
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";

  check_read_error(tmp.file("missing.npy"), "no such file");

  write_bytes(tmp.file("magic.npy"), make_npy(ok_dict, le_bytes(v2), 1, "\x93NUMPZ"));
  check_read_error(tmp.file("magic.npy"), "bad magic");

  write_bytes(tmp.file("short.npy"), "\x93NUM");
  check_read_error(tmp.file("short.npy"), "too short");

  write_bytes(tmp.file("version.npy"), make_npy(ok_dict, le_bytes(v2), 4));
  check_read_error(tmp.file("version.npy"), "unsupported format version 4.0");

  write_bytes(tmp.file("big_endian.npy"),
              make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", le_bytes(v2)));
  check_read_error(tmp.file("big_endian.npy"), "unsupported dtype '>f4'");

  write_bytes(tmp.file("complex.npy"),
              make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", le_bytes(v2)));
  check_read_error(tmp.file("complex.npy"), "unsupported dtype '<c8'");

  write_bytes(tmp.file("struct.npy"),
              make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                       le_bytes(v2)));
  check_read_error(tmp.file("struct.npy"), "unsupported dtype");

  write_bytes(tmp.file("fortran.npy"),
              make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", le_bytes(v2)));
  check_read_error(tmp.file("fortran.npy"), "Fortran");

  write_bytes(tmp.file("trunc.npy"),
              make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", le_bytes(v2)));
  check_read_error(tmp.file("trunc.npy"), "truncated data");

  // the header length points past the end of the file
  std::string cut = make_npy(ok_dict, "");
  cut.resize(40);
  write_bytes(tmp.file("trunc_header.npy"), cut);
  check_read_error(tmp.file("trunc_header.npy"), "truncated header");

  write_bytes(tmp.file("extra.npy"), make_npy(ok_dict, le_bytes(std::vector<float>{1, 2, 3})));
  check_read_error(tmp.file("extra.npy"), "unexpected bytes");

  write_bytes(tmp.file("noshape.npy"),
              make_npy("{'descr': '<f4', 'fortran_order': False}", le_bytes(v2)));
  check_read_error(tmp.file("noshape.npy"), "no 'shape'");

  write_bytes(tmp.file("garbage.npy"), make_npy("{'descr': '<f4', oops}", le_bytes(v2)));
  check_read_error(tmp.file("garbage.npy"), "malformed header");

  write_bytes(tmp.file("negdim.npy"),
              make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", le_bytes(v2)));
  check_read_error(tmp.file("negdim.npy"), "malformed header");

  write_bytes(tmp.file("i8big.npy"),
              make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                       le_bytes(std::vector<int64_t>{(int64_t(1) << 53) + 1})));
  check_read_error(tmp.file("i8big.npy"), "cannot be represented exactly");

  // a directory is not a file
  check_read_error(tmp.dir.string(), "npy file");
}
