// The strict safetensors reader (src/train/safetensors_reader.cpp): each rule of the format, broken
// on its own in an otherwise valid file, is a UserError that names the file and the defect.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"
#include "train/checkpoint.h"

using namespace attnlab;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string scratch_path(const std::string& name) {
  // one directory per process: CTest runs the test cases of this file in parallel processes
  const fs::path dir = fs::temp_directory_path() / ("attnlab_test_strict_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

// A file of `header` (raw JSON text) and `data`, with the 8-byte length in front.
std::string file_of(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; i++) out.push_back(char((uint64_t(header.size()) >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string write(const std::string& name, const std::string& bytes) {
  const std::string p = scratch_path(name);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  return p;
}

// The error read_safetensors gives for `bytes`, or "" when it accepts them.
std::string error_of(const std::string& bytes) {
  const std::string p = write("t.safetensors", bytes);
  try {
    read_safetensors(p, "checkpoint");
  } catch (const UserError& e) {
    const std::string msg = e.what();
    CHECK(msg.find(p) != std::string::npos);      // names the file
    CHECK(msg.find('\n') == std::string::npos);   // one line
    return msg;
  }
  return "";
}

// Two F32 tensors: a [2] at bytes [0, 8), b [1] at [8, 12).
const std::string kData(12, '\1');
std::string header(const std::string& a_offsets = "[0,8]", const std::string& b_offsets = "[8,12]",
                   const std::string& a_shape = "[2]", const std::string& extra = "") {
  return R"({"a":{"dtype":"F32","shape":)" + a_shape + R"(,"data_offsets":)" + a_offsets +
         R"(},"b":{"dtype":"F32","shape":[1],"data_offsets":)" + b_offsets + "}" + extra + "}";
}

}  // namespace

TEST_CASE("strict safetensors: a valid file reads, in data order, and a written one reads back") {
  CHECK(error_of(file_of(header(), kData)).empty());
  // b first in the data section: still a tiling, and `order` follows the data
  const std::string swapped = R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  const CheckpointFile ck = read_safetensors(write("s.safetensors", file_of(swapped, kData)), "checkpoint");
  CHECK(ck.order == std::vector<std::string>{"b", "a"});
  CHECK(ck.tensors.at("a").data.size() == 2);
  // trailing spaces after the JSON (attnlab pads its headers to 8 bytes) are allowed
  CHECK(error_of(file_of(header() + "   ", kData)).empty());

  const float v[3] = {1.f, 2.f, 3.f};
  const std::string p = scratch_path("w.safetensors");
  write_safetensors(p, {{"x", {3}, v}, {"empty", {0, 4}, v}}, {{"k", "v"}});
  const CheckpointFile back = read_safetensors(p, "checkpoint");
  CHECK(back.tensors.at("x").data == std::vector<float>{1.f, 2.f, 3.f});
  CHECK(back.tensors.at("empty").data.empty());
  CHECK(back.metadata.at("k") == "v");
}

TEST_CASE("strict safetensors: offsets must tile the data section") {
  CHECK(error_of(file_of(header("[0,8]", "[4,8]"), kData)).find("overlaps") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]"), kData + "xxxx")).find("belong to no tensor") !=
        std::string::npos);  // bytes after the last tensor
  CHECK(error_of(file_of(header("[4,12]", "[12,16]"), kData + "xxxx")).find("hole") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[6,10]"), kData)).find("overlaps") != std::string::npos);
  CHECK(error_of(file_of(header("[8,0]", "[8,12]"), kData)).find("end before they begin") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]"), kData.substr(0, 10))).find("past the data section") !=
        std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12,12]"), kData)).find("[begin, end]") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8.0]", "[8,12]"), kData)).find("non-negative integer") != std::string::npos);
  CHECK(error_of(file_of(header("[-8,0]", "[8,12]"), kData)).find("non-negative integer") != std::string::npos);
}

TEST_CASE("strict safetensors: dtype and shape must give the bytes the offsets hold") {
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[3]"), kData)).find("need 12 bytes") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[1000000,1000000]"), kData)).find("need 4000000000000 bytes") !=
        std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[4294967296,4294967296]"), kData)).find("more than 2^64") !=
        std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[-2]"), kData)).find("non-negative integer") != std::string::npos);
  std::string f64 = header();
  f64.replace(f64.find("F32"), 3, "F64");
  CHECK(error_of(file_of(f64, kData)).find("need 16 bytes") != std::string::npos);
  std::string unknown = header();
  unknown.replace(unknown.find("F32"), 3, "F31");
  CHECK(error_of(file_of(unknown, kData)).find("unknown dtype") != std::string::npos);
  // a valid layout in another dtype: readable by others, not by attnlab
  std::string f16 = header("[0,8]", "[8,12]", "[4]");
  f16.replace(f16.find("F32"), 3, "F16");
  CHECK(error_of(file_of(f16, kData)).find("attnlab reads only F32") != std::string::npos);
}

TEST_CASE("strict safetensors: the header is one UTF-8 JSON object without repeated keys, under 100 MB") {
  CHECK(error_of(file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         kData))
            .find("repeats the key \"a\"") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[2]", R"(,"__metadata__":{"k":"1","k":"2"})"), kData))
            .find("repeats the key \"k\"") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[2]", ",\"__metadata__\":{\"k\":\"\xc3\x28\"}"), kData))
            .find("UTF-8") != std::string::npos);
  CHECK(error_of(file_of(header("[0,8]", "[8,12]", "[2]", R"(,"__metadata__":{"k":{"n":"1"}})"), kData))
            .find("__metadata__ value \"k\" is not a string") != std::string::npos);
  CHECK(error_of(file_of(" " + header(), kData)).find("JSON object") != std::string::npos);
  CHECK(error_of(file_of("[]", "")).find("JSON object") != std::string::npos);
  CHECK(error_of(file_of(header().substr(0, 20), kData)).find("not valid JSON") != std::string::npos);
  // a length over the limit is refused from the first 8 bytes, whatever follows
  std::string big = file_of("{}", "");
  const uint64_t n = 100'000'001;
  for (int i = 0; i < 8; i++) big[size_t(i)] = char((n >> (8 * i)) & 0xff);
  CHECK(error_of(big).find("over the format's limit") != std::string::npos);
  // a name with a newline is shown escaped: the error stays on one line
  CHECK(error_of(file_of(R"({"a\nb":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", kData.substr(0, 8)))
            .find(R"("a\nb")") != std::string::npos);
}
