// Tests for src/data/bpe.*: the GPT-2 pre-tokenizer split, merges by rank, training, exact round
// trips on arbitrary bytes, the tokenizers JSON file, and the bpe kind of Tokenizer / TextDataset.
// (The ids against the `tokenizers` package itself: tests/e2e/bpe_tokenizers.sh.)
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/bpe.h"
#include "data/dataset.h"
#include "data/tokenizer.h"

using namespace attnlab;

namespace {

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string_view> pieces;
  bpe_pretokenize(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

// A model whose vocabulary is the 256 bytes (id = byte) and then the given merges' results.
Bpe byte_model(const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace_back(1, char(b));
  std::vector<std::pair<int, int>> ids;
  auto id_of = [&](const std::string& t) {
    for (size_t i = 0; i < vocab.size(); ++i)
      if (vocab[i] == t) return int(i);
    vocab.push_back(t);
    return int(vocab.size()) - 1;
  };
  for (const auto& [a, b] : merges) {
    const int ia = id_of(a), ib = id_of(b);
    id_of(a + b);
    ids.emplace_back(ia, ib);
  }
  return Bpe(vocab, ids, false, "test");
}

std::vector<std::string> token_strings(const Bpe& m, std::string_view text) {
  std::vector<int> ids;
  m.encode(text, ids);
  std::vector<std::string> out;
  for (int id : ids) out.push_back(m.vocab()[size_t(id)]);
  return out;
}

const char* kText =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n";

}  // namespace

TEST_CASE("bpe pre-tokenizer: contractions, case-sensitive, only at the start of a piece") {
  CHECK(split("I'm can't you'll they've we're he'd it's 'S") ==
        Pieces{"I", "'m", " can", "'t", " you", "'ll", " they", "'ve", " we", "'re", " he", "'d", " it", "'s", " '",
               "S"});
  CHECK(split("ab'sx") == Pieces{"ab", "'s", "x"});
  CHECK(split("''s") == Pieces{"''", "s"});
}

TEST_CASE("bpe pre-tokenizer: letters, digits and other characters, each with one leading space") {
  CHECK(split("abc 123 4five x2") == Pieces{"abc", " 123", " 4", "five", " x", "2"});
  CHECK(split("x!!! ?y") == Pieces{"x", "!!!", " ?", "y"});
  CHECK(split("h\xc3\xa9llo w\xc3\xb6rld \xce\xa9mega") ==
        Pieces{"h\xc3\xa9llo", " w\xc3\xb6rld", " \xce\xa9mega"});                         // héllo wörld Ωmega
  CHECK(split("\xe6\x97\xa5\xe6\x9c\xac x") == Pieces{"\xe6\x97\xa5\xe6\x9c\xac", " x"});  // 日本 x
  CHECK(split("\xd9\xa3\xd9\xa4 7") == Pieces{"\xd9\xa3\xd9\xa4", " 7"});                  // Arabic-Indic digits
}

TEST_CASE("bpe pre-tokenizer: runs of whitespace leave their last character to the next word") {
  CHECK(split("a   b") == Pieces{"a", "  ", " b"});
  CHECK(split("a\n\nb") == Pieces{"a", "\n", "\n", "b"});
  CHECK(split("a\t\tb") == Pieces{"a", "\t", "\t", "b"});
  CHECK(split(" \t a") == Pieces{" \t", " a"});
  CHECK(split("hello  \n") == Pieces{"hello", "  \n"});
  CHECK(split("a  ") == Pieces{"a", "  "});
  CHECK(split("a \xc2\xa0" "b") == Pieces{"a", " ", "\xc2\xa0", "b"});  // no-break space is \s
  CHECK(split("!\x1c!") == Pieces{"!\x1c!"});                            // U+001C is not \s
  CHECK(split("").empty());
}

TEST_CASE("bpe pre-tokenizer: an invalid UTF-8 byte is one 'other' character; pieces cover the text") {
  CHECK(split("a\xff\xfe" "b") == Pieces{"a", "\xff\xfe", "b"});
  CHECK(split("x \xc3") == Pieces{"x", " \xc3"});        // a cut-off sequence
  CHECK(split("\xed\xa0\x80!") == Pieces{"\xed\xa0\x80!"});  // a surrogate's encoding is not valid UTF-8
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string s(size_t(rng() % 64), '\0');
    for (char& c : s) c = char(rng() % 4 == 0 ? rng() % 256 : " a1'\n\xc3\xa9."[rng() % 12]);
    std::string joined;
    for (const auto& p : split(s)) {
      CHECK(!p.empty());
      joined += p;
    }
    CHECK(joined == s);
  }
}

TEST_CASE("bpe alphabet: GPT-2's byte-to-unicode map and back") {
  CHECK(bpe_byte_char('a') == "a");
  CHECK(bpe_byte_char(' ') == "\xc4\xa0");  // Ġ = U+0120
  CHECK(bpe_byte_char('\n') == "\xc4\x8a");  // Ċ = U+010A
  CHECK(bpe_byte_char(0) == "\xc4\x80");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  std::string back;
  REQUIRE(bpe_from_alphabet(bpe_to_alphabet(all), back));
  CHECK(back == all);
  CHECK_FALSE(bpe_from_alphabet(" ", back));  // a space is not in the alphabet (it is Ġ)
}

TEST_CASE("bpe merges: the lowest rank first, the leftmost among equals") {
  const Bpe m = byte_model({{"a", "b"}, {"ab", "c"}, {"b", "c"}});
  CHECK(token_strings(m, "abc") == Pieces{"abc"});
  CHECK(token_strings(m, "bc") == Pieces{"bc"});
  const Bpe r = byte_model({{"b", "c"}, {"a", "b"}, {"ab", "c"}});
  CHECK(token_strings(r, "abc") == Pieces{"a", "bc"});  // (b, c) has the lower rank, then nothing merges a+bc
  const Bpe aa = byte_model({{"a", "a"}});
  CHECK(token_strings(aa, "aaa") == Pieces{"aa", "a"});
  CHECK(token_strings(aa, "aaaa") == Pieces{"aa", "aa"});
  CHECK(token_strings(aa, "a aa") == Pieces{"a", " ", "aa"});  // pieces "a", " aa": no merge across them
}

TEST_CASE("bpe training: frequent pairs merge first, deterministically, up to the vocabulary size") {
  const Bpe m = Bpe::train({kText}, 300, nullptr);
  CHECK(m.size() == 300);
  CHECK(m.merges().size() >= 44);
  // the most frequent pair of the text's pieces: 'e' + 's' ... whatever it is, it is the pair with the highest count
  const auto [a, b] = m.merges()[0];
  const std::string first = m.vocab()[size_t(a)] + m.vocab()[size_t(b)];
  std::vector<std::string_view> pieces;
  bpe_pretokenize(kText, pieces);
  auto count = [&](const std::string& pair) {
    long n = 0;
    for (auto p : pieces)
      for (size_t k = 0; k + pair.size() <= p.size(); ++k) n += p.substr(k, pair.size()) == pair;
    return n;
  };
  for (const char* other : {"e ", " t", "ea", "pe", "Ci", "re"}) CHECK(count(first) >= count(other));
  const Bpe again = Bpe::train({kText}, 300, nullptr);
  CHECK(again.merges() == m.merges());
  CHECK(again.vocab() == m.vocab());
  std::vector<int> ids;
  m.encode(kText, ids);
  CHECK(ids.size() < std::string(kText).size() * 3 / 4);
  CHECK_THROWS_AS(Bpe::train({kText}, 100, nullptr), UserError);
  // a tiny text runs out of pairs before the vocabulary is full
  CHECK(Bpe::train({"abab"}, 1000, nullptr).size() < 1000);
}

TEST_CASE("bpe tokenizer: decode(encode(x)) == x on arbitrary bytes, invalid UTF-8 included") {
  const Tokenizer tok = Tokenizer::from_bpe(Bpe::train({kText}, 400, nullptr));
  CHECK(tok.kind() == Tokenizer::Kind::bpe);
  CHECK(tok.decode(tok.encode(kText)) == kText);
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    std::string s(size_t(rng() % 100), '\0');
    for (char& c : s) c = char(rng() % 3 == 0 ? rng() % 256 : kText[rng() % 200]);
    CHECK(tok.decode(tok.encode(s)) == s);
  }
}

TEST_CASE("bpe tokenizer: the JSON file saves and loads to an identical tokenizer, specials included") {
  Tokenizer tok = Tokenizer::from_bpe(Bpe::train({kText}, 320, nullptr));
  const int mask = tok.add_special("<mask>");
  CHECK(mask == 320);
  CHECK(tok.is_special(mask));
  CHECK_FALSE(tok.is_special(0));
  const std::string json = tok.to_json();
  CHECK(json.find("\"added_tokens\"") != std::string::npos);
  CHECK(json.find("\"<mask>\"") != std::string::npos);
  const Tokenizer back = Tokenizer::from_bpe_json(json, "test");
  CHECK(back == tok);
  CHECK(back.to_json() == json);
  CHECK(back.encode(kText) == tok.encode(kText));
  CHECK(back.find("<mask>") == mask);
  // a copy with one merge fewer is not the same tokenizer
  std::vector<std::pair<int, int>> fewer = tok.bpe()->merges();
  fewer.pop_back();
  CHECK_FALSE(Tokenizer::from_bpe(Bpe(tok.bpe()->vocab(), fewer, false, "t")) == Tokenizer::from_bpe(*tok.bpe()));
}

TEST_CASE("bpe JSON: merges as \"a b\" strings, added tokens inside the vocabulary, ignore_merges") {
  const std::string file = R"({"version": "1.0", "added_tokens": [{"id": 0, "content": "<pad>", "special": true}],
    "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"<pad>": 0, "a": 1, "b": 2, "Ġ": 3,
    "ab": 4, "Ġab": 5, "bb": 6}, "merges": ["a b", "Ġ ab"]}})";
  const Tokenizer tok = Tokenizer::from_bpe_json(file, "f");
  CHECK(tok.size() == 7);
  CHECK(tok.is_special(0));
  CHECK(tok.encode("ab ab") == std::vector<int>{4, 5});
  CHECK(tok.encode("bb") == std::vector<int>{2, 2});  // no merge makes bb
  std::string ignore = file;
  ignore.replace(ignore.find("\"merges\""), 0, "\"ignore_merges\": true, ");
  CHECK(Tokenizer::from_bpe_json(ignore, "f").encode("bb") == std::vector<int>{6});  // a piece that is a token
  CHECK_THROWS_WITH_AS(tok.encode("c"), doctest::Contains("byte 0x63 has no token"), UserError);
}

TEST_CASE("bpe JSON: files that are not byte-level BPE or are inconsistent are clear errors") {
  const Tokenizer tok = Tokenizer::from_bpe(Bpe::train({kText}, 260, nullptr));
  const std::string good = tok.to_json();
  auto fails = [](const std::string& text, const std::string& what) {
    CHECK_THROWS_WITH_AS(Tokenizer::from_bpe_json(text, "tok.json"), doctest::Contains(what.c_str()), UserError);
  };
  fails("{not json", "tok.json: not a tokenizer JSON file");
  fails("[1, 2]", "no \"model\" object");
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  fails(edit("\"type\": \"BPE\"", "\"type\": \"WordPiece\""), "model.type is 'WordPiece'");
  fails(edit("\"pre_tokenizer\": {\n  \"type\": \"ByteLevel\"", "\"pre_tokenizer\": {\n  \"type\": \"Whitespace\""),
        "'pre_tokenizer' is of type 'Whitespace'");
  fails(edit("\"add_prefix_space\": false", "\"add_prefix_space\": true"), "add_prefix_space is true");
  fails(edit("\"!\": 0", "\"!\": 5"), "model.vocab ids must be 0..");
  fails(edit("\"!\": 0", "\"! \": 0"), "outside GPT-2's byte alphabet");
  const auto [a, b] = tok.bpe()->merges()[0];
  const std::string merge = "[\n    \"" + bpe_to_alphabet(tok.bpe()->vocab()[size_t(a)]) + "\",\n    \"" +
                            bpe_to_alphabet(tok.bpe()->vocab()[size_t(b)]) + "\"\n   ]";
  fails(edit(merge, "[\"a\", \"zzz\"]"), "names a token that is not in model.vocab");
  fails(edit(merge, "\"a b c\""), "is not two tokens separated by one space");
  fails(edit(merge, "\"a b\""), "makes a token that is not in the vocabulary");
  fails(edit("\"added_tokens\": []", "\"added_tokens\": [{\"id\": 999, \"content\": \"<x>\"}]"),
        "ids after the vocabulary must follow on from 260");
  CHECK_THROWS_WITH_AS(Tokenizer::load_bpe_file("/nonexistent/tok.json"),
                       doctest::Contains("cannot read tokenizer file '/nonexistent/tok.json'"), UserError);
}

TEST_CASE("text dataset with a bpe tokenizer: windows of token ids, <mask> for an encoder") {
  std::string text;
  for (int i = 0; i < 20; ++i) text += kText;
  const Tokenizer tok = Tokenizer::from_bpe(Bpe::train({kText}, 300, nullptr));
  const TextDataset dec(text, 0.1, 16, &tok);
  CHECK(dec.tokenizer() == tok);
  CHECK(dec.train_size() + dec.val_size() == tok.encode(text).size());
  CHECK(dec.describe().find("(bpe)") != std::string::npos);
  Batch batch;
  Rng rng(3);
  dec.next_batch(batch, 4, 16, Split::train, rng);
  CHECK(batch.x.size() == 64);
  for (int id : batch.x) CHECK((id >= 0 && id < tok.size()));
  const TextDataset enc(text, 0.1, 16, &tok, "encoder");
  CHECK(enc.mask_id() == tok.size());
  CHECK(enc.tokenizer().to_json().find("<mask>") != std::string::npos);
  CHECK(dec.metrics().back() == "loss_per_char");
}
