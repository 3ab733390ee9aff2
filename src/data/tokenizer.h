// Character tokenizer: one id per distinct character of the training text.
//
// The vocabulary is the sorted set of bytes seen when it was built, stored as
// a string (id i = vocab()[i]); it is saved with the model, so a checkpoint
// can encode and decode on its own. Text is treated as bytes (UTF-8
// multi-byte characters become several tokens).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace attnlab {

class Tokenizer {
 public:
  Tokenizer() { for (int& v : id_) v = -1; }              // empty vocabulary
  static Tokenizer build(std::string_view text);          // sorted distinct bytes
  static Tokenizer from_vocab(std::string vocab);         // ids in the given order; throws UserError on a duplicate
  const std::string& vocab() const { return vocab_; }
  int size() const { return int(vocab_.size()); }
  bool contains(char c) const { return id_[uint8_t(c)] >= 0; }
  int id(char c) const;                                        // throws UserError naming the character if unknown
  std::vector<int> encode(std::string_view text) const;        // throws UserError on an unknown character
  std::string decode(const std::vector<int>& ids) const;       // ids outside the vocab throw std::out_of_range

 private:
  std::string vocab_;
  int id_[256];
};

}  // namespace attnlab
