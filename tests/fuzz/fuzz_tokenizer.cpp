// The tokenizers on arbitrary bytes: a char vocabulary built from the text encodes and decodes it
// back; the bytes as an explicit vocabulary (from_vocab) and as a symbol list (split on
// whitespace) are accepted or rejected with a UserError, and the symbol tokenizer round-trips
// the whitespace-normalised text.
#include <sstream>
#include <vector>

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
