// The .npy reader (attention fixtures, --dump outputs read back by tests and tools) on arbitrary bytes.
#include "core/npy.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string path = attnlab_fuzz::spit("in.npy", {reinterpret_cast<const char*>(data), size});
  NpyArray a;
  if (!attnlab_fuzz::user_errors_ok([&] { a = read_npy(path); })) return 0;
  attnlab_fuzz::require(a.numel() == a.data.size(), "data holds numel() values");
  attnlab_fuzz::require(a.to_float().size() == a.data.size(), "to_float keeps the size");
  return 0;
}
