// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][raw tensor bytes]
//
// The header maps each tensor name to {"dtype": "F32", "shape": [...],
// "data_offsets": [begin, end]} (offsets into the byte buffer after the
// header) and carries "__metadata__", a string→string map with:
//   format "attnlab", format_version, kind, step, config (the resolved YAML),
//   tokenizer "char", vocab_bytes (comma-separated byte values, id order),
//   checksum_fnv1a64 (FNV-1a 64 of the tensor bytes, hex).
// Tensors are written in the model's parameter order; tied weights are stored once.
// Files are written to a temp file, fsynced and renamed: never half-written.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/param.h"
#include "data/tokenizer.h"

namespace attnlab {

class DecoderModel;

struct TensorData {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct CheckpointFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::string> order;  // tensor names in file order
  std::map<std::string, TensorData> tensors;
};

constexpr int kCheckpointFormatVersion = 1;

// Writes the store's parameters plus metadata atomically.
void write_checkpoint(const std::string& path, const ParamStore& store,
                      const std::map<std::string, std::string>& metadata);
// Reads and verifies a file (header, offsets, checksum). Errors name the file (UserError).
CheckpointFile read_checkpoint(const std::string& path);
// Copies tensors into a store, checking names and shapes match exactly.
void load_params(const CheckpointFile& ck, ParamStore& store, const std::string& path);

// Everything a checkpoint holds, rebuilt: sampling needs nothing else.
struct LoadedModel {
  Config config;
  CharTokenizer tokenizer;
  std::unique_ptr<DecoderModel> model;
  int step = 0;
};
LoadedModel load_model(const std::string& path);
std::map<std::string, std::string> model_metadata(const Config& cfg, const CharTokenizer& tok, int step);

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);

// Write `content` to `path` atomically (temp file in the same directory, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace attnlab
