// Corpus BLEU and chrF of decoded outputs, one reference per hypothesis, computed by the rules of
// sacreBLEU's defaults so that the numbers can be compared with published ones:
//
//   corpus_bleu  sacrebleu.corpus_bleu(hyps, [refs]): each line right-stripped, then the "13a"
//                tokenization (mteval-v13a: <skipped> removed, &quot; &amp; &lt; &gt; unescaped,
//                ASCII punctuation and symbols split off, '.' and ',' split off unless between
//                digits, '-' split off after a digit), word n-grams 1..4 clipped by the reference's
//                counts and summed over the corpus, "exp" smoothing (an order with no match gets
//                precision 1/(2^k · total), k counting such orders), the brevity penalty
//                exp(1 - ref_len/hyp_len) when the hypotheses are shorter; 0..100.
//   corpus_chrf  sacrebleu.corpus_chrf(hyps, [refs]): character n-grams 1..6 of each line with its
//                whitespace removed (Unicode code points), matches clipped per line and summed over
//                the corpus, precision and recall averaged over the orders both sides have, then
//                F-beta with beta 2; 0..100.
//
// Whitespace is Python's str.isspace() set, as sacreBLEU splits with str.split(). Invalid UTF-8
// bytes count as one character each.
#pragma once
#include <string>
#include <vector>

namespace attnlab {

// UserError when the two lists differ in length.
double corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);
double corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);

// The 13a tokenization of one line (tokens joined by single spaces), as BLEU sees it.
std::string bleu_tokenize_13a(const std::string& line);

}  // namespace attnlab
