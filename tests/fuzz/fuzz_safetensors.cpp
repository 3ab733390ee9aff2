// The safetensors reader on arbitrary bytes, as a model checkpoint (read_checkpoint + load_model:
// header, metadata, embedded config, vocabulary, names and shapes) and as a training-state file
// (read_train_state). Accepted files must also read back identically.
#include "fuzz_common.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/run_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string path = attnlab_fuzz::spit("in.safetensors", {reinterpret_cast<const char*>(data), size});
  CheckpointFile ck;
  if (!attnlab_fuzz::user_errors_ok([&] { ck = read_safetensors(path, "checkpoint"); })) return 0;
  // every accepted tensor holds exactly product(shape) values, and the names are listed once each
  attnlab_fuzz::require(ck.order.size() == ck.tensors.size(), "order lists each tensor once");
  for (const auto& [name, t] : ck.tensors) {
    size_t n = 1;
    for (auto d : t.shape) n *= size_t(d);
    attnlab_fuzz::require(n == t.data.size(), "tensor size matches its shape");
  }
  attnlab_fuzz::user_errors_ok([&] { load_model(read_checkpoint(path), path); });
  attnlab_fuzz::user_errors_ok([&] { read_train_state(path); });
  return 0;
}
