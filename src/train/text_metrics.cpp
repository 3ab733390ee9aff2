// corpus_bleu / corpus_chrf (see text_metrics.h). Everything works on Unicode code points, as
// sacreBLEU works on Python strings.
#include "train/text_metrics.h"

#include <array>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace attnlab {

namespace {

using U32 = std::u32string;

// UTF-8 to code points; a byte that does not start a valid sequence becomes U+DC00 + byte (one
// character, like Python's surrogateescape), so that nothing is lost or merged.
U32 decode_utf8(const std::string& s) {
  U32 out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = len > 0 && i + size_t(len) <= n;
    for (int k = 1; ok && k < len; ++k) {
      ok = (p[i + size_t(k)] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + size_t(k)] & 0x3F);
    }
    static constexpr char32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && len > 1 && (cp < min_of[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      out.push_back(char32_t(0xDC00 + c));
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

// Python's str.isspace(), which str.split() and str.rstrip() use.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }

std::vector<U32> split_words(const U32& s) {
  std::vector<U32> words;
  U32 w;
  for (char32_t c : s) {
    if (is_space(c)) {
      if (!w.empty()) words.push_back(std::move(w)), w.clear();
    } else {
      w.push_back(c);
    }
  }
  if (!w.empty()) words.push_back(std::move(w));
  return words;
}

void replace_all(U32& s, const U32& from, const U32& to) {
  U32 out;
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != U32::npos; i = j + from.size()) out.append(s, i, j - i).append(to);
  out.append(s, i, U32::npos);
  s = std::move(out);
}

// mteval-v13a's symbols: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
bool is_13a_symbol(char32_t c) {
  return (c >= U'{' && c <= U'~') || (c >= U'[' && c <= U'`') || (c >= U' ' && c <= U'&') ||
         (c >= U'(' && c <= U'+') || (c >= U':' && c <= U'@') || c == U'/';
}

// One left-to-right pass of a two-character rule (as a regular-expression substitution of a
// two-character pattern makes it): where match(a, b) holds, emit(a, b) replaces the pair.
template <typename Match, typename Emit>
U32 pair_pass(const U32& s, Match match, Emit emit) {
  U32 out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// the tokens of one line after sacreBLEU's preprocessing (rstrip) and the 13a tokenizer
std::vector<U32> tokens_13a(const std::string& line) {
  U32 s = decode_utf8(line);
  while (!s.empty() && is_space(s.back())) s.pop_back();
  replace_all(s, U"<skipped>", U"");
  replace_all(s, U"-\n", U"");
  replace_all(s, U"\n", U" ");
  if (s.find(U'&') != U32::npos) {
    replace_all(s, U"&quot;", U"\"");
    replace_all(s, U"&amp;", U"&");
    replace_all(s, U"&lt;", U"<");
    replace_all(s, U"&gt;", U">");
  }
  U32 t;
  for (char32_t c : U" " + s + U" ") {
    if (is_13a_symbol(c)) t += U' ', t += c, t += U' ';
    else t += c;
  }
  const auto period = [](char32_t c) { return c == U'.' || c == U','; };
  t = pair_pass(t, [&](char32_t a, char32_t b) { return !is_digit(a) && period(b); },
                [](U32& o, char32_t a, char32_t b) { o += a, o += U' ', o += b, o += U' '; });
  t = pair_pass(t, [&](char32_t a, char32_t b) { return period(a) && !is_digit(b); },
                [](U32& o, char32_t a, char32_t b) { o += U' ', o += a, o += U' ', o += b; });
  t = pair_pass(t, [](char32_t a, char32_t b) { return is_digit(a) && b == U'-'; },
                [](U32& o, char32_t a, char32_t b) { o += a, o += U' ', o += b, o += U' '; });
  return split_words(t);
}

using Counts = std::unordered_map<U32, long>;

// word n-grams of order n, the words of each joined by a space
Counts word_ngrams(const std::vector<U32>& w, size_t n) {
  Counts c;
  for (size_t i = 0; i + n <= w.size(); ++i) {
    U32 g = w[i];
    for (size_t k = 1; k < n; ++k) g += U' ', g += w[i + k];
    ++c[g];
  }
  return c;
}

Counts char_ngrams(const U32& s, size_t n) {
  Counts c;
  for (size_t i = 0; i + n <= s.size(); ++i) ++c[s.substr(i, n)];
  return c;
}

long total_of(const Counts& c) {
  long t = 0;
  for (const auto& [g, k] : c) t += k;
  return t;
}

long clipped_matches(const Counts& hyp, const Counts& ref) {
  long m = 0;
  for (const auto& [g, k] : hyp) {
    const auto it = ref.find(g);
    if (it != ref.end()) m += std::min(k, it->second);
  }
  return m;
}

void check_sizes(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  if (hyps.size() != refs.size())
    user_error("{} hypotheses but {} references: each hypothesis needs exactly one reference", hyps.size(),
               refs.size());
}

}  // namespace

std::string bleu_tokenize_13a(const std::string& line) {
  std::string out;
  const auto put = [&out](unsigned v) { out += char(v); };
  for (const U32& w : tokens_13a(line)) {
    if (!out.empty()) out += ' ';
    for (const char32_t c : w) {  // back to UTF-8 (escaped bytes as they were)
      if (c >= 0xDC80 && c <= 0xDCFF) {
        put(c - 0xDC00);
      } else if (c < 0x80) {
        put(c);
      } else if (c < 0x800) {
        put(0xC0 | (c >> 6)), put(0x80 | (c & 0x3F));
      } else if (c < 0x10000) {
        put(0xE0 | (c >> 12)), put(0x80 | ((c >> 6) & 0x3F)), put(0x80 | (c & 0x3F));
      } else {
        put(0xF0 | (c >> 18)), put(0x80 | ((c >> 12) & 0x3F)), put(0x80 | ((c >> 6) & 0x3F)), put(0x80 | (c & 0x3F));
      }
    }
  }
  return out;
}

double corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  check_sizes(hyps, refs);
  constexpr int kOrder = 4;
  std::array<long, kOrder> correct{}, total{};
  long sys_len = 0, ref_len = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    const std::vector<U32> h = tokens_13a(hyps[i]), r = tokens_13a(refs[i]);
    sys_len += long(h.size());
    ref_len += long(r.size());
    for (int n = 1; n <= kOrder; ++n) {
      const Counts hc = word_ngrams(h, size_t(n)), rc = word_ngrams(r, size_t(n));
      total[size_t(n - 1)] += total_of(hc);
      correct[size_t(n - 1)] += clipped_matches(hc, rc);
    }
  }
  double bp = 1.0;
  if (sys_len < ref_len) bp = sys_len > 0 ? std::exp(1.0 - double(ref_len) / double(sys_len)) : 0.0;
  bool any = false;
  for (long c : correct) any = any || c > 0;
  if (!any) return 0.0;
  std::array<double, kOrder> prec{};  // an order after one with no n-grams stays 0
  double smooth = 1.0;
  for (int n = 0; n < kOrder; ++n) {
    if (total[size_t(n)] == 0) break;
    if (correct[size_t(n)] == 0) {
      smooth *= 2.0;
      prec[size_t(n)] = 100.0 / (smooth * double(total[size_t(n)]));
    } else {
      prec[size_t(n)] = 100.0 * double(correct[size_t(n)]) / double(total[size_t(n)]);
    }
  }
  double log_sum = 0.0;
  for (double p : prec) log_sum += p == 0.0 ? -9999999999.0 : std::log(p);  // sacreBLEU's floored log
  return bp * std::exp(log_sum / kOrder);
}

double corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  check_sizes(hyps, refs);
  constexpr int kOrder = 6;
  constexpr double kBeta2 = 4.0;  // beta 2: recall counts twice as much as precision
  std::array<long, kOrder> n_hyp{}, n_ref{}, n_match{};
  for (size_t i = 0; i < hyps.size(); ++i) {
    U32 h, r;
    for (const U32& w : split_words(decode_utf8(hyps[i]))) h += w;
    for (const U32& w : split_words(decode_utf8(refs[i]))) r += w;
    for (int n = 1; n <= kOrder; ++n) {
      const Counts hc = char_ngrams(h, size_t(n)), rc = char_ngrams(r, size_t(n));
      n_hyp[size_t(n - 1)] += rc.empty() ? 0 : total_of(hc);  // as sacreBLEU: no reference n-grams, no count
      n_ref[size_t(n - 1)] += total_of(rc);
      n_match[size_t(n - 1)] += clipped_matches(hc, rc);
    }
  }
  double avg_prec = 0.0, avg_rec = 0.0;
  int effective = 0;
  for (int n = 0; n < kOrder; ++n) {
    if (n_hyp[size_t(n)] > 0 && n_ref[size_t(n)] > 0) {
      avg_prec += double(n_match[size_t(n)]) / double(n_hyp[size_t(n)]);
      avg_rec += double(n_match[size_t(n)]) / double(n_ref[size_t(n)]);
      ++effective;
    }
  }
  if (effective == 0) return 0.0;
  avg_prec /= effective;
  avg_rec /= effective;
  if (avg_prec + avg_rec == 0.0) return 0.0;
  return 100.0 * (1.0 + kBeta2) * avg_prec * avg_rec / (kBeta2 * avg_prec + avg_rec);
}

}  // namespace attnlab
