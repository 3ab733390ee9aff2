// TaskDataset (see tasks.h): the task registry, split assignment, the fixed val/test sets and
// the batch layouts of the three model kinds. The examples themselves come from the generators
// (task_gen.h).
//
// Split assignment: u = mix(FNV-1a(seed, input token ids)) mapped to [0,1); u < val_fraction ->
// val, u < 2 val_fraction -> test, else train. When the input space is small enough to enumerate
// (<= 2^22 inputs) the val and test shares are counted exactly (and n_val checked against them);
// otherwise their sizes are estimated as val_fraction * |space|, and n_val may use at most a
// quarter of that so that drawing distinct eval inputs by rejection stays fast. Eval sets are
// drawn by rejection from the train distribution with generators derived from the seed alone;
// where that would crawl (n_val above a quarter of an enumerated share) they are picked from the
// enumerated share instead: a stratum uniformly among those with inputs left (by default the
// input length), then an input uniformly within it.
#include "data/tasks.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config/config.h"
#include "core/error.h"
#include "data/task_gen.h"

namespace attnlab {

namespace {

constexpr uint64_t kValStream = 0x76616c5f736574ull;   // "val_set": Rng stream of the val set
constexpr uint64_t kTestStream = 0x746573745f736574ull;  // "test_set"

struct TaskInfo {
  const char* name;
  TaskFormat format;
  std::vector<std::string> keys;  // the data.* options this task's generator reads (besides the split's)
};

const std::vector<TaskInfo>& registry() {
  static const std::vector<TaskInfo> r = {
      {"copy", TaskFormat::seq2seq, {"n_symbols", "min_len", "max_len"}},
      {"reverse", TaskFormat::seq2seq, {"n_symbols", "min_len", "max_len"}},
      {"sort", TaskFormat::seq2seq, {"n_symbols", "min_len", "max_len"}},
      {"addition", TaskFormat::seq2seq, {"n_digits"}},
      {"dates", TaskFormat::seq2seq, {}},
      {"mqar", TaskFormat::labelled, {"n_symbols", "n_pairs", "max_len"}},
      {"needle", TaskFormat::labelled, {"n_symbols", "n_pairs", "max_len"}},
      {"induction", TaskFormat::labelled, {"n_symbols", "min_len", "max_len"}},
      {"parity", TaskFormat::classify, {"min_len", "max_len"}},
      {"balanced_parens", TaskFormat::classify, {"min_len", "max_len"}},
      {"parallel", TaskFormat::seq2seq, {"max_len"}},
  };
  return r;
}

const char* format_words(TaskFormat f) {
  switch (f) {
    case TaskFormat::seq2seq: return "sequence-to-sequence";
    case TaskFormat::labelled: return "per-position labelling";
    default: return "classification";
  }
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a over the 8 seed bytes then 4 little-endian bytes per token id, then a finalizer so the
// top bits are well mixed.
uint64_t input_hash(const std::vector<int>& input, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull;
  constexpr uint64_t prime = 0x100000001b3ull;
  for (int i = 0; i < 8; ++i) {
    h ^= (seed >> (8 * i)) & 0xff;
    h *= prime;
  }
  for (int t : input)
    for (int i = 0; i < 4; ++i) {
      h ^= (uint32_t(t) >> (8 * i)) & 0xff;
      h *= prime;
    }
  return mix64(h);
}

Split bucket(const std::vector<int>& input, uint64_t seed, double val_fraction) {
  const double u = double(input_hash(input, seed) >> 11) * (1.0 / 9007199254740992.0);  // [0,1)
  return u < val_fraction ? Split::val : u < 2.0 * val_fraction ? Split::test : Split::train;
}

std::string key_of(const std::vector<int>& input) {
  return std::string(reinterpret_cast<const char*>(input.data()), input.size() * sizeof(int));
}

std::string show_space(uint64_t s) {
  return s >= kSpaceCap ? std::string("more than 4.6e18") : fmt::format("{}", s);
}

const char* split_name(Split s) { return s == Split::train ? "train" : s == Split::val ? "val" : "test"; }

}  // namespace

TaskDataset::~TaskDataset() = default;
TaskDataset::TaskDataset(TaskDataset&&) noexcept = default;

std::vector<std::string> TaskDataset::names() {
  std::vector<std::string> v;
  for (const auto& t : registry())
    if (std::string(t.name) != "parallel") v.push_back(t.name);  // read from files, not generated
  return v;
}

std::vector<std::string> TaskDataset::option_keys(const std::string& task) {
  for (const auto& t : registry())
    if (task == t.name) return t.keys;
  format_of(task);  // the error for an unknown task
  return {};
}

TaskFormat TaskDataset::format_of(const std::string& task) {
  for (const auto& t : registry())
    if (task == t.name) return t.format;
  std::string all;
  for (const auto& t : registry()) all += (all.empty() ? "" : ", ") + std::string(t.name);
  user_error("data.task: unknown task '{}' (expected text or one of {})", task, all);
}

std::vector<std::string> TaskDataset::kinds_for(const std::string& task) {
  if (task == "text") return {"decoder", "encoder"};
  if (task == "induction") return {"decoder"};  // a bidirectional encoder sees the token it must predict
  switch (format_of(task)) {
    case TaskFormat::seq2seq: return {"decoder", "encoder_decoder"};
    case TaskFormat::labelled: return {"decoder", "encoder"};
    default: return {"encoder"};
  }
}

TaskDataset::TaskDataset(const TaskOptions& opt, const std::string& model_kind, int block_size)
    : opt_(opt), kind_(model_kind), block_size_(block_size) {
  const auto& o = opt_;
  const TaskFormat fmt_ = format_of(o.name);
  if (kind_ != "decoder" && kind_ != "encoder" && kind_ != "encoder_decoder")
    user_error("model.kind must be decoder, encoder or encoder_decoder, got '{}'", kind_);
  const auto kinds = kinds_for(o.name);
  if (std::find(kinds.begin(), kinds.end(), kind_) == kinds.end())
    key_error({"data.task", "model.kind"}, "data.task '{}' is a {} task: it needs model.kind {}{}, got {}", o.name, format_words(fmt_),
               fmt::join(kinds, " or "),
               o.name == "induction" ? " (a bidirectional encoder would see the token it must predict)" : "", kind_);
  if (!(o.val_fraction > 0.0 && o.val_fraction < 0.5))
    key_error({"data.val_fraction"}, "data.val_fraction must be in (0, 0.5) for a synthetic task (val and test each take that share "
               "of the inputs), got {}", o.val_fraction);
  if (o.n_val < 1) key_error({"data.n_val"}, "data.n_val must be at least 1, got {}", o.n_val);

  gen_ = make_string_task(o);
  if (!gen_) gen_ = make_arith_task(o);
  if (!gen_) gen_ = make_recall_task(o);
  if (!gen_) gen_ = make_parallel_task(o);
  ATTNLAB_CHECK(gen_ != nullptr);

  const int need = std::max(batch_T(), batch_S());
  if (block_size_ < need) {
    std::string layout;
    switch (format()) {
      case TaskFormat::seq2seq:
        layout = kind_ == "decoder"
                     ? fmt::format("input up to {} + separator + output up to {} + end token, minus the last "
                                   "token, which the model never reads",
                                   gen_->max_in, gen_->max_out)
                     : fmt::format("source: input up to {}; target: separator + output up to {}", gen_->max_in,
                                   gen_->max_out);
        break;
      case TaskFormat::labelled: layout = fmt::format("input up to {}", gen_->max_in); break;
      case TaskFormat::classify: layout = fmt::format("[CLS] + input up to {}", gen_->max_in); break;
    }
    key_error({"model.block_size", gen_->length_keys}, "data.task '{}' needs model.block_size >= {} for model.kind {} ({}), got {}; raise model.block_size{}",
               o.name, need, kind_, layout, block_size_,
               gen_->length_keys.empty() ? std::string(" (this task's lengths are fixed)")
                                         : " or lower " + gen_->length_keys);
  }
  build_eval_sets();
}

void TaskDataset::build_eval_sets() {
  const auto& o = opt_;
  if (gen_->examples(Split::val)) {  // a file-backed task: its splits are fixed lists
    val_ = *gen_->examples(Split::val);
    test_ = *gen_->examples(Split::test);
    sort_by_length();
    return;
  }
  const uint64_t space = gen_->space();
  const uint64_t n_val = uint64_t(o.n_val);
  const auto space_desc = [&] { return fmt::format("{}: {} inputs", gen_->describe(), show_space(space)); };
  bool pick[2] = {false, false};  // val, test: pick from the enumeration instead of rejection sampling
  if (gen_->enumerable() && space <= kEnumLimit) {
    uint64_t count[3] = {0, 0, 0};  // train, val, test
    gen_->enumerate([&](const TaskExample& ex) { ++count[int(bucket(ex.input, o.seed, o.val_fraction))]; });
    for (Split s : {Split::val, Split::test})
      if (n_val > count[int(s)])
        key_error(
            {"data.n_val", "data.val_fraction"}, "data.n_val = {} is larger than the {} share of the input space: data.val_fraction {} of the "
            "inputs of task {} ({}) holds only {}; lower data.n_val or raise data.val_fraction or the task's size",
            o.n_val, split_name(s), o.val_fraction, o.name, space_desc(), count[int(s)]);
    if (count[0] == 0)
      key_error({"data.val_fraction"}, "data.val_fraction = {} leaves no train inputs for task {} ({}); lower data.val_fraction or "
                 "enlarge the task", o.val_fraction, o.name, space_desc());
    pick[0] = 4 * n_val > count[1];
    pick[1] = 4 * n_val > count[2];
  } else {
    const double expected = o.val_fraction * double(space);
    const double expected_train = (1.0 - 2.0 * o.val_fraction) * double(space);
    if (4.0 * double(n_val) > expected)
      key_error(
          {"data.n_val", "data.val_fraction"}, "data.n_val = {} is too large for task {}: data.val_fraction {} of its inputs ({}) is about {:.0f} "
          "inputs each for val and test, and n_val may be at most a quarter of that; lower data.n_val or raise "
          "data.val_fraction or the task's size",
          o.n_val, o.name, o.val_fraction, space_desc(), expected);
    if (expected_train < 1000.0)
      key_error({"data.val_fraction"}, "data.val_fraction = {} leaves almost no train inputs for task {} (about {:.0f}; {}); lower "
                 "data.val_fraction or enlarge the task", o.val_fraction, o.name, expected_train, space_desc());
  }

  for (Split split : {Split::val, Split::test}) {
    auto& out = split == Split::val ? val_ : test_;
    Rng r = Rng(o.seed).fork(split == Split::val ? kValStream : kTestStream);
    out.clear();
    out.reserve(size_t(n_val));
    if (pick[split == Split::val ? 0 : 1]) {
      std::map<int, std::vector<TaskExample>> strata;
      gen_->enumerate([&](const TaskExample& ex) {
        if (bucket(ex.input, o.seed, o.val_fraction) == split) strata[gen_->stratum(ex)].push_back(ex);
      });
      std::vector<std::vector<TaskExample>*> open;
      for (auto& [k, v] : strata) open.push_back(&v);
      while (out.size() < size_t(n_val)) {
        const size_t k = size_t(r.below(open.size()));
        auto& group = *open[k];
        const size_t j = size_t(r.below(group.size()));
        out.push_back(std::move(group[j]));
        group[j] = std::move(group.back());
        group.pop_back();
        if (group.empty()) {
          open[k] = open.back();
          open.pop_back();
        }
      }
    } else {
      std::unordered_set<std::string> seen;
      seen.reserve(size_t(n_val) * 2);
      const uint64_t max_tries = 1000 * n_val + 1000000;
      TaskExample ex;
      for (uint64_t tries = 0; out.size() < size_t(n_val); ++tries) {
        if (tries == max_tries)
          key_error({"data.n_val", "data.val_fraction"}, "task {}: found only {} distinct {} examples of data.n_val = {} in {} draws; lower data.n_val "
                     "or raise data.val_fraction", o.name, out.size(), split_name(split), o.n_val, max_tries);
        gen_->draw(r, ex);
        if (bucket(ex.input, o.seed, o.val_fraction) != split || !seen.insert(key_of(ex.input)).second) continue;
        out.push_back(ex);
      }
    }
  }
}

TaskFormat TaskDataset::format() const { return gen_->format; }
const Tokenizer& TaskDataset::tokenizer() const { return gen_->tok; }
int TaskDataset::sep_id() const { return gen_->sep; }
int TaskDataset::end_id() const { return gen_->end; }
int TaskDataset::pad_id() const { return gen_->pad; }
int TaskDataset::n_classes() const { return gen_->n_classes; }
int TaskDataset::max_input_len() const { return gen_->max_in; }
int TaskDataset::max_output_len() const { return gen_->max_out; }

std::vector<std::string> TaskDataset::metrics() const {
  switch (format()) {
    case TaskFormat::seq2seq: return {"loss", "ppl", "token_acc", "exact_match", "greedy_token_acc", "bleu", "chrf"};
    case TaskFormat::labelled: return {"loss", "ppl", "label_acc"};
    default: return {"loss", "class_acc"};
  }
}

const std::vector<TaskExample>& TaskDataset::eval_set(Split split) const {
  if (split == Split::train)
    throw std::logic_error("TaskDataset::eval_set: train has no fixed set (use sample_train)");
  return split == Split::val ? val_ : test_;
}

bool TaskDataset::in_split(const std::vector<int>& input, Split split) const {
  if (const auto* fixed = gen_->examples(split))
    return std::any_of(fixed->begin(), fixed->end(), [&](const TaskExample& ex) { return ex.input == input; });
  return bucket(input, opt_.seed, opt_.val_fraction) == split;
}

TaskExample TaskDataset::sample_train(Rng& rng) const {
  TaskExample ex;
  if (gen_->examples(Split::train)) {  // a file-backed task: every example it draws is a train one
    gen_->draw(rng, ex);
    return ex;
  }
  do gen_->draw(rng, ex);  // redraw the whole example until its input is a train input
  while (bucket(ex.input, opt_.seed, opt_.val_fraction) != Split::train);
  return ex;
}

std::vector<int> TaskDataset::answer(const std::vector<int>& input) const {
  if (format() != TaskFormat::seq2seq)
    user_error("task {} is a {} task: it has labels, not an answer sequence", opt_.name, format_words(format()));
  return gen_->answer(input);
}

std::string TaskDataset::show(const std::vector<int>& ids) const { return gen_->tok.decode(ids); }
std::string TaskDataset::reference(const TaskExample& ex) const { return gen_->reference(ex); }

int TaskDataset::batch_T() const {
  switch (format()) {
    case TaskFormat::seq2seq: return kind_ == "decoder" ? gen_->max_in + gen_->max_out + 1 : gen_->max_out + 1;
    case TaskFormat::labelled: return gen_->max_in;
    default: return gen_->max_in + 1;
  }
}

int TaskDataset::batch_S() const { return kind_ == "encoder_decoder" ? gen_->max_in : 0; }

void TaskDataset::add_row(Batch& batch, int b, const TaskExample& ex) const {
  const int T = batch.T;
  int* x = batch.x.data() + size_t(b) * size_t(T);
  const int n_in = int(ex.input.size());
  switch (format()) {
    case TaskFormat::seq2seq: {
      int* y = batch.y.data() + size_t(b) * size_t(T);
      const int n_out = int(ex.output.size());
      if (kind_ == "decoder") {
        // sequence: input sep output end; x = all but the last token; y[i] = token i+1 for i >= n_in
        for (int i = 0; i < n_in; ++i) x[i] = ex.input[size_t(i)];
        x[n_in] = gen_->sep;
        for (int i = 0; i < n_out; ++i) {
          x[n_in + 1 + i] = ex.output[size_t(i)];
          y[n_in + i] = ex.output[size_t(i)];
        }
        y[n_in + n_out] = gen_->end;
        batch.x_len[size_t(b)] = n_in + 1 + n_out;
      } else {  // encoder_decoder
        int* src = batch.src.data() + size_t(b) * size_t(batch.S);
        for (int i = 0; i < n_in; ++i) src[i] = ex.input[size_t(i)];
        batch.src_len[size_t(b)] = n_in;
        x[0] = gen_->sep;
        for (int i = 0; i < n_out; ++i) {
          x[1 + i] = ex.output[size_t(i)];
          y[i] = ex.output[size_t(i)];
        }
        y[n_out] = gen_->end;
        batch.x_len[size_t(b)] = n_out + 1;
      }
      break;
    }
    case TaskFormat::labelled: {
      int* y = batch.y.data() + size_t(b) * size_t(T);
      for (int i = 0; i < n_in; ++i) {
        x[i] = ex.input[size_t(i)];
        y[i] = ex.labels[size_t(i)];
      }
      batch.x_len[size_t(b)] = n_in;
      break;
    }
    case TaskFormat::classify:
      x[0] = gen_->sep;
      for (int i = 0; i < n_in; ++i) x[1 + i] = ex.input[size_t(i)];
      batch.x_len[size_t(b)] = n_in + 1;
      batch.cls[size_t(b)] = ex.cls;
      break;
  }
}

void TaskDataset::next_batch(Batch& batch, int B, int T, Split split, Rng& rng) const {
  ATTNLAB_CHECK(B >= 1 && T >= 1);
  if (T < batch_T())
    user_error("context too short for task {} with model.kind {}: rows need {} tokens, got T = {}; raise "
               "model.block_size{}", opt_.name, kind_, batch_T(), T,
               gen_->length_keys.empty() ? std::string() : " or lower " + gen_->length_keys);
  prepare(batch, B, T, batch_S());
  for (int b = 0; b < B; ++b) {
    if (split == Split::train) {
      add_row(batch, b, sample_train(rng));
    } else {
      const auto& set = eval_set(split);
      add_row(batch, b, set[size_t(rng.below(set.size()))]);
    }
  }
}

void TaskDataset::prepare(Batch& batch, int B, int T, int S) const {
  const bool classify = format() == TaskFormat::classify;
  batch.B = B;
  batch.T = T;
  batch.x.assign(size_t(B) * size_t(T), gen_->pad);
  if (classify)
    batch.y.clear();
  else
    batch.y.assign(size_t(B) * size_t(T), -1);
  batch.x_len.assign(size_t(B), 0);
  batch.S = S;
  if (batch.S > 0) {
    batch.src.assign(size_t(B) * size_t(batch.S), gen_->pad);
    batch.src_len.assign(size_t(B), 0);
  } else {
    batch.src.clear();
    batch.src_len.clear();
  }
  if (classify)
    batch.cls.assign(size_t(B), -1);
  else
    batch.cls.clear();
}

std::string TaskDataset::describe() const {
  const bool fixed = gen_->examples(Split::train) != nullptr;
  return fmt::format("task {} ({}, model.kind {}): {}, {}{}val_fraction {}, val {} / test {} examples, "
                     "vocab {}, rows of {} tokens{}, seed {}",
                     opt_.name, format_words(format()), kind_, gen_->describe(),
                     fixed ? "" : show_space(gen_->space()), fixed ? "" : " possible inputs, ",
                     opt_.val_fraction, val_.size(), test_.size(), gen_->tok.size(), batch_T(),
                     batch_S() > 0 ? fmt::format(" (source {})", batch_S()) : std::string(), opt_.seed);
}

}  // namespace attnlab
