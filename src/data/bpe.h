// Byte-level BPE, as GPT-2 (Radford et al. 2019) and the Hugging Face `tokenizers` library do it
// (docs/tokenizer.md):
//
//  1. Pre-tokenizer: the text is split into pieces by GPT-2's pattern
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     (hand-written below, no regex engine). A byte that does not start a valid UTF-8 sequence
//     counts as one character of the "other" class ([^\s\p{L}\p{N}]), so any byte string splits,
//     and the pieces concatenate back to it exactly.
//  2. Each piece is a sequence of bytes; each byte starts as its own token (ids of the 256 bytes).
//  3. Merges: the adjacent pair with the lowest merge rank is merged (the leftmost among equal
//     ranks), repeatedly, until no adjacent pair has a merge (a heap of candidate pairs: O(n log n)
//     per piece). Encoding caches piece -> ids for the duration of one call.
//
// Tokens are byte strings. In the JSON file (the `tokenizers` format) they are written in GPT-2's
// byte-to-unicode alphabet (bpe_byte_char), where every byte is one printable code point.
//
// Training counts the pieces of the corpus, then merges the most frequent adjacent pair again and
// again, updating the pair counts only in the words that held the merged pair. Ties: the highest
// count wins, among equal counts the pair with the smaller (left id, right id). The vocabulary
// starts with the 256 bytes in the alphabet's order (printable ones first, as GPT-2).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace attnlab {

class ProgressMeter;

// Appends the pre-tokenizer's pieces of `text` to `pieces` (views into text).
void bpe_pretokenize(std::string_view text, std::vector<std::string_view>& pieces);

// GPT-2's byte-to-unicode alphabet: the UTF-8 of the code point that stands for byte b.
const std::string& bpe_byte_char(uint8_t b);
std::string bpe_to_alphabet(std::string_view bytes);
// The inverse: false if `s` holds a code point outside the alphabet.
bool bpe_from_alphabet(std::string_view s, std::string& bytes);

class Bpe {
 public:
  // vocab: id -> token bytes (unique, non-empty); merges: rank -> (left id, right id), whose
  // concatenation must be in the vocabulary. ignore_merges: a piece that is itself a token is that
  // token (the `tokenizers` option). Throws UserError naming `what` on an inconsistency.
  Bpe(std::vector<std::string> vocab, std::vector<std::pair<int, int>> merges, bool ignore_merges,
      const std::string& what);

  // Learns merges on `texts` until the vocabulary has `vocab_size` tokens (at least 256: the
  // bytes) or no pair is left. `meter` (may be null) ticks once per merge.
  static Bpe train(const std::vector<std::string_view>& texts, int vocab_size, ProgressMeter* meter);

  const std::vector<std::string>& vocab() const { return vocab_; }
  const std::vector<std::pair<int, int>>& merges() const { return merges_; }
  bool ignore_merges() const { return ignore_merges_; }
  int size() const { return int(vocab_.size()); }

  // Appends the ids of `text`. UserError naming the byte if the vocabulary lacks a byte it holds
  // (a file trained without the whole byte alphabet).
  void encode(std::string_view text, std::vector<int>& ids) const;
  // Appends the ids of one pre-tokenizer piece.
  void encode_piece(std::string_view piece, std::vector<int>& ids) const;

 private:
  std::vector<std::string> vocab_;
  std::vector<std::pair<int, int>> merges_;
  bool ignore_merges_ = false;
  int byte_id_[256];
  std::unordered_map<std::string, int> index_;          // bytes -> id
  std::unordered_map<uint64_t, std::pair<int, int>> merge_of_;  // (left << 32 | right) -> (rank, new id)
};

// Bpe::train on the concatenated pieces of text files, with a progress line on stderr unless
// `quiet` (core/progress.h). UserError naming a file that cannot be read.
Bpe train_bpe_files(const std::vector<std::string>& files, int vocab_size, bool quiet);

// The `tokenizers` JSON file of a byte-level BPE (docs/tokenizer.md). `added` lists the added
// tokens (id, content) that follow or overlap the model's vocabulary.
struct BpeFile {
  Bpe model;
  std::vector<std::pair<int, std::string>> added;
};
std::string bpe_to_json(const Bpe& model, const std::vector<std::pair<int, std::string>>& added);
// Throws UserError naming `what` (a path) when the text is not such a file or is inconsistent.
BpeFile bpe_from_json(std::string_view text, const std::string& what);

}  // namespace attnlab
