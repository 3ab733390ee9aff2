#include "train/run_state.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;

namespace attnlab {

namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

std::string rng_text(const std::array<uint64_t, 4>& s) {
  return fmt::format("{},{},{},{}", s[0], s[1], s[2], s[3]);
}

// Reads the metadata of a state file, each field checked; errors name the file and the field.
class MetaReader {
 public:
  MetaReader(const std::map<std::string, std::string>& m, const std::string& path) : m_(m), path_(path) {}
  const std::string& str(const char* key) const {
    auto it = m_.find(key);
    if (it == m_.end()) user_error("training state '{}': metadata '{}' is missing", path_, key);
    return it->second;
  }
  [[noreturn]] void bad(const char* key, const char* expected) const {
    user_error("training state '{}': metadata '{}' is malformed: expected {}, got '{}'", path_, key, expected,
               str(key));
  }
  long long integer(const char* key, long long lo, long long hi) const {
    const std::string& s = str(key);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) bad(key, "an integer");
    return v;
  }
  uint64_t u64(const std::string& s, const char* key) const {
    errno = 0;
    char* end = nullptr;
    if (s.empty() || s[0] == '-') bad(key, "4 comma-separated unsigned integers");
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (*end != '\0' || errno != 0) bad(key, "4 comma-separated unsigned integers");
    return v;
  }
  std::array<uint64_t, 4> rng(const char* key) const {
    const auto parts = split(str(key), ',');
    if (parts.size() != 4) bad(key, "4 comma-separated unsigned integers");
    std::array<uint64_t, 4> s{};
    for (int i = 0; i < 4; i++) s[i] = u64(parts[i], key);
    if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0) bad(key, "a non-zero generator state");
    return s;
  }
  double real(const char* key) const {
    const std::string& s = str(key);
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) bad(key, "a finite number");
    return v;
  }
  // finite = false also accepts nan / inf (a diverged evaluation is recorded as it was)
  float real_f(const char* key, bool finite = true) const {
    const std::string& s = str(key);
    errno = 0;
    char* end = nullptr;
    const float v = std::strtof(s.c_str(), &end);
    if (s.empty() || *end != '\0' || (finite && !std::isfinite(v)))
      bad(key, finite ? "a finite number" : "a number");
    return v;
  }

 private:
  const std::map<std::string, std::string>& m_;
  const std::string& path_;
};

}  // namespace

std::string state_path_for(const std::string& checkpoint_path) {
  const std::string ext = ".safetensors";
  std::string base = checkpoint_path;
  if (base.size() >= ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0)
    base.resize(base.size() - ext.size());
  return base + ".state.safetensors";
}

void write_train_state(const std::string& path, const TrainState& st, const ParamStore& store,
                       const AdamW& opt) {
  std::vector<TensorRef> refs;
  size_t i = 0;
  for (const auto& p : store.all()) {
    const std::vector<int64_t> shape(p.shape.begin(), p.shape.end());
    refs.push_back({"adam.m." + p.name, shape, opt.m()[i].data()});
    refs.push_back({"adam.v." + p.name, shape, opt.v()[i].data()});
    i++;
  }
  const bool best = st.best_step >= 0;
  std::map<std::string, std::string> meta = {
      {"format", kTrainStateFormat},
      {"format_version", std::to_string(kTrainStateFormatVersion)},
      {"step", std::to_string(st.step)},
      {"optimizer", "adamw"},
      {"optimizer_t", std::to_string(st.optimizer_t)},
      {"rng_data", rng_text(st.rng_data)},
      {"rng_dropout", rng_text(st.rng_dropout)},
      {"best_val_loss", best ? fmt::format("{}", st.best_val_loss) : "none"},
      {"best_step", best ? std::to_string(st.best_step) : "none"},
      {"last_train_loss", fmt::format("{}", st.last_train_loss)},
      {"last_val_loss", fmt::format("{}", st.last_val_loss)},
      {"loss_sum", fmt::format("{}", st.loss_sum)},
      {"loss_count", std::to_string(st.loss_count)},
      {"skipped_steps", std::to_string(st.skipped_steps)},
      {"elapsed_s", fmt::format("{}", st.elapsed_s)},
      {"kept", join(st.kept, ",")},
      {"model_file", st.model_file},
      {"model_checksum_fnv1a64", st.model_checksum},
  };
  if (!st.data_sha256.empty()) meta["data_sha256"] = st.data_sha256;
  write_safetensors(path, refs, std::move(meta));
}

TrainState read_train_state(const std::string& path, CheckpointFile* file) {
  CheckpointFile ck = read_safetensors(path, "training state");
  auto f = ck.metadata.find("format");
  if (f == ck.metadata.end() || f->second != kTrainStateFormat) {
    if (f != ck.metadata.end() && f->second == "attnlab")
      user_error("training state '{}': this is a model checkpoint, not a training-state file", path);
    user_error("training state '{}': not an attnlab training-state file (metadata.format is not '{}')", path,
               kTrainStateFormat);
  }
  const MetaReader r(ck.metadata, path);
  const long long version = r.integer("format_version", 0, 1 << 30);
  if (version != kTrainStateFormatVersion)
    user_error("training state '{}': format version {} is not supported (this attnlab reads {})", path, version,
               kTrainStateFormatVersion);
  if (r.str("optimizer") != "adamw")
    user_error("training state '{}': optimizer '{}' is not supported (expected adamw)", path, r.str("optimizer"));
  TrainState st;
  st.step = int(r.integer("step", 0, INT32_MAX));
  st.optimizer_t = int(r.integer("optimizer_t", 0, st.step));
  st.rng_data = r.rng("rng_data");
  st.rng_dropout = r.rng("rng_dropout");
  if (r.str("best_step") == "none" || r.str("best_val_loss") == "none") {
    if (r.str("best_step") != r.str("best_val_loss")) r.bad("best_step", "'none' exactly when best_val_loss is");
    st.best_step = -1;
  } else {
    st.best_step = int(r.integer("best_step", 0, st.step));
    st.best_val_loss = r.real_f("best_val_loss");
  }
  st.last_train_loss = r.real_f("last_train_loss", false);
  st.last_val_loss = r.real_f("last_val_loss", false);
  st.loss_sum = r.real("loss_sum");
  st.loss_count = int(r.integer("loss_count", 0, st.step));
  st.skipped_steps = int(r.integer("skipped_steps", 0, st.step));
  if (st.optimizer_t + st.skipped_steps != st.step)
    user_error("training state '{}': optimizer_t ({}) + skipped_steps ({}) is not step ({})", path,
               st.optimizer_t, st.skipped_steps, st.step);
  st.elapsed_s = r.real("elapsed_s");
  st.kept = split(r.str("kept"), ',');
  st.model_file = r.str("model_file");
  st.model_checksum = r.str("model_checksum_fnv1a64");
  if (ck.metadata.count("data_sha256")) {  // absent for generated tasks (and in states of older versions)
    st.data_sha256 = r.str("data_sha256");
    bool hex = st.data_sha256.size() == 64;
    for (char c : st.data_sha256) hex = hex && std::isxdigit(uint8_t(c)) && !std::isupper(uint8_t(c));
    if (!hex) r.bad("data_sha256", "64 lowercase hex digits");
  }
  for (const auto& k : st.kept)
    if (k.empty() || k.find('/') != std::string::npos) r.bad("kept", "checkpoint file names");
  if (st.model_file.empty() || st.model_file.find('/') != std::string::npos)
    r.bad("model_file", "a checkpoint file name");
  for (const auto& name : ck.order)
    if (name.rfind("adam.m.", 0) != 0 && name.rfind("adam.v.", 0) != 0)
      user_error("training state '{}': unexpected tensor '{}' (expected adam.m.* and adam.v.*)", path, name);
  if (file) *file = std::move(ck);
  return st;
}

void load_optimizer_state(const CheckpointFile& file, const TrainState& st, const ParamStore& store,
                          AdamW& opt, const std::string& path) {
  std::set<std::string> used;
  size_t i = 0;
  for (const auto& p : store.all()) {
    const std::vector<int64_t> want(p.shape.begin(), p.shape.end());
    for (const char* which : {"m", "v"}) {
      const std::string name = fmt::format("adam.{}.{}", which, p.name);
      auto it = file.tensors.find(name);
      if (it == file.tensors.end()) user_error("training state '{}': tensor '{}' is missing", path, name);
      if (it->second.shape != want)
        user_error("training state '{}': tensor '{}' has shape [{}], the model expects [{}]", path, name,
                   fmt::join(it->second.shape, ", "), fmt::join(want, ", "));
      used.insert(name);
    }
    i++;
  }
  for (const auto& name : file.order)
    if (!used.count(name)) user_error("training state '{}': unexpected tensor '{}' for this model", path, name);
  // all checked: now copy (into the existing buffers: no reallocation)
  i = 0;
  for (const auto& p : store.all()) {
    const auto& m = file.tensors.at("adam.m." + p.name).data;
    const auto& v = file.tensors.at("adam.v." + p.name).data;
    std::copy(m.begin(), m.end(), opt.m()[i].begin());
    std::copy(v.begin(), v.end(), opt.v()[i].begin());
    i++;
  }
  opt.set_t(st.optimizer_t);
}

// ---- SHA-256 (FIPS 180-4), for the data file a run trains on ----

namespace {

class Sha256 {
 public:
  void update(const unsigned char* p, size_t n) {
    total_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t(64) - fill_);
      std::memcpy(buf_ + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == 64) {
        block(buf_);
        fill_ = 0;
      }
    }
  }
  std::string hex() {
    const uint64_t bits = total_ * 8;
    const unsigned char one = 0x80, zero = 0;
    update(&one, 1);
    while (fill_ != 56) update(&zero, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    update(len, 8);
    std::string out;
    for (uint32_t w : h_) out += fmt::format("{:08x}", w);
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void block(const unsigned char* b) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
      w[i] = uint32_t(b[4 * i]) << 24 | uint32_t(b[4 * i + 1]) << 16 | uint32_t(b[4 * i + 2]) << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], bb = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; i++) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = bb;
      bb = a;
      a = t1 + t2;
    }
    h_[0] += a, h_[1] += bb, h_[2] += c, h_[3] += d, h_[4] += e, h_[5] += f, h_[6] += g, h_[7] += h;
  }
  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char buf_[64]{};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  Sha256 h;
  h.update(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return h.hex();
}

std::string sha256_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) user_error("cannot read data file '{}': it is a directory", path);
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read data file '{}': {}", path, errno ? std::strerror(errno) : "cannot open it");
  Sha256 h;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    h.update(reinterpret_cast<const unsigned char*>(buf.data()), size_t(in.gcount()));
  }
  if (in.bad()) user_error("cannot read data file '{}': read error", path);
  return h.hex();
}

}  // namespace attnlab
