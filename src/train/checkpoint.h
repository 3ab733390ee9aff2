// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes: N, little-endian u64][N bytes: JSON header][raw tensor bytes]
//
// The header maps each tensor name to {"dtype": "F32", "shape": [...],
// "data_offsets": [begin, end]} (offsets into the byte buffer after the
// header) and carries "__metadata__", a string→string map with:
//   format "attnlab", format_version, kind, step, config (the resolved YAML),
//   tokenizer "char", vocab_bytes (comma-separated byte values, id order), or tokenizer "bpe",
//   tokenizer_json (the whole `tokenizers` JSON file, docs/tokenizer.md), or tokenizer
//   "chars"/"symbols", vocab_tokens (a JSON list of the tokens),
//   checksum_fnv1a64 (FNV-1a 64 of the tensor bytes, hex).
// Tensors are written in the model's parameter order; tied weights are stored once.
// Files are written to a temp file, fsynced and renamed: never half-written.
//
// The same container holds the training state next to each checkpoint
// (metadata format "attnlab-train-state", see train/run_state.h); the
// generic write_safetensors / read_safetensors serve both.
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

class Model;

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

// One tensor to write: a view of float32 data (not owned).
struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // product(shape) values, row-major
};

// Writes tensors (in the given order, back to back) plus string metadata atomically; adds
// metadata "checksum_fnv1a64". Returns that checksum (16 hex digits).
std::string write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                              std::map<std::string, std::string> metadata);
// Reads and verifies any safetensors file written above (header, offsets, checksum).
// `what` names the kind of file in errors ("checkpoint", "training state").
CheckpointFile read_safetensors(const std::string& path, const std::string& what);

// Writes the store's parameters plus metadata atomically.
void write_checkpoint(const std::string& path, const ParamStore& store,
                      const std::map<std::string, std::string>& metadata);
// Reads and verifies a file (header, offsets, checksum, metadata.format "attnlab").
// Errors name the file (UserError).
CheckpointFile read_checkpoint(const std::string& path);
// Copies tensors into a store, checking names and shapes match exactly.
void load_params(const CheckpointFile& ck, ParamStore& store, const std::string& path);

// Everything a checkpoint holds, rebuilt: sampling needs nothing else.
struct LoadedModel {
  Config config;
  Tokenizer tokenizer;
  std::unique_ptr<Model> model;
  int step = 0;
};
LoadedModel load_model(const std::string& path);
// The same from a file already read (checks format version, config, vocabulary, names and shapes).
LoadedModel load_model(const CheckpointFile& ck, const std::string& path);
// n_classes: the size of an encoder's classification head (0 = none), needed to rebuild the model.
std::map<std::string, std::string> model_metadata(const Config& cfg, const Tokenizer& tok, int step,
                                                  int n_classes = 0);

uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull);
// The checksum a checkpoint of `store` carries (FNV-1a 64 of all parameters in order, 16 hex digits).
std::string params_checksum(const ParamStore& store);

}  // namespace attnlab
