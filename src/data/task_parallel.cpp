// The `parallel` task (docs/tasks.md): sentence pairs read from files, a seq2seq task like the
// generated ones (same batch layouts, exact match, greedy or beam decoding), but with fixed
// examples instead of a generator.
//
//   files   data.path: one TSV file, "source<TAB>target" per line; or data.src_path + data.tgt_path:
//           one sentence per line, line i of one the translation of line i of the other. Every line
//           must be valid UTF-8 and non-empty (a '\r' before the '\n' is dropped).
//   split   u = mix(FNV-1a(seed, source line bytes)) in [0,1): u < val_fraction -> val, u <
//           2 val_fraction -> test, else train. Equal sources land in the same split. val and test
//           keep their first n_val pairs in file order.
//   tokens  parallel_tokenizer() and parallel_encode() below: THE place that chooses the tokens:
//           data.tokenizer chars (one byte a token, the vocabulary from the train lines; a byte of a
//           val/test line the train lines lack is <unk>) or bpe (data.tokenizer_file), one
//           vocabulary for both sides or (data.shared_vocab false) disjoint source and target id
//           ranges, then <sep> <end> <pad> <unk>. A given tokenizer (a checkpoint's) is used as it is.
//   length  a pair whose source or target is longer than data.max_len tokens is dropped; the
//           count is in describe() (the data: line of train.log).
#include <fmt/format.h>

#include <unordered_map>

#include "core/error.h"
#include "core/text.h"
#include "data/task_gen.h"

namespace attnlab {

namespace {

struct Pair {
  std::string src, tgt;
  int line;
};

// 0 if `s` is valid UTF-8, else the 1-based offset of the first byte that is not
size_t bad_utf8_at(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const unsigned c = p[i];
    const int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + size_t(len) > s.size()) return i + 1;
    unsigned cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      if ((p[i + size_t(k)] & 0xC0) != 0x80) return i + size_t(k) + 1;
      cp = (cp << 6) | (p[i + size_t(k)] & 0x3F);
    }
    static constexpr unsigned min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i + 1;
    i += size_t(len);
  }
  return 0;
}

void check_line(const std::string& text, const std::string& file, size_t line, const char* what) {
  if (text.empty())
    user_error("{}:{}: empty {}: every line needs a sentence; remove the line (in the other side too)", file,
               line + 1, what);
  if (const size_t at = bad_utf8_at(text))
    user_error("{}:{}:{}: invalid UTF-8 at byte {} of the {}; convert the file to UTF-8", file, line + 1, at, at, what);
}

std::vector<Pair> read_pairs(const TaskOptions& o) {
  std::vector<Pair> pairs;
  if (!o.path.empty()) {
    if (!o.src_path.empty() || !o.tgt_path.empty())
      key_error({"data.path", "data.src_path"}, "data.task parallel reads either data.path (a TSV file) or "
                "data.src_path and data.tgt_path, not both; remove one");
    const auto lines = read_lines(o.path, "data.path");
    for (size_t i = 0; i < lines.size(); ++i) {
      const size_t tab = lines[i].find('\t');
      if (tab == std::string::npos)
        user_error("{}:{}: no TAB: data.path is a TSV file, one 'source<TAB>target' pair per line", o.path, i + 1);
      if (lines[i].find('\t', tab + 1) != std::string::npos)
        user_error("{}:{}: more than one TAB: expected exactly one, between source and target", o.path, i + 1);
      pairs.push_back({lines[i].substr(0, tab), lines[i].substr(tab + 1), int(i)});
      check_line(pairs.back().src, o.path, i, "source (before the TAB)");
      check_line(pairs.back().tgt, o.path, i, "target (after the TAB)");
    }
    if (pairs.empty()) user_error("{}: no lines (data.path)", o.path);
    return pairs;
  }
  if (o.src_path.empty() || o.tgt_path.empty())
    key_error({o.src_path.empty() ? "data.src_path" : "data.tgt_path", "data.task"},
              "data.task parallel needs its sentence pairs: data.path (a TSV file, source<TAB>target per line) or "
              "both data.src_path and data.tgt_path (one sentence per line)");
  const auto src = read_lines(o.src_path, "data.src_path"), tgt = read_lines(o.tgt_path, "data.tgt_path");
  if (src.size() != tgt.size())
    user_error("data.src_path '{}' has {} lines but data.tgt_path '{}' has {}: line i of one must be the "
               "translation of line i of the other", o.src_path, src.size(), o.tgt_path, tgt.size());
  if (src.empty()) user_error("{}: no lines (data.src_path)", o.src_path);
  for (size_t i = 0; i < src.size(); ++i) {
    check_line(src[i], o.src_path, i, "line");
    check_line(tgt[i], o.tgt_path, i, "line");
    pairs.push_back({src[i], tgt[i], int(i)});
  }
  return pairs;
}

Split split_of(const std::string& source, uint64_t seed, double val_fraction) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the seed's 8 bytes, then the line's bytes
  for (int i = 0; i < 8; ++i) h = (h ^ ((seed >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  for (unsigned char c : source) h = (h ^ c) * 0x100000001b3ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64's finalizer
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  const double u = double(h >> 11) * (1.0 / 9007199254740992.0);
  return u < val_fraction ? Split::val : u < 2.0 * val_fraction ? Split::test : Split::train;
}

// The tokens of parallel data, the one place that chooses them: the tokenizer (a given one, e.g. a
// checkpoint's, as it is; else chars from the train lines or the BPE of data.tokenizer_file, one
// vocabulary for both sides or, shared_vocab false, one per side in disjoint id ranges, then
// <sep> <end> <pad> <unk>), and the encoding of one side of a pair with it, where a byte a chars
// vocabulary lacks becomes <unk> (counted in *n_unk; BPE reads every byte).
Tokenizer parallel_tokenizer(const TaskOptions& o, const std::vector<const Pair*>& train) {
  if (o.given_tokenizer) return *o.given_tokenizer;
  Tokenizer tok;
  if (o.tokenizer == "bpe") {
    Tokenizer file;
    try {
      file = Tokenizer::load_bpe_file(o.tokenizer_file);
    } catch (const UserError& e) {
      key_error({"data.tokenizer_file"}, "{}", e.what());
    }
    const Tokenizer bpe = Tokenizer::from_bpe(*file.bpe());  // the file's own added tokens are not used
    tok = o.shared_vocab ? bpe : Tokenizer::split(bpe, bpe);
  } else {
    std::string src, tgt;
    for (const Pair* p : train) src += p->src, tgt += p->tgt;
    tok = o.shared_vocab ? Tokenizer::build(src + tgt) : Tokenizer::split(Tokenizer::build(src), Tokenizer::build(tgt));
  }
  for (const char* s : {"<sep>", "<end>", "<pad>", "<unk>"}) tok.add_special(s);
  return tok;
}

std::vector<int> parallel_encode(const Tokenizer& tok, const std::string& text, bool target, long* n_unk) {
  if (tok.kind() == Tokenizer::Kind::bpe) return target ? tok.encode_target(text) : tok.encode(text);
  const Tokenizer& side = target && tok.is_split() ? *tok.target() : tok;
  const int off = target ? tok.target_offset() : 0, unk = tok.find("<unk>");
  std::vector<int> ids;
  ids.reserve(text.size());
  for (char c : text) {
    const bool known = side.contains(c);
    *n_unk += !known;
    ids.push_back(known ? side.id(c) + off : unk);
  }
  return ids;
}

class Parallel : public TaskGen {
 public:
  explicit Parallel(const TaskOptions& o) : o_(o) {
    const std::vector<Pair> pairs = read_pairs(o);
    std::vector<const Pair*> in_split[3];
    for (const Pair& p : pairs) in_split[int(split_of(p.src, o.seed, o.val_fraction))].push_back(&p);
    for (Split s : {Split::train, Split::val, Split::test})
      if (in_split[int(s)].empty())
        key_error({"data.val_fraction"}, "data.task parallel: the {} split of {} ({} line pairs) is empty with "
                  "data.val_fraction {}; give more lines or {} data.val_fraction", s == Split::train ? "train" :
                  s == Split::val ? "val" : "test", files(), pairs.size(), o.val_fraction,
                  s == Split::train ? "lower" : "raise");
    tok = parallel_tokenizer(o, in_split[int(Split::train)]);
    for (const char* name : {"<sep>", "<end>", "<pad>", "<unk>"})
      if (tok.find(name) < 0) user_error("the tokenizer of data.task parallel lacks its special token {}", name);
    sep = tok.find("<sep>");
    end = tok.find("<end>");
    pad = tok.find("<pad>");
    format = TaskFormat::seq2seq;
    length_keys = "data.max_len";
    n_lines_ = long(pairs.size());
    for (Split s : {Split::train, Split::val, Split::test}) {
      auto& out = split_[int(s)];
      for (const Pair* p : in_split[int(s)]) {  // every line is checked, so that `dropped` counts them all
        TaskExample ex;
        ex.input = parallel_encode(tok, p->src, false, &n_unk_);
        ex.output = parallel_encode(tok, p->tgt, true, &n_unk_);
        ex.line = p->line;
        if (int(ex.input.size()) > o.max_len || int(ex.output.size()) > o.max_len) {
          ++dropped_;
          continue;
        }
        if (s != Split::train && int(out.size()) == o.n_val) continue;  // val and test: the first n_val
        max_in = std::max(max_in, int(ex.input.size()));
        max_out = std::max(max_out, int(ex.output.size()));
        targets_[ex.line] = p->tgt;
        answers_.emplace(key_of(ex.input), ex.output);
        out.push_back(std::move(ex));
      }
      if (out.empty())
        key_error({"data.max_len"}, "data.task parallel: every {} pair of {} is longer than data.max_len = {} tokens "
                  "on one side; raise data.max_len", s == Split::train ? "train" : s == Split::val ? "val" : "test",
                  files(), o.max_len);
    }
  }

  void draw(Rng& rng, TaskExample& ex) const override {
    const auto& t = split_[int(Split::train)];
    ex = t[size_t(rng.below(t.size()))];
  }
  uint64_t space() const override { return split_[int(Split::train)].size(); }
  const std::vector<TaskExample>* examples(Split s) const override { return &split_[int(s)]; }
  std::string reference(const TaskExample& ex) const override {
    const auto it = targets_.find(ex.line);
    return it != targets_.end() ? it->second : tok.decode(ex.output);
  }
  std::vector<int> answer(const std::vector<int>& input) const override {
    const auto it = answers_.find(key_of(input));
    if (it == answers_.end()) user_error("'{}' is not a source line of {}", tok.decode(input), files());
    return it->second;
  }
  std::string describe() const override {
    return fmt::format("{}: {} line pairs, train {} / val {} / test {} used, {} dropped (longer than data.max_len "
                       "{} tokens){}, {}",
                       files(), n_lines_, split_[0].size(), split_[1].size(), split_[2].size(), dropped_, o_.max_len,
                       n_unk_ > 0 ? fmt::format(", {} bytes outside the vocabulary read as <unk>", n_unk_)
                                  : std::string(), vocabulary());
  }

 private:
  std::string vocabulary() const {  // "char tokens", "BPE tokens, separate source (N ids) and target (M ids) vocabularies"
    const std::string kind = tok.kind() == Tokenizer::Kind::bpe ? "BPE tokens" : "char tokens";
    if (!tok.is_split()) return kind + ", one vocabulary for both sides";
    return fmt::format("{}, separate source (ids 0..{}) and target (ids {}..{}) vocabularies", kind,
                       tok.target_offset() - 1, tok.target_offset(), tok.target_offset() + tok.target()->size() - 1);
  }
  std::string files() const { return o_.path.empty() ? o_.src_path + " + " + o_.tgt_path : o_.path; }
  static std::string key_of(const std::vector<int>& ids) {
    return std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int));
  }

  TaskOptions o_;
  std::vector<TaskExample> split_[3];  // train, val, test (Split's order)
  std::unordered_map<int, std::string> targets_;  // line -> target text, for BLEU and chrF
  std::unordered_map<std::string, std::vector<int>> answers_;  // source ids -> the first target
  long n_lines_ = 0, dropped_ = 0, n_unk_ = 0;
};

}  // namespace

std::unique_ptr<TaskGen> make_parallel_task(const TaskOptions& o) {
  if (o.name != "parallel") return nullptr;
  return std::make_unique<Parallel>(o);
}

}  // namespace attnlab
