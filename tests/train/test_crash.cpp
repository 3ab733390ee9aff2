// What a crash, a full disk or a changed data file must not break: SHA-256 against the
// published test vectors, the data hash in the training state, the leftovers a killed
// run leaves for resume to clean, and failed writes under a file-size limit (RLIMIT_FSIZE,
// set in-process and restored) that leave every file as it was.
// The end-to-end versions with real SIGKILLs, a tmpfs and read-only mounts are
// tests/e2e/crash.sh and tests/e2e/crash_errors.sh.
#include <doctest/doctest.h>

#include <cstring>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/run_state.h"
#include "train/trainer.h"
#include "temp_dir.h"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {


std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& s) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Console lines go to train.log only.
TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  return o;
}

// metrics rows without the wall-clock fields
std::vector<std::string> rows_of(const std::string& run) {
  std::vector<std::string> out;
  for (auto row : read_metrics(run + "/metrics.jsonl")) {
    row.erase("elapsed_s");
    row.erase("tokens_per_s");
    out.push_back(row.dump());
  }
  return out;
}

Config tiny(int steps) {
  Config c = load_config_text(R"(
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train: {batch_size: 4, lr: 0.003, warmup_steps: 5, eval_interval: 0, eval_batches: 1,
        log_interval: 3, checkpoint_interval: 5, keep_checkpoints: 2, threads: 1}
)",
                              "test");
  c.train.steps = steps;
  return c;
}

// Sets the soft file-size limit for this process and puts the old one back on scope exit.
// SIGXFSZ is ignored first, so a write past the limit fails with EFBIG.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ignore_file_size_signal();
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit r = old_;
    r.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &r);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &old_); }

 private:
  rlimit old_{};
};

}  // namespace

TEST_CASE("sha256: the FIPS 180-4 test vectors, and files across the read buffer") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // 55, 56 and 64 bytes: the padding boundaries
  CHECK(sha256_hex(std::string(55, 'a')) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(sha256_hex(std::string(56, 'a')) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");

  const std::string dir = test::temp_dir("sha");
  std::string big;
  for (int i = 0; i < 200000; i++) big.push_back(char('a' + i * 7 % 26));  // > the 64 KiB read buffer
  spit(dir + "/big.txt", big);
  CHECK(sha256_file(dir + "/big.txt") == sha256_hex(big));
  CHECK(error_of([&] { sha256_file(dir + "/none.txt"); }) ==
        "cannot read data file '" + dir + "/none.txt': No such file or directory");
  CHECK(error_of([&] { sha256_file(dir); }) == "cannot read data file '" + dir + "': it is a directory");
}

TEST_CASE("data file: its SHA-256 is in the state; a changed file stops the resume, the original resumes") {
  const std::string dir = test::temp_dir("data"), data = dir + "/corpus.txt", run = dir + "/run";
  std::string text;
  for (int i = 0; i < 300; i++) text += (i % 3 ? "to be or not " : "that is it ");
  spit(data, text);
  Config cfg = tiny(10);
  cfg.data.task = "text";
  cfg.data.path = data;
  cfg.data.val_fraction = 0.1;
  TrainOptions stop = quiet();
  stop.stop_after = [](int done) { return done == 5; };
  train(cfg, run, stop);
  const std::string state = run + "/checkpoints/step_0000005.state.safetensors";
  CHECK(read_train_state(state).data_sha256 == sha256_hex(text));

  std::string changed = text;
  std::swap(changed[0], changed[1]);  // same characters, so the vocabulary check alone would pass
  spit(data, changed);
  const std::string e = error_of([&] { resume(run, {}, quiet()); });
  CHECK(e.find("cannot resume '" + run + "': the data file '" + data + "' changed since the run started (SHA-256 " +
               sha256_hex(text) + " in the training state '" + state + "', " + sha256_hex(changed) + " now)") == 0);
  CHECK(e.find("restore that file") != std::string::npos);

  fs::remove(data);
  CHECK(error_of([&] { resume(run, {}, quiet()); }).find("cannot resume '" + run + "': cannot read data file '" + data +
                                             "': No such file or directory") == 0);

  spit(data, text);
  CHECK(resume(run, {}, quiet()).steps == 10);
  CHECK(read_train_state(run + "/checkpoints/step_0000010.state.safetensors").data_sha256 == sha256_hex(text));
}

TEST_CASE("training state: data_sha256 must be 64 lowercase hex digits when present") {
  const std::string dir = test::temp_dir("badsha"), run = dir + "/run";
  Config cfg = tiny(5);
  train(cfg, run, quiet());
  const std::string state = run + "/checkpoints/step_0000005.state.safetensors";
  CHECK(read_train_state(state).data_sha256.empty());  // a generated task records no data file
  CheckpointFile f;
  TrainState st = read_train_state(state, &f);
  // rewrite the state with a malformed hash (tensors as they were)
  std::vector<TensorRef> refs;
  for (const auto& name : f.order) refs.push_back({name, f.tensors.at(name).shape, f.tensors.at(name).data.data()});
  auto meta = f.metadata;
  meta.erase("checksum_fnv1a64");
  meta["data_sha256"] = std::string(64, 'A');
  write_safetensors(state, refs, meta);
  CHECK(error_of([&] { read_train_state(state); }) ==
        "training state '" + state + "': metadata 'data_sha256' is malformed: expected 64 lowercase hex digits, got '" +
            std::string(64, 'A') + "'");
  meta["data_sha256"] = sha256_hex("x");
  write_safetensors(state, refs, meta);
  CHECK(read_train_state(state).data_sha256 == sha256_hex("x"));
}

TEST_CASE("resume: leftovers of a killed save or rotation are removed, and the run ends as a straight one") {
  const std::string dir = test::temp_dir("leftovers"), a = dir + "/a", b = dir + "/b";
  const Config cfg = tiny(20);
  train(cfg, a, quiet());
  TrainOptions stop = quiet();
  stop.stop_after = [](int done) { return done == 10; };
  train(cfg, b, stop);
  const std::string ck = b + "/checkpoints/";
  CHECK(slurp(ck + "latest") == "step_0000010.safetensors\n");
  // what kills at different moments leave: a checkpoint rotated out of `kept` whose removal
  // did not happen (model file only: the state goes first), a save that never reached
  // `latest`, temporary files of atomic writes in both directories
  fs::copy_file(ck + "step_0000005.safetensors", ck + "step_0000001.safetensors");
  fs::copy_file(ck + "step_0000010.state.safetensors", ck + "step_0000015.state.safetensors");
  spit(ck + "step_0000015.safetensors.tmp", "half");
  spit(ck + "latest.tmp", "step_00");
  spit(b + "/metrics.jsonl.tmp", "{\"step\":");
  const TrainSummary s = resume(b, {}, quiet());
  CHECK(s.start_step == 10);
  CHECK(listing(a + "/checkpoints") == listing(b + "/checkpoints"));
  CHECK(rows_of(a) == rows_of(b));
  CHECK_FALSE(fs::exists(b + "/metrics.jsonl.tmp"));
  // the optimizer state: every tensor (moments, RNG state) bit for bit; the metadata holds
  // wall-clock fields, so the files' sizes and bytes may differ
  const CheckpointFile sa = read_safetensors(a + "/checkpoints/step_0000020.state.safetensors", "state a");
  const CheckpointFile sb = read_safetensors(b + "/checkpoints/step_0000020.state.safetensors", "state b");
  CHECK(sa.order == sb.order);
  for (const std::string& name : sa.order) {
    INFO("state tensor " << name);
    REQUIRE(sb.tensors.count(name) == 1);
    CHECK(sa.tensors.at(name).shape == sb.tensors.at(name).shape);
    CHECK(std::memcmp(sa.tensors.at(name).data.data(), sb.tensors.at(name).data.data(),
                      sa.tensors.at(name).data.size() * sizeof(float)) == 0);
  }
  CHECK(read_checkpoint(a + "/checkpoints/step_0000020.safetensors").metadata.at("checksum_fnv1a64") ==
        read_checkpoint(b + "/checkpoints/step_0000020.safetensors").metadata.at("checksum_fnv1a64"));
}

TEST_CASE("full disk: failed atomic writes and metrics appends leave the files as they were") {
  const std::string dir = test::temp_dir("fsize");
  spit(dir + "/f.txt", "old content\n");
  {
    const FileSizeLimit limit(1000);
    const std::string e = error_of([&] { write_file_atomic(dir + "/f.txt", std::string(5000, 'x')); });
    CHECK(e == "cannot write '" + dir +
                   "/f.txt': File too large (writing; the previous version of the file, if any, is unchanged)");
  }
  CHECK(slurp(dir + "/f.txt") == "old content\n");
  CHECK_FALSE(fs::exists(dir + "/f.txt.tmp"));

  MetricsLog log(dir);
  log.append({{"step", 1}, {"split", "train"}, {"loss", 1.5}});
  const std::string before = slurp(log.jsonl_path()), csv_before = slurp(log.csv_path());
  {
    const FileSizeLimit limit(before.size() + 10);  // room for 10 more bytes: the row is longer
    const std::string e = error_of([&] { log.append({{"step", 2}, {"split", "train"}, {"loss", 1.25}}); });
    CHECK(e == "cannot append to '" + log.jsonl_path() + "': File too large");
  }
  CHECK(slurp(log.jsonl_path()) == before);  // no half row
  CHECK(slurp(log.csv_path()) == csv_before);
  log.append({{"step", 2}, {"split", "train"}, {"loss", 1.25}});
  CHECK(read_metrics(log.jsonl_path()).size() == 2);
}

TEST_CASE("full disk: a checkpoint that cannot be written is a clear error; the previous one resumes") {
  const std::string dir = test::temp_dir("ckfull"), a = dir + "/a", b = dir + "/b";
  const Config cfg = tiny(15);
  train(cfg, a, quiet());
  const std::string ck = b + "/checkpoints/";
  std::unique_ptr<FileSizeLimit> limit;
  TrainOptions opts = quiet();
  // after checkpoint 5: a limit above the metrics files, below the state file (~36 KB)
  opts.before_forward = [&](int done, Model&) {
    if (done == 7) limit = std::make_unique<FileSizeLimit>(8000);
  };
  const std::string e = error_of([&] { train(cfg, b, opts); });
  limit.reset();
  CHECK(e == "checkpoint at step 10 not saved: cannot write '" + ck +
                 "step_0000010.state.safetensors': File too large (writing; the previous version of the file, if "
                 "any, is unchanged); the previous checkpoint '" + ck +
                 "step_0000005.safetensors' is intact; once the cause is fixed, continue from it with `attnlab "
                 "train --resume " + b + "`");
  CHECK(slurp(ck + "latest") == "step_0000005.safetensors\n");
  CHECK(listing(b + "/checkpoints") ==
        std::vector<std::string>{"latest", "step_0000005.safetensors", "step_0000005.state.safetensors"});
  // the same with a limit below the metrics file's size: the next row cannot be appended
  TrainOptions rows = quiet();
  rows.before_forward = [&](int done, Model&) {
    if (done == 7) limit = std::make_unique<FileSizeLimit>(100);
  };
  const std::string e2 = error_of([&] { resume(b, {}, rows); });
  limit.reset();
  CHECK(e2 == "cannot append to '" + b + "/metrics.jsonl': File too large; the previous checkpoint '" + ck +
                  "step_0000005.safetensors' is intact; once the cause is fixed, continue from it with `attnlab "
                  "train --resume " + b + "`");
  CHECK(slurp(ck + "latest") == "step_0000005.safetensors\n");
  CHECK(resume(b, {}, quiet()).steps == 15);
  CHECK(listing(a + "/checkpoints") == listing(b + "/checkpoints"));
  CHECK(rows_of(a) == rows_of(b));
  CHECK(read_checkpoint(a + "/checkpoints/step_0000015.safetensors").metadata.at("checksum_fnv1a64") ==
        read_checkpoint(b + "/checkpoints/step_0000015.safetensors").metadata.at("checksum_fnv1a64"));
}
