// data.task text: a training text file on arbitrary bytes, for a decoder (next-token) and an
// encoder (masked tokens), then a few batches from each split.
#include "data/dataset.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string path = attnlab_fuzz::spit("in.txt", {reinterpret_cast<const char*>(data), size});
  for (const char* kind : {"decoder", "encoder"}) {
    attnlab_fuzz::user_errors_ok([&] {
      const TextDataset ds(path, 0.25, 8, kind);
      Rng rng(1);
      Batch b;
      for (Split s : {Split::train, Split::val}) {
        ds.next_batch(b, 2, 4, s, rng);
        for (int id : b.x) attnlab_fuzz::require(id >= 0 && id < ds.tokenizer().size(), "inputs are token ids");
      }
    });
  }
  return 0;
}
