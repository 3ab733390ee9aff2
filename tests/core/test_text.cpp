// core/text and core/fs: durations in both styles, trimming, whole-line appends.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace fs = std::filesystem;
using namespace attnlab;

TEST_CASE("text: fmt_duration in whole seconds and in tenths agree from a minute on") {
  CHECK(fmt_duration(41.7) == "42s");
  CHECK(fmt_duration(41.7, UnderMinute::tenths) == "41.7s");
  CHECK(fmt_duration(0.04, UnderMinute::tenths) == "0.0s");
  for (double s : {59.6, 185.0, 3599.4, 3725.0, 90061.0})
    CHECK(fmt_duration(s) == fmt_duration(s, UnderMinute::tenths));
  CHECK(fmt_duration(185.0) == "3m05s");
  CHECK(fmt_duration(3725.0) == "1h02m");
  // whole seconds: a negative or non-finite duration (an ETA not known yet) is "?"; tenths print the value
  CHECK(fmt_duration(-1.0) == "?");
  CHECK(fmt_duration(std::nan("")) == "?");
  CHECK(fmt_duration(-1.0, UnderMinute::tenths) == "-1.0s");
}

TEST_CASE("text: trim and read_text") {
  CHECK(trim("  step_0000010.safetensors\n") == "step_0000010.safetensors");
  CHECK(trim(" \t\n") == "");
  CHECK(trim("a b") == "a b");
  const std::string dir = fs::temp_directory_path() / ("attnlab_text_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  CHECK(read_text(dir + "/missing") == "");
  write_file_atomic(dir + "/f", std::string("x\0y", 3));
  CHECK(read_text(dir + "/f") == std::string("x\0y", 3));
  append_line(dir + "/log", "one");
  append_line(dir + "/log", "two");
  CHECK(read_text(dir + "/log") == "one\ntwo\n");
  sync_file(dir + "/log");
  sync_file(dir + "/missing");  // nothing to sync is not an error
  fs::remove_all(dir);
}

TEST_CASE("text: read_lines keeps empty lines, drops the '\\r' of CRLF, and names an unreadable file") {
  const std::string dir = fs::temp_directory_path() / ("attnlab_lines_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  using V = std::vector<std::string>;
  const std::pair<std::string, V> cases[] = {
      {"a\nb\n", {"a", "b"}},            // a final '\n' starts no line
      {"a\nb", {"a", "b"}},              // a last line without '\n' counts
      {"a\r\n\nc\r\n", {"a", "", "c"}},  // CRLF; an empty line is a line
      {"", {}},
      {"\n", {""}},
      {"x\ry\n", {"x\ry"}},            // a '\r' inside a line stays
  };
  for (const auto& [text, lines] : cases) {
    write_file_atomic(dir + "/f", text);
    CHECK(read_lines(dir + "/f", "data.path") == lines);
  }
  CHECK_THROWS_WITH_AS(read_lines(dir + "/missing", "--hyp"), doctest::Contains("--hyp '"), UserError);
  CHECK_THROWS_WITH_AS(read_lines(dir, "data.path"), doctest::Contains("is a directory"), UserError);
  fs::remove_all(dir);
}

TEST_CASE("base64: RFC 4648 section 10 vectors, and back") {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {std::string("\xff\x00\x10", 3), "/wAQ"}};
  for (const auto& [bytes, text] : vectors) {
    CHECK(base64_encode(bytes) == text);
    CHECK(base64_decode(text, "test") == bytes);
  }
  std::string all;
  for (int i = 0; i < 256; i++) all += char(i);
  CHECK(base64_decode(base64_encode(all), "test") == all);
  CHECK_THROWS_AS(base64_decode("Zm9v!", "test"), UserError);
}
