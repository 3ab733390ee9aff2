// Tokenizer (see tokenizer.h): a token list (id -> string), its inverse (string -> id), and for
// the chars kind a byte -> id table so encoding is one lookup per byte.
#include "data/tokenizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"
#include "data/bpe.h"

namespace attnlab {

namespace {

// A byte as a person can read it in an error message: 'a', '\n', 0xc3.
std::string show_char(char c) {
  const auto u = uint8_t(c);
  switch (c) {
    case '\n': return "'\\n'";
    case '\r': return "'\\r'";
    case '\t': return "'\\t'";
    case '\'': return "'\\''";
    default: break;
  }
  if (u >= 0x20 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", unsigned(u));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// A token as a person can read it: 'abc', or its bytes when it holds unprintable ones.
std::string show_token(const std::string& t) {
  if (t.size() == 1) return show_char(t[0]);
  for (char c : t)
    if (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f) return fmt::format("token of {} bytes", t.size());
  return fmt::format("'{}'", t);
}

}  // namespace

Tokenizer::Tokenizer() {
  for (int& v : byte_id_) v = -1;
}

const char* Tokenizer::kind_name(Kind kind) {
  return kind == Kind::chars ? "chars" : kind == Kind::symbols ? "symbols" : "bpe";
}

Tokenizer::Kind Tokenizer::parse_kind(const std::string& name) {
  if (name == "chars") return Kind::chars;
  if (name == "symbols") return Kind::symbols;
  if (name == "bpe") return Kind::bpe;
  user_error("tokenizer kind: expected chars, symbols or bpe, got '{}'", name);
}

Tokenizer Tokenizer::from_bpe(const Bpe& model) {
  Tokenizer t;
  t.kind_ = Kind::bpe;
  t.bpe_ = std::make_shared<const Bpe>(model);
  t.tokens_.reserve(model.vocab().size());
  t.index_.reserve(model.vocab().size());
  for (const auto& tok : model.vocab()) t.push(tok);
  return t;
}

Tokenizer Tokenizer::from_bpe_json(std::string_view json, const std::string& what) {
  BpeFile f = bpe_from_json(json, what);
  Tokenizer t = from_bpe(f.model);
  for (auto& [id, content] : f.added)
    if (id >= f.model.size()) t.push(std::move(content));  // in id order, following on (bpe_from_json checks)
  return t;
}

Tokenizer Tokenizer::load_bpe_file(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    user_error("cannot read tokenizer file '{}': {}; make one with `attnlab tokenizer train FILE --vocab-size N -o "
               "{}`", path, errno ? std::strerror(errno) : "cannot open it", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_bpe_json(ss.str(), "tokenizer file '" + path + "'");
}

std::string Tokenizer::to_json() const {
  if (kind_ != Kind::bpe || target_)
    throw std::logic_error("Tokenizer::to_json: only the bpe kind has a JSON file (split: one per side)");
  std::vector<std::pair<int, std::string>> added;
  for (int id = bpe_->size(); id < size(); ++id) added.emplace_back(id, tokens_[size_t(id)]);
  return bpe_to_json(*bpe_, added);
}

Tokenizer Tokenizer::split(const Tokenizer& source, const Tokenizer& target) {
  for (const Tokenizer* t : {&source, &target}) {
    if (t->kind() == Kind::symbols || t->kind() != source.kind() || t->is_split())
      user_error("tokenizer: split vocabularies need two chars or two bpe tokenizers");
    for (int id = 0; id < t->size(); ++id)
      if (t->is_special(id)) user_error("tokenizer: split vocabularies are made before their special tokens");
  }
  Tokenizer t = source;
  t.target_ = std::make_shared<const Tokenizer>(target);
  t.target_offset_ = source.size();
  for (const auto& tok : target.tokens()) t.tokens_.push_back(tok);  // not indexed: encode reads the source side
  return t;
}

std::vector<int> Tokenizer::encode_target(std::string_view text) const {
  if (!target_) return encode(text);
  std::vector<int> ids = target_->encode(text);
  for (int& i : ids) i += target_offset_;
  return ids;
}

bool Tokenizer::operator==(const Tokenizer& o) const {
  if (kind_ != o.kind_ || tokens_ != o.tokens_ || target_offset_ != o.target_offset_) return false;
  if (bool(target_) != bool(o.target_) || (target_ && !(*target_ == *o.target_))) return false;
  if (kind_ != Kind::bpe) return true;
  return bpe_->merges() == o.bpe_->merges() && bpe_->ignore_merges() == o.bpe_->ignore_merges();
}

bool Tokenizer::is_special_name(std::string_view t) {
  if (t.size() < 3 || t.front() != '<' || t.back() != '>') return false;
  for (char c : t)
    if (is_space(c)) return false;
  return true;
}

void Tokenizer::push(std::string token) {
  const int id = int(tokens_.size());
  auto [it, fresh] = index_.emplace(token, id);
  if (!fresh)
    user_error("tokenizer vocabulary has a duplicate {} (at positions {} and {})",
               token.size() == 1 ? "character " + show_char(token[0]) : "token " + show_token(token),
               it->second, id);
  if (token.size() == 1) {
    byte_id_[uint8_t(token[0])] = id;
    if (kind_ == Kind::chars) vocab_.push_back(token[0]);
  }
  tokens_.push_back(std::move(token));
}

Tokenizer Tokenizer::build(std::string_view text) {
  bool seen[256] = {};
  for (char c : text) seen[uint8_t(c)] = true;
  std::string vocab;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) vocab.push_back(char(uint8_t(b)));  // ascending byte order
  return from_vocab(std::move(vocab));
}

Tokenizer Tokenizer::from_vocab(std::string vocab) {
  Tokenizer t;
  for (char c : vocab) t.push(std::string(1, c));
  return t;
}

Tokenizer Tokenizer::symbols(std::vector<std::string> tokens) {
  Tokenizer t;
  t.kind_ = Kind::symbols;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty()) user_error("tokenizer: symbol token {} is empty", i);
    for (char c : tokens[i])
      if (is_space(c)) user_error("tokenizer: symbol token {} ({}) contains whitespace", i, show_token(tokens[i]));
    t.push(std::move(tokens[i]));
  }
  return t;
}

Tokenizer Tokenizer::from_tokens(Kind kind, std::vector<std::string> tokens) {
  if (kind == Kind::symbols) return symbols(std::move(tokens));
  if (kind == Kind::bpe) user_error("tokenizer: a bpe tokenizer is made from its JSON file (merges too), not a token list");
  Tokenizer t;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].size() != 1 && !is_special_name(tokens[i]))
      user_error("tokenizer: chars token {} ({}) is neither one byte nor a special token '<name>'", i,
                 show_token(tokens[i]));
    t.push(std::move(tokens[i]));
  }
  return t;
}

int Tokenizer::add_special(const std::string& name) {
  if (!is_special_name(name))
    user_error("tokenizer: special token {} must look like '<name>' (no whitespace)", show_token(name));
  push(name);
  return size() - 1;
}

bool Tokenizer::is_special(int id) const {
  if (id < 0 || id >= size())
    throw std::out_of_range(fmt::format("token id {} is outside the vocabulary [0, {})", id, size()));
  if (target_) return id >= target_offset_ + target_->size();
  if (kind_ == Kind::bpe && id >= bpe_->size()) return true;
  return is_special_name(tokens_[size_t(id)]);
}

int Tokenizer::find(const std::string& token) const {
  const auto it = index_.find(token);
  return it == index_.end() ? -1 : it->second;
}

bool Tokenizer::contains(char c) const { return byte_id_[uint8_t(c)] >= 0; }

int Tokenizer::id(char c) const {
  const int i = byte_id_[uint8_t(c)];
  if (i < 0)
    user_error("character {} is not in the tokenizer's vocabulary ({} tokens)", show_char(c), tokens_.size());
  return i;
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  if (kind_ == Kind::bpe) {
    bpe_->encode(text, ids);
    return ids;
  }
  if (kind_ == Kind::chars) {
    ids.resize(text.size());
    for (size_t k = 0; k < text.size(); ++k) {
      const int i = byte_id_[uint8_t(text[k])];
      if (i < 0)
        user_error("character {} at offset {} is not in the tokenizer's vocabulary ({} tokens)",
                   show_char(text[k]), k, tokens_.size());
      ids[k] = i;
    }
    return ids;
  }
  size_t k = 0;
  while (k < text.size()) {
    while (k < text.size() && is_space(text[k])) ++k;
    const size_t start = k;
    while (k < text.size() && !is_space(text[k])) ++k;
    if (k == start) break;
    const std::string word(text.substr(start, k - start));
    const auto it = index_.find(word);
    if (it == index_.end())
      user_error("token {} at offset {} is not in the tokenizer's vocabulary ({} tokens)", show_token(word), start,
                 tokens_.size());
    ids.push_back(it->second);
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  for (size_t k = 0; k < ids.size(); ++k) {
    const int i = ids[k];
    if (i < 0 || i >= size())
      throw std::out_of_range(
          fmt::format("token id {} at position {} is outside the vocabulary [0, {})", i, k, size()));
    if (kind_ == Kind::symbols && k > 0) out.push_back(' ');
    out += tokens_[size_t(i)];
  }
  return out;
}

}  // namespace attnlab
