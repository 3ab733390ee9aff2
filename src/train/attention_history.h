// The attention maps of one fixed held-out example at every evaluation: one line per evaluation
// in RUN_DIR/attention_history.jsonl and one TensorBoard image per attention slot and layer.
//
// The example is fixed for the run: text: the first min(block_size, 64) tokens of the validation
// text; tasks: val example 0's input, cut to 64 tokens. It is run the way `attnlab inspect --dump`
// runs an input, so the maps are the attn_<slot>_L<i>.npy it writes for the same checkpoint and
// text: a decoder or encoder reads the tokens as they are; an encoder_decoder reads them as its
// source and its decoder gets the separator followed by its own greedy output (cut to 64 tokens).
// Line format (docs/tensorboard.md):
//   {"step": 500, "example": {"tokens": [...], "src_tokens": [...] or null},
//    "maps": [{"slot": "decoder_self", "layer": 0, "heads": 4, "rows": 32, "cols": 32,
//              "u8": base64 of heads·rows·cols bytes [head][row][col], round(255·weight)}, ...]}
// A slot whose attention type keeps no weights (attention_weights() empty) has no map.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/dataset.h"
#include "model/model.h"
#include "train/tensorboard.h"

namespace attnlab {

struct AttentionMap {
  std::string slot;  // decoder_self, decoder_cross, encoder_self
  int layer = 0, heads = 0, rows = 0, cols = 0;
  std::vector<float> w;  // [heads, rows, cols]
};

struct AttentionSnapshot {
  std::vector<std::string> tokens;      // query side (the decoder's for encoder_decoder)
  std::vector<std::string> src_tokens;  // encoder_decoder: the source
  bool has_src = false;
  std::vector<AttentionMap> maps;
};

// The fixed example's input ids (empty when the data has no validation example).
std::vector<int> attention_example(const Dataset& data, int block_size);
// One forward pass (no dropout) on `ids`, keeping every attention module's weights.
AttentionSnapshot attention_snapshot(Model& model, const Dataset& data, const std::vector<int>& ids);
nlohmann::ordered_json attention_history_line(int step, const AttentionSnapshot& snap);

// A map as a grayscale image: the heads side by side (head 0 on the left) with a 2-pixel gray
// gap, white = weight 1, black = 0, each cell a square of pixels, as large as makes the image
// 128 pixels high while it stays within about 64 Ki pixels (one byte each in the uncompressed PNG).
struct GrayImage {
  int height = 0, width = 0;
  std::vector<uint8_t> pixels;
};
GrayImage attention_image(const AttentionMap& m);

// RUN_DIR/attention_history.jsonl: appended a line at a time; a resume drops the lines after
// its step, a new run starts it empty.
class AttentionHistory {
 public:
  explicit AttentionHistory(const std::string& run_dir);
  void reset();
  void truncate_after(int step);
  // The maps of the model at `step`: a line in the file and images in `tb`.
  void record(int step, Model& model, const Dataset& data, const Config& cfg, TensorBoardLog& tb);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<int> ids_;
  bool have_ids_ = false;
};

}  // namespace attnlab
