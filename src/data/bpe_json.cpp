// The `tokenizers` JSON file of a byte-level BPE (see bpe.h, docs/tokenizer.md): written with the
// fields `tokenizers` writes itself; read from files written by attnlab or by `tokenizers`
// (merges as "a b" strings or as ["a", "b"] pairs).
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/bpe.h"

namespace attnlab {

namespace {

using ojson = nlohmann::ordered_json;

ojson byte_level() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
}

// The "type" of a component that must be absent/null or ByteLevel.
void check_byte_level(const nlohmann::json& j, const char* field, bool null_ok, const std::string& what) {
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (null_ok) return;
    user_error("{}: '{}' is missing; attnlab reads byte-level BPE files ({{\"type\": \"ByteLevel\"}})", what, field);
  }
  const std::string type = it->is_object() && it->contains("type") && (*it)["type"].is_string()
                               ? (*it)["type"].get<std::string>()
                               : std::string("?");
  if (type != "ByteLevel")
    user_error("{}: '{}' is of type '{}'; attnlab reads byte-level BPE files only (ByteLevel)", what, field, type);
  if (std::string(field) == "pre_tokenizer") {
    if (it->value("add_prefix_space", false))
      user_error("{}: pre_tokenizer.add_prefix_space is true; attnlab supports false only (text round-trips "
                 "exactly)", what);
    if (!it->value("use_regex", true))
      user_error("{}: pre_tokenizer.use_regex is false; attnlab supports the GPT-2 split only", what);
  }
}

}  // namespace

std::string bpe_to_json(const Bpe& model, const std::vector<std::pair<int, std::string>>& added) {
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = ojson::array();
  for (const auto& [id, content] : added)
    j["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", true}});
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = byte_level();
  j["post_processor"] = nullptr;
  j["decoder"] = byte_level();
  ojson m;
  m["type"] = "BPE";
  m["dropout"] = nullptr;
  m["unk_token"] = nullptr;
  m["continuing_subword_prefix"] = nullptr;
  m["end_of_word_suffix"] = nullptr;
  m["fuse_unk"] = false;
  m["byte_fallback"] = false;
  m["ignore_merges"] = model.ignore_merges();
  ojson vocab = ojson::object();
  for (size_t id = 0; id < model.vocab().size(); ++id) vocab[bpe_to_alphabet(model.vocab()[id])] = id;
  m["vocab"] = std::move(vocab);
  ojson merges = ojson::array();
  for (const auto& [a, b] : model.merges())
    merges.push_back({bpe_to_alphabet(model.vocab()[size_t(a)]), bpe_to_alphabet(model.vocab()[size_t(b)])});
  m["merges"] = std::move(merges);
  j["model"] = std::move(m);
  return j.dump(1) + "\n";
}

BpeFile bpe_from_json(std::string_view text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    user_error("{}: not a tokenizer JSON file ({})", what, e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    user_error("{}: not a tokenizers JSON file (no \"model\" object); make one with `attnlab tokenizer train`", what);
  const nlohmann::json& m = j["model"];
  const std::string type = m.value("type", std::string("BPE"));
  if (type != "BPE") user_error("{}: model.type is '{}'; attnlab reads BPE tokenizers only", what, type);
  for (const char* f : {"continuing_subword_prefix", "end_of_word_suffix", "unk_token"})
    if (m.contains(f) && !m[f].is_null()) user_error("{}: model.{} is set; attnlab supports byte-level BPE without it", what, f);
  if (m.value("byte_fallback", false)) user_error("{}: model.byte_fallback is true; attnlab does not support it", what);
  if (m.contains("dropout") && !m["dropout"].is_null()) user_error("{}: model.dropout is set; attnlab does not support BPE dropout", what);
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    user_error("{}: a normalizer is set; attnlab supports byte-level BPE without one", what);
  check_byte_level(j, "pre_tokenizer", false, what);
  check_byte_level(j, "decoder", true, what);
  check_byte_level(j, "post_processor", true, what);

  BpeFile out{Bpe({}, {}, false, what), {}};
  std::map<std::string, int> added_content;  // content -> id
  if (j.contains("added_tokens")) {
    if (!j["added_tokens"].is_array()) user_error("{}: added_tokens is not a list", what);
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string() || t["content"].get<std::string>().empty())
        user_error("{}: an entry of added_tokens lacks an integer 'id' or a non-empty 'content'", what);
      out.added.emplace_back(t["id"].get<int>(), t["content"].get<std::string>());
      added_content[out.added.back().second] = out.added.back().first;
    }
  }
  if (!m.contains("vocab") || !m["vocab"].is_object() || !m.contains("merges") || !m["merges"].is_array())
    user_error("{}: model.vocab (an object) or model.merges (a list) is missing", what);
  const auto& jv = m["vocab"];
  const size_t V = jv.size();
  std::vector<std::string> vocab(V);
  std::vector<bool> seen(V, false);
  std::map<std::string, int> by_name;  // alphabet string -> id
  for (const auto& [name, idj] : jv.items()) {
    if (!idj.is_number_integer()) user_error("{}: model.vocab['{}'] is not an integer id", what, name);
    const long id = idj.get<long>();
    if (id < 0 || size_t(id) >= V || seen[size_t(id)])
      user_error("{}: model.vocab ids must be 0..{} each once; '{}' has id {}", what, V - 1, name, id);
    seen[size_t(id)] = true;
    by_name[name] = int(id);
    const auto ad = added_content.find(name);
    if (ad != added_content.end() && ad->second == id) {
      vocab[size_t(id)] = name;  // an added token kept in the vocabulary: its text as it is
    } else if (!bpe_from_alphabet(name, vocab[size_t(id)])) {
      user_error("{}: token '{}' (id {}) has a character outside GPT-2's byte alphabet: not a byte-level BPE "
                 "vocabulary", what, name, id);
    }
  }
  std::vector<std::pair<int, int>> merges;
  merges.reserve(m["merges"].size());
  for (const auto& e : m["merges"]) {
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        user_error("{}: merge {} ('{}') is not two tokens separated by one space", what, merges.size(), s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      user_error("{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", what, merges.size());
    }
    const auto ia = by_name.find(a), ib = by_name.find(b);
    if (ia == by_name.end() || ib == by_name.end())
      user_error("{}: merge {} ('{}' '{}') names a token that is not in model.vocab", what, merges.size(), a, b);
    merges.emplace_back(ia->second, ib->second);
  }
  out.model = Bpe(std::move(vocab), std::move(merges), m.value("ignore_merges", false), what);
  // added tokens: inside the vocabulary (checked above) or following it, in id order
  std::sort(out.added.begin(), out.added.end());
  int next = int(V);
  for (const auto& [id, content] : out.added) {
    if (id < int(V)) {
      if (out.model.vocab()[size_t(id)] != content)
        user_error("{}: added token '{}' has id {}, which model.vocab gives to another token", what, content, id);
      continue;
    }
    if (id != next)
      user_error("{}: added token '{}' has id {}; ids after the vocabulary must follow on from {}", what, content,
                 id, next);
    ++next;
  }
  return out;
}

}  // namespace attnlab
