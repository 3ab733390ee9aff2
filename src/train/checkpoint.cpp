#include "train/checkpoint.h"

#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "model/model.h"

namespace attnlab {

using json = nlohmann::json;

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string params_checksum(const ParamStore& store) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& p : store.all()) h = fnv1a64(p.w.data(), p.numel() * sizeof(float), h);
  return fmt::format("{:016x}", h);
}

std::string write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                              std::map<std::string, std::string> metadata) {
  json header = json::object();
  size_t total = 0;
  for (const auto& t : tensors) {
    size_t n = 1;
    for (auto d : t.shape) n *= size_t(d);
    total += n * sizeof(float);
  }
  std::string bytes;
  bytes.reserve(total);
  for (const auto& t : tensors) {
    size_t n = 1;
    for (auto d : t.shape) n *= size_t(d);
    const size_t begin = bytes.size();
    bytes.append(reinterpret_cast<const char*>(t.data), n * sizeof(float));  // little-endian host
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, bytes.size()}}};
  }
  const std::string checksum = fmt::format("{:016x}", fnv1a64(bytes.data(), bytes.size()));
  metadata["checksum_fnv1a64"] = checksum;
  json meta = json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align the tensor bytes to 8
  std::string out;
  out.reserve(8 + h.size() + bytes.size());
  uint64_t n = h.size();
  for (int i = 0; i < 8; i++) out.push_back(char((n >> (8 * i)) & 0xff));
  out += h;
  out += bytes;
  write_file_atomic(path, out);
  return checksum;
}

void write_checkpoint(const std::string& path, const ParamStore& store,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorRef> refs;
  for (const auto& p : store.all()) refs.push_back({p.name, {p.shape.begin(), p.shape.end()}, p.w.data()});
  write_safetensors(path, refs, metadata);
}

// read_safetensors: src/train/safetensors_reader.cpp (the strict reader)

CheckpointFile read_checkpoint(const std::string& path) {
  CheckpointFile ck = read_safetensors(path, "checkpoint");
  auto fmt_it = ck.metadata.find("format");
  if (fmt_it != ck.metadata.end() && fmt_it->second == "attnlab-train-state")
    user_error("checkpoint '{}': this is a training-state file, not a model checkpoint (use the "
               "step_NNNNNNN.safetensors next to it)",
               path);
  if (fmt_it == ck.metadata.end() || fmt_it->second != "attnlab")
    user_error("checkpoint '{}': not an attnlab checkpoint (metadata.format missing)", path);
  return ck;
}

void load_params(const CheckpointFile& ck, ParamStore& store, const std::string& path) {
  std::set<std::string> used;
  for (auto& p : store.all()) {
    auto it = ck.tensors.find(p.name);
    if (it == ck.tensors.end()) user_error("checkpoint '{}': tensor '{}' is missing", path, p.name);
    std::vector<int64_t> want(p.shape.begin(), p.shape.end());
    if (it->second.shape != want)
      user_error("checkpoint '{}': tensor '{}' has shape [{}], the model expects [{}]", path, p.name,
                 fmt::join(it->second.shape, ", "), fmt::join(want, ", "));
    p.w = it->second.data;
    used.insert(p.name);
  }
  for (const auto& name : ck.order)
    if (!used.count(name)) user_error("checkpoint '{}': unexpected tensor '{}' for this model", path, name);
}

namespace {

// A split tokenizer (data.shared_vocab false) as JSON: {"kind": "chars" | "bpe", "source": SIDE,
// "target": SIDE, "specials": [names after both sides]}; SIDE is the byte values of a chars side
// (numbers: bytes need not be UTF-8) or the `tokenizers` JSON text of a bpe side.
std::string split_tokenizer_json(const Tokenizer& tok) {
  const bool bpe = tok.kind() == Tokenizer::Kind::bpe;
  auto side = [&](int begin, int end) {
    if (bpe) return nlohmann::json(begin == 0 ? Tokenizer::from_bpe(*tok.bpe()).to_json()
                                              : Tokenizer::from_bpe(*tok.target()->bpe()).to_json());
    nlohmann::json bytes = nlohmann::json::array();
    for (int id = begin; id < end; ++id) bytes.push_back(int(uint8_t(tok.tokens()[size_t(id)][0])));
    return bytes;
  };
  const int off = tok.target_offset(), end = off + tok.target()->size();
  nlohmann::json specials = nlohmann::json::array();
  for (int id = end; id < tok.size(); ++id) specials.push_back(tok.tokens()[size_t(id)]);
  return nlohmann::json{{"kind", bpe ? "bpe" : "chars"}, {"source", side(0, off)}, {"target", side(off, end)},
                        {"specials", specials}}.dump();
}

Tokenizer split_tokenizer_from_json(const std::string& text, const std::string& what) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    const bool bpe = j.at("kind").get<std::string>() == "bpe";
    auto side = [&](const nlohmann::json& s) {
      if (bpe) return Tokenizer::from_bpe_json(s.get<std::string>(), what);
      std::string vocab;
      for (const auto& b : s) {
        const int v = b.get<int>();
        if (v < 0 || v > 255) user_error("{}: a byte value {} outside 0..255", what, v);
        vocab.push_back(char(v));
      }
      return Tokenizer::from_vocab(vocab);
    };
    Tokenizer tok = Tokenizer::split(side(j.at("source")), side(j.at("target")));
    for (const auto& s : j.at("specials")) tok.add_special(s.get<std::string>());
    return tok;
  } catch (const nlohmann::json::exception& e) {
    user_error("{}: not a split tokenizer ({})", what, e.what());
  }
}

}  // namespace

std::map<std::string, std::string> model_metadata(const Config& cfg, const Tokenizer& tok, int step,
                                                  int n_classes) {
  std::map<std::string, std::string> m = {{"format", "attnlab"},
                                          {"format_version", std::to_string(kCheckpointFormatVersion)},
                                          {"kind", option_name(cfg.model.kind)},
                                          {"step", std::to_string(step)},
                                          {"config", dump_config(cfg)},
                                          {"n_classes", std::to_string(n_classes)}};
  bool plain_bytes = tok.kind() == Tokenizer::Kind::chars;
  for (const auto& t : tok.tokens()) plain_bytes = plain_bytes && t.size() == 1;
  if (tok.is_split()) {
    m["tokenizer"] = "split";
    m["tokenizer_split"] = split_tokenizer_json(tok);
  } else if (tok.kind() == Tokenizer::Kind::bpe) {
    // the whole `tokenizers` JSON file (merges too), so sample/eval/inspect need no other file
    m["tokenizer"] = "bpe";
    m["tokenizer_json"] = tok.to_json();
  } else if (plain_bytes) {
    // a char vocabulary without special tokens: its bytes as decimal numbers (readable anywhere)
    std::string vb;
    for (unsigned char c : tok.vocab()) vb += (vb.empty() ? "" : ",") + std::to_string(int(c));
    m["tokenizer"] = "char";
    m["vocab_bytes"] = vb;
  } else {
    m["tokenizer"] = Tokenizer::kind_name(tok.kind());
    // a byte >= 0x80 alone is not UTF-8, which JSON strings must be: such a token is its value
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : tok.tokens())
      if (t.size() == 1 && uint8_t(t[0]) >= 0x80) list.push_back(int(uint8_t(t[0])));
      else list.push_back(t);
    m["vocab_tokens"] = list.dump();
  }
  return m;
}

LoadedModel load_model(const std::string& path) { return load_model(read_checkpoint(path), path); }

LoadedModel load_model(const CheckpointFile& ck, const std::string& path) {
  auto need = [&](const char* key) -> const std::string& {
    auto it = ck.metadata.find(key);
    if (it == ck.metadata.end()) user_error("checkpoint '{}': metadata '{}' is missing", path, key);
    return it->second;
  };
  const int version = std::atoi(need("format_version").c_str());
  if (version != kCheckpointFormatVersion)
    user_error("checkpoint '{}': format version {} is not supported (this attnlab reads {})", path, version,
               kCheckpointFormatVersion);
  LoadedModel lm;
  lm.config = load_config_text(need("config"), path + " (embedded config)");
  const std::string& kind = need("tokenizer");
  if (kind == "char") {
    std::string vocab;
    std::stringstream vs(need("vocab_bytes"));
    for (std::string tok; std::getline(vs, tok, ',');) {
      const int b = std::atoi(tok.c_str());
      if (b < 0 || b > 255 || tok.empty()) user_error("checkpoint '{}': bad vocab_bytes", path);
      vocab.push_back(char(b));
    }
    lm.tokenizer = Tokenizer::from_vocab(vocab);
  } else if (kind == "split") {
    lm.tokenizer = split_tokenizer_from_json(need("tokenizer_split"), "checkpoint '" + path + "' (tokenizer_split)");
  } else if (kind == "bpe") {
    lm.tokenizer = Tokenizer::from_bpe_json(need("tokenizer_json"), "checkpoint '" + path + "' (tokenizer_json)");
  } else {
    std::vector<std::string> tokens;
    try {
      for (const auto& t : nlohmann::json::parse(need("vocab_tokens")).get<std::vector<nlohmann::json>>()) {
        if (t.is_number_unsigned() && t.get<unsigned>() <= 255) tokens.emplace_back(1, char(t.get<unsigned>()));
        else tokens.push_back(t.get<std::string>());
      }
    } catch (const nlohmann::json::exception&) {
      user_error("checkpoint '{}': metadata 'vocab_tokens' is not a JSON list of strings (and byte values)", path);
    }
    lm.tokenizer = Tokenizer::from_tokens(Tokenizer::parse_kind(kind), std::move(tokens));
  }
  lm.step = std::atoi(need("step").c_str());
  auto nc = ck.metadata.find("n_classes");
  const int n_classes = nc == ck.metadata.end() ? 0 : std::atoi(nc->second.c_str());
  // Before building the model from the embedded config, a lower bound of its parameters (token
  // embedding, learned positions, the MLPs of the decoder stack) must fit in the tensors the file
  // holds: a file whose config claims a huge model is refused here instead of allocating it.
  {
    const ModelConfig& m = lm.config.model;
    const uint64_t C = uint64_t(m.d_model), V = uint64_t(lm.tokenizer.size());
    uint64_t need = V * C + (m.positions == ModelConfig::Positions::learned ? uint64_t(m.block_size) * C : 0) +
                    (m.mlp ? uint64_t(m.n_layers) * 2 * uint64_t(lm.config.ff_dim()) * C : 0);
    uint64_t have = 0;
    for (const auto& [name, t] : ck.tensors) have += t.data.size();
    if (need > have)
      user_error("checkpoint '{}': the embedded config describes a model of at least {} parameters, but the file "
                 "holds {} values",
                 path, need, have);
  }
  lm.model = std::make_unique<Model>(lm.config.model, lm.tokenizer.size(), 0, n_classes);
  load_params(ck, lm.model->params(), path);
  return lm;
}

}  // namespace attnlab
