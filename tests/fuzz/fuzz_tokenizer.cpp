// The tokenizers on arbitrary bytes: a char vocabulary built from the text encodes and decodes it
// back; the bytes as an explicit vocabulary (from_vocab) and as a symbol list (split on
// whitespace) are accepted or rejected with a UserError, and the symbol tokenizer round-trips
// the whitespace-normalised text. Byte-level BPE: the pre-tokenizer's pieces cover the input
// exactly, and a fixed model and one trained on the input round-trip it byte for byte (invalid
// UTF-8 included); the trained one survives its JSON file.
#include <sstream>
#include <vector>

#include "data/bpe.h"
#include "data/tokenizer.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnlab;
  const std::string text(reinterpret_cast<const char*>(data), size);
  attnlab_fuzz::user_errors_ok([&] {
    const Tokenizer tok = Tokenizer::build(text);
    attnlab_fuzz::require(tok.decode(tok.encode(text)) == text, "chars: decode(encode(text)) == text");
  });
  attnlab_fuzz::user_errors_ok([&] {
    const Tokenizer tok = Tokenizer::from_vocab(text);
    attnlab_fuzz::require(tok.decode(tok.encode(text)) == text, "from_vocab: decode(encode(vocab)) == vocab");
  });
  {
    static const Tokenizer fixed = Tokenizer::from_bpe(Bpe::train(
        {"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
         "You're all resolved rather to die than to famish? 12 345 caf\xc3\xa9 na\xc3\xafve"},
        330, nullptr));
    attnlab_fuzz::require(fixed.decode(fixed.encode(text)) == text, "bpe: decode(encode(text)) == text");
    std::vector<std::string_view> pieces;
    bpe_pretokenize(text, pieces);
    std::string joined;
    for (auto p : pieces) joined += p;
    attnlab_fuzz::require(joined == text, "bpe: the pre-tokenizer's pieces concatenate to the text");
    const Tokenizer own = Tokenizer::from_bpe(Bpe::train({text}, 256 + 24, nullptr));
    attnlab_fuzz::require(own.decode(own.encode(text)) == text, "bpe (trained on the input): round trip");
    attnlab_fuzz::require(Tokenizer::from_bpe_json(own.to_json(), "fuzz") == own, "bpe: JSON save/load identity");
  }
  std::vector<std::string> words;
  std::istringstream ws(text);
  for (std::string w; ws >> w;) words.push_back(w);
  attnlab_fuzz::user_errors_ok([&] {
    Tokenizer tok = Tokenizer::symbols(words);
    tok.add_special("<pad>");
    attnlab_fuzz::user_errors_ok([&] { tok.encode(text); });
    std::vector<int> ids;
    for (const auto& w : words) ids.push_back(tok.find(w));
    const Tokenizer back = Tokenizer::from_tokens(tok.kind(), tok.tokens());
    attnlab_fuzz::require(back == tok, "symbols: from_tokens(tokens()) == the tokenizer");
    attnlab_fuzz::require(tok.encode(tok.decode(ids)) == ids, "symbols: encode(decode(ids)) == ids");
  });
  return 0;
}
