// Byte-level BPE (see bpe.h): the pre-tokenizer, the byte alphabet, encoding.
#include "data/bpe.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/error.h"
#include "data/unicode_tables.h"

namespace attnlab {

namespace {

enum Cls : uint8_t { kOther, kLetter, kNumber, kSpace };

struct Char {
  Cls cls;
  uint32_t len;  // bytes
};

bool in_ranges(uint32_t cp, const unicode::CodeRange* r, size_t n) {
  const auto* end = r + n;
  const auto* it = std::upper_bound(r, end, cp, [](uint32_t v, const unicode::CodeRange& x) { return v < x.lo; });
  return it != r && cp <= (it - 1)->hi;
}

// The White_Space code points (what \s matches in the `tokenizers` pattern).
bool is_unicode_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

Cls classify(uint32_t cp) {
  if (is_unicode_space(cp)) return kSpace;
  if (in_ranges(cp, unicode::kLetters, unicode::kLetters_size)) return kLetter;
  if (in_ranges(cp, unicode::kNumbers, unicode::kNumbers_size)) return kNumber;
  return kOther;
}

std::array<Cls, 128> ascii_classes() {
  std::array<Cls, 128> t{};
  for (uint32_t c = 0; c < 128; ++c) t[c] = classify(c);
  return t;
}
const std::array<Cls, 128> kAscii = ascii_classes();

bool cont(unsigned char c) { return (c & 0xc0) == 0x80; }

// The character at s[i]: a valid UTF-8 sequence (no overlong forms, no surrogates, at most
// U+10FFFF) with its class, or one invalid byte of class kOther.
Char char_at(std::string_view s, size_t i) {
  const auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) return {kAscii[b0], 1};
  const size_t left = s.size() - i;
  uint32_t cp = 0, len = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf && left >= 2 && cont(uint8_t(s[i + 1]))) {
    cp = (b0 & 0x1fu) << 6 | (uint8_t(s[i + 1]) & 0x3fu);
    len = 2;
  } else if (b0 >= 0xe0 && b0 <= 0xef && left >= 3 && cont(uint8_t(s[i + 1])) && cont(uint8_t(s[i + 2]))) {
    cp = (b0 & 0x0fu) << 12 | (uint8_t(s[i + 1]) & 0x3fu) << 6 | (uint8_t(s[i + 2]) & 0x3fu);
    len = 3;
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) len = 0;
  } else if (b0 >= 0xf0 && b0 <= 0xf4 && left >= 4 && cont(uint8_t(s[i + 1])) && cont(uint8_t(s[i + 2])) &&
             cont(uint8_t(s[i + 3]))) {
    cp = (b0 & 0x07u) << 18 | (uint8_t(s[i + 1]) & 0x3fu) << 12 | (uint8_t(s[i + 2]) & 0x3fu) << 6 |
         (uint8_t(s[i + 3]) & 0x3fu);
    len = 4;
    if (cp < 0x10000 || cp > 0x10ffff) len = 0;
  }
  if (len == 0) return {kOther, 1};
  return {classify(cp), len};
}

// 's 't 're 've 'm 'll 'd at s[i] (s[i] == '\''): its length, or 0.
size_t contraction(std::string_view s, size_t i) {
  if (i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= s.size()) return 0;
  const char b = s[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// GPT-2's bytes_to_unicode: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves, the other 68 bytes for U+0100, U+0101, ... in byte order.
struct Alphabet {
  std::array<std::string, 256> utf8;
  std::array<uint32_t, 256> cp;
  std::array<int, 324> byte_of;  // code point -> byte, -1
  Alphabet() {
    byte_of.fill(-1);
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      cp[size_t(b)] = printable ? uint32_t(b) : extra++;
      const uint32_t c = cp[size_t(b)];
      utf8[size_t(b)] = c < 0x80 ? std::string(1, char(c))
                                 : std::string{char(0xc0 | (c >> 6)), char(0x80 | (c & 0x3f))};
      byte_of[c] = b;
    }
  }
};
const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

void bpe_pretokenize(std::string_view s, std::vector<std::string_view>& out) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] == '\'') {
      if (const size_t len = contraction(s, i)) {
        out.push_back(s.substr(i, len));
        i += len;
        continue;
      }
    }
    // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space, then a run of one class
    size_t j = i;
    if (s[i] == ' ' && i + 1 < n && char_at(s, i + 1).cls != kSpace) j = i + 1;
    const Char first = char_at(s, j);
    if (first.cls != kSpace) {
      size_t k = j + first.len;
      while (k < n) {
        const Char c = char_at(s, k);
        if (c.cls != first.cls) break;
        k += c.len;
      }
      out.push_back(s.substr(i, k - i));
      i = k;
      continue;
    }
    // "\s+(?!\S)|\s+": a whitespace run; before a non-space it leaves its last character, which
    // then starts the next piece (" word", or a lone "\n")
    size_t k = i, last = i;
    while (k < n) {
      const Char c = char_at(s, k);
      if (c.cls != kSpace) break;
      last = k;
      k += c.len;
    }
    if (k < n && last > i) k = last;
    out.push_back(s.substr(i, k - i));
    i = k;
  }
}

const std::string& bpe_byte_char(uint8_t b) { return alphabet().utf8[b]; }

std::string bpe_to_alphabet(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += alphabet().utf8[uint8_t(c)];
  return out;
}

bool bpe_from_alphabet(std::string_view s, std::string& bytes) {
  bytes.clear();
  const Alphabet& a = alphabet();
  for (size_t i = 0; i < s.size();) {
    const auto b0 = uint8_t(s[i]);
    uint32_t c;
    if (b0 < 0x80) {
      c = b0;
      i += 1;
    } else if ((b0 & 0xe0) == 0xc0 && i + 1 < s.size() && cont(uint8_t(s[i + 1]))) {
      c = (b0 & 0x1fu) << 6 | (uint8_t(s[i + 1]) & 0x3fu);
      i += 2;
    } else {
      return false;
    }
    if (c >= a.byte_of.size() || a.byte_of[c] < 0) return false;
    bytes.push_back(char(a.byte_of[c]));
  }
  return true;
}

Bpe::Bpe(std::vector<std::string> vocab, std::vector<std::pair<int, int>> merges, bool ignore_merges,
         const std::string& what)
    : vocab_(std::move(vocab)), merges_(std::move(merges)), ignore_merges_(ignore_merges) {
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  index_.reserve(vocab_.size());
  for (size_t id = 0; id < vocab_.size(); ++id) {
    const std::string& t = vocab_[id];
    if (t.empty()) user_error("{}: token {} is empty", what, id);
    auto [it, fresh] = index_.emplace(t, int(id));
    if (!fresh)
      user_error("{}: tokens {} and {} are the same ('{}')", what, it->second, id, bpe_to_alphabet(t));
    if (t.size() == 1) byte_id_[uint8_t(t[0])] = int(id);
  }
  merge_of_.reserve(merges_.size());
  const int V = int(vocab_.size());
  for (size_t r = 0; r < merges_.size(); ++r) {
    const auto [a, b] = merges_[r];
    if (a < 0 || a >= V || b < 0 || b >= V)
      user_error("{}: merge {} names token ids ({}, {}) outside the vocabulary [0, {})", what, r, a, b, V);
    const auto it = index_.find(vocab_[size_t(a)] + vocab_[size_t(b)]);
    if (it == index_.end())
      user_error("{}: merge {} ('{}' '{}') makes a token that is not in the vocabulary", what, r,
                 bpe_to_alphabet(vocab_[size_t(a)]), bpe_to_alphabet(vocab_[size_t(b)]));
    merge_of_.emplace(uint64_t(uint32_t(a)) << 32 | uint32_t(b), std::make_pair(int(r), it->second));
  }
}

void Bpe::encode_piece(std::string_view piece, std::vector<int>& ids) const {
  auto byte_token = [&](char c) {
    const int id = byte_id_[uint8_t(c)];
    if (id < 0)
      user_error("byte 0x{:02x} has no token in this BPE vocabulary (it was trained without the whole byte "
                 "alphabet)", unsigned(uint8_t(c)));
    return id;
  };
  if (piece.size() == 1) {
    ids.push_back(byte_token(piece[0]));
    return;
  }
  if (ignore_merges_) {
    const auto it = index_.find(std::string(piece));
    if (it != index_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  struct Sym {
    int id, prev, next;
    bool alive;
  };
  struct Cand {
    int rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Sym> sym;
  thread_local std::vector<Cand> heap;
  sym.clear();
  heap.clear();
  const int n = int(piece.size());
  for (int k = 0; k < n; ++k) sym.push_back({byte_token(piece[size_t(k)]), k - 1, k + 1 < n ? k + 1 : -1, true});
  auto lookup = [&](int a, int b) -> const std::pair<int, int>* {
    const auto it = merge_of_.find(uint64_t(uint32_t(a)) << 32 | uint32_t(b));
    return it == merge_of_.end() ? nullptr : &it->second;
  };
  auto push = [&](int pos, int a, int b) {
    if (const auto* m = lookup(a, b)) {
      heap.push_back({m->first, pos, m->second});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (int k = 0; k + 1 < n; ++k) push(k, sym[size_t(k)].id, sym[size_t(k + 1)].id);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Cand top = heap.back();
    heap.pop_back();
    Sym& s = sym[size_t(top.pos)];
    if (!s.alive || s.next < 0) continue;
    Sym& right = sym[size_t(s.next)];
    const auto* m = lookup(s.id, right.id);
    if (!m || m->second != top.new_id) continue;  // an expired candidate
    s.id = top.new_id;
    right.alive = false;
    s.next = right.next;
    if (s.next >= 0) sym[size_t(s.next)].prev = top.pos;
    if (s.prev >= 0) push(s.prev, sym[size_t(s.prev)].id, s.id);
    if (s.next >= 0) push(top.pos, s.id, sym[size_t(s.next)].id);
  }
  for (int k = 0; k >= 0; k = sym[size_t(k)].next) ids.push_back(sym[size_t(k)].id);
}

void Bpe::encode(std::string_view text, std::vector<int>& ids) const {
  std::vector<std::string_view> pieces;
  bpe_pretokenize(text, pieces);
  // piece -> (offset, count) into `cached`: a text repeats its words, so most pieces are merged once
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int> cached;
  ids.reserve(ids.size() + pieces.size() * 3 / 2);
  for (const std::string_view p : pieces) {
    if (p.size() == 1) {
      encode_piece(p, ids);
      continue;
    }
    auto [it, fresh] = cache.try_emplace(p, uint32_t(cached.size()), 0u);
    if (fresh) {
      encode_piece(p, cached);
      it->second.second = uint32_t(cached.size()) - it->second.first;
    }
    ids.insert(ids.end(), cached.begin() + it->second.first,
               cached.begin() + it->second.first + it->second.second);
  }
}

}  // namespace attnlab
