// Character tokenizer (see tokenizer.h): a byte -> id table plus its inverse
// (the vocabulary string).
#include "data/tokenizer.h"

#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"

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

}  // namespace

Tokenizer Tokenizer::build(std::string_view text) {
  bool seen[256] = {};
  for (char c : text) seen[uint8_t(c)] = true;
  std::string vocab;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) vocab.push_back(char(uint8_t(b)));  // ascending byte order
  return from_vocab(std::move(vocab));
}

Tokenizer Tokenizer::from_vocab(std::string vocab) {
  Tokenizer t;  // id_ all -1
  for (size_t i = 0; i < vocab.size(); ++i) {
    const auto u = uint8_t(vocab[i]);
    if (t.id_[u] >= 0)
      user_error("tokenizer vocabulary has a duplicate character {} (at positions {} and {})",
                 show_char(vocab[i]), t.id_[u], i);
    t.id_[u] = int(i);
  }
  t.vocab_ = std::move(vocab);
  return t;
}

int Tokenizer::id(char c) const {
  const int i = id_[uint8_t(c)];
  if (i < 0)
    user_error("character {} is not in the tokenizer's vocabulary ({} characters)", show_char(c),
               vocab_.size());
  return i;
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids(text.size());
  for (size_t k = 0; k < text.size(); ++k) {
    const int i = id_[uint8_t(text[k])];
    if (i < 0)
      user_error("character {} at offset {} is not in the tokenizer's vocabulary ({} characters)",
                 show_char(text[k]), k, vocab_.size());
    ids[k] = i;
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out(ids.size(), '\0');
  for (size_t k = 0; k < ids.size(); ++k) {
    const int i = ids[k];
    if (i < 0 || i >= size())
      throw std::out_of_range(
          fmt::format("token id {} at position {} is outside the vocabulary [0, {})", i, k, size()));
    out[k] = vocab_[size_t(i)];
  }
  return out;
}

}  // namespace attnlab
