// Tokenizer: maps text to token ids and back. Three kinds:
//
//  * chars:   every ordinary token is one byte. encode maps the text byte by byte (UTF-8
//             multi-byte characters become several tokens); decode concatenates the tokens.
//             build(text) makes the sorted set of bytes seen; from_vocab(s) keeps the order of s.
//  * symbols: tokens are strings without whitespace ("s17", "k3", "_"). encode splits the text on
//             whitespace and looks each word up; decode joins the tokens with one space.
//  * bpe:     byte-level BPE (data/bpe.h, docs/tokenizer.md): tokens are byte strings; any byte
//             string encodes, and decode(encode(x)) == x. Made by Bpe::train or read from a
//             `tokenizers` JSON file; to_json() writes that file (special tokens become its
//             added_tokens, with the ids after the BPE vocabulary).
//
// Either kind may carry special tokens, appended with add_special: names of the form "<name>"
// ("<mask>", "<sep>"). decode prints them as they are; in the chars kind encode never produces
// them (it is byte by byte), nor in the bpe kind, so a caller that needs one asks find("<mask>").
//
// Split vocabularies (split(source, target), data.shared_vocab false): ids [0, target_offset())
// are the source tokenizer's, [target_offset(), target_offset() + target()->size()) the target
// tokenizer's (the same token strings may appear in both ranges), special tokens follow. encode,
// contains and id read the source side; encode_target the target side (ids offset); decode reads
// both ranges.
//
// tokens() lists every token, index = id. kind() + tokens() describe a tokenizer completely:
// from_tokens(kind, tokens) rebuilds an identical one (checkpoints store exactly these two); a bpe
// tokenizer is described by to_json() instead (its merges too).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnlab {

class Bpe;

class Tokenizer {
 public:
  enum class Kind { chars, symbols, bpe };

  Tokenizer();                                            // empty chars vocabulary
  static Tokenizer build(std::string_view text);          // chars: sorted distinct bytes
  static Tokenizer from_vocab(std::string vocab);         // chars: ids in the given order; UserError on a duplicate
  static Tokenizer symbols(std::vector<std::string> tokens);  // UserError on a duplicate, an empty token,
                                                              // or whitespace inside a token
  // Rebuilds a tokenizer from kind() and tokens(). chars: each token is one byte or a special
  // "<name>"; symbols: as symbols(). UserError on anything else.
  static Tokenizer from_tokens(Kind kind, std::vector<std::string> tokens);
  // bpe: a model (Bpe::train or bpe_from_json), then the added tokens that follow its vocabulary.
  static Tokenizer from_bpe(const Bpe& model);
  // bpe: from the text of a `tokenizers` JSON file / from the file; UserError naming `what` / the
  // path when it is not a byte-level BPE file or is inconsistent.
  static Tokenizer from_bpe_json(std::string_view json, const std::string& what);
  static Tokenizer load_bpe_file(const std::string& path);
  // bpe: the `tokenizers` JSON file of this tokenizer (std::logic_error for the other kinds).
  std::string to_json() const;
  const Bpe* bpe() const { return bpe_.get(); }  // bpe: the model (split: the source side's); else nullptr
  // Disjoint id ranges for the two sides of parallel data: source's ids, then target's (offset by
  // source.size()). Both of one kind (chars or bpe) and without special tokens; UserError otherwise.
  static Tokenizer split(const Tokenizer& source, const Tokenizer& target);
  bool is_split() const { return target_ != nullptr; }
  int target_offset() const { return target_offset_; }     // split: first target id; else 0
  const Tokenizer* target() const { return target_.get(); }  // split: the target side; else nullptr
  // split: the target side's ids of `text` (offset); else encode(text).
  std::vector<int> encode_target(std::string_view text) const;
  static const char* kind_name(Kind kind);              // "chars" | "symbols" | "bpe"
  static Kind parse_kind(const std::string& name);      // UserError on another name

  Kind kind() const { return kind_; }
  int size() const { return int(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

  // Appends the special token `name` (form "<name>", no whitespace) and returns its id.
  // UserError if the name has another form or is already a token.
  int add_special(const std::string& name);
  static bool is_special_name(std::string_view token);  // "<...>", at least 3 chars, no whitespace
  bool is_special(int id) const;                         // id < size(); bpe: every id after the BPE vocabulary
                                                         // (split: after both sides)
  int find(const std::string& token) const;              // its id, or -1

  // chars kind: the ordinary bytes in id order (special tokens left out); symbols kind: empty.
  const std::string& vocab() const { return vocab_; }
  bool contains(char c) const;                            // the one-byte token c exists
  int id(char c) const;                                   // UserError naming the character if unknown
  std::vector<int> encode(std::string_view text) const;   // UserError naming an unknown character/token
  std::string decode(const std::vector<int>& ids) const;  // ids outside the vocab throw std::out_of_range

  bool operator==(const Tokenizer& o) const;  // same kind and tokens (bpe: and merges)

 private:
  void push(std::string token);  // appends; UserError on a duplicate

  Kind kind_ = Kind::chars;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> index_;
  std::string vocab_;  // chars: ordinary bytes in id order
  int byte_id_[256];   // one-byte tokens -> id, -1 if absent
  std::shared_ptr<const Bpe> bpe_;  // bpe kind: the model (its tokens are tokens_[0, bpe_->size()))
  std::shared_ptr<const Tokenizer> target_;  // split: the target side (tokens_ holds a copy of its tokens)
  int target_offset_ = 0;
};

}  // namespace attnlab
