// The config loader: the input is a YAML document, and each of its lines that starts with
// "#set " also becomes a --set override (a YAML comment, so the document is unchanged by it).
// An accepted config must dump to YAML that loads back to the same dump.
#include <sstream>
#include <vector>

#include "config/config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#set ", 0) == 0) sets.push_back(line.substr(5));
  Config cfg;
  if (!attnlab_fuzz::user_errors_ok([&] { cfg = load_config_text(text, "fuzz.yaml", sets); })) return 0;
  const std::string dumped = dump_config(cfg);
  Config again;
  const bool ok = attnlab_fuzz::user_errors_ok([&] { again = load_config_text(dumped, "dumped.yaml"); });
  attnlab_fuzz::require(ok, "a dumped config loads");
  attnlab_fuzz::require(dump_config(again) == dumped, "dump(load(dump(c))) == dump(c)");
  return 0;
}
