// BLEU and chrF (train/text_metrics.h) on cases worked out by hand; the agreement with the
// sacrebleu package itself on a harder corpus is tests/e2e/score_sacrebleu.sh.
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "train/text_metrics.h"

using namespace attnlab;
using V = std::vector<std::string>;

TEST_CASE("bleu: identical text scores 100, disjoint text 0") {
  CHECK(corpus_bleu({"the cat sat on the mat"}, {"the cat sat on the mat"}) == doctest::Approx(100.0));
  CHECK(corpus_bleu({"a b c d e"}, {"f g h i j"}) == 0.0);
  CHECK(corpus_bleu({""}, {"the cat sat on the mat"}) == 0.0);  // empty hypothesis: no n-gram, no match
  CHECK(corpus_bleu({}, {}) == 0.0);
}

TEST_CASE("bleu: the brevity penalty of a short hypothesis") {
  // every n-gram of the 4-word hypothesis is in the 6-word reference: BLEU = exp(1 - 6/4) * 100
  CHECK(corpus_bleu({"the cat sat on"}, {"the cat sat on the mat"}) == doctest::Approx(100.0 * std::exp(-0.5)));
  // a longer hypothesis has no penalty: precisions 4/6, 3/5, 2/4, 1/3
  const double p = std::pow((4.0 / 6) * (3.0 / 5) * (2.0 / 4) * (1.0 / 3), 0.25) * 100.0;
  CHECK(corpus_bleu({"the cat sat on the mat"}, {"the cat sat on"}) == doctest::Approx(p));
}

TEST_CASE("bleu: exp smoothing of an order without matches, and the corpus sums") {
  // precisions 3/4, 2/3, 1/2 and no 4-gram match: 1/(2 * 1)
  CHECK(corpus_bleu({"a b c d"}, {"a b c e"}) == doctest::Approx(std::pow(0.75 * (2.0 / 3) * 0.5 * 0.5, 0.25) * 100.0));
  // three words have no 4-gram at all: that precision is 0 and so is BLEU (as in sacreBLEU)
  CHECK(corpus_bleu({"a b c"}, {"a b c"}) < 1e-6);
  // corpus BLEU sums the counts over the lines before dividing: not the mean of the lines' scores
  CHECK(corpus_bleu({"a b c", "d e f g"}, {"a b c", "d e f g"}) == doctest::Approx(100.0));
}

TEST_CASE("bleu: the 13a tokenization") {
  CHECK(bleu_tokenize_13a("Hello, world! It costs $3.50 (approx.).") ==
        "Hello , world ! It costs $ 3.50 ( approx . ) .");
  CHECK(bleu_tokenize_13a("1,000 people in 1990-2000 &amp; more") == "1,000 people in 1990 - 2000 & more");
  CHECK(bleu_tokenize_13a("  spaced\t out  ") == "spaced out");
  CHECK(bleu_tokenize_13a("Ünïcödé, «quoted» text.") == "Ünïcödé , «quoted» text .");
  // punctuation splitting makes a tokenized and an untokenized line agree
  CHECK(corpus_bleu({"Yes, it works."}, {"Yes , it works ."}) == doctest::Approx(100.0));
}

TEST_CASE("chrf: character n-grams without whitespace, beta 2") {
  CHECK(corpus_chrf({"the cat"}, {"the cat"}) == doctest::Approx(100.0));
  CHECK(corpus_chrf({"a b"}, {"ab"}) == doctest::Approx(100.0));  // whitespace is removed
  CHECK(corpus_chrf({"xyz"}, {"abc"}) == 0.0);
  CHECK(corpus_chrf({""}, {"abc"}) == 0.0);
  // "ab" against "abc": orders 1 and 2 count (the hypothesis has no 3-gram): precision 1, recall
  // (2/3 + 1/2) / 2 = 7/12; F2 = 5 p r / (4 p + r) = 35/55
  CHECK(corpus_chrf({"ab"}, {"abc"}) == doctest::Approx(100.0 * 35.0 / 55.0));
  // code points, not bytes: "é" is one character, so "é" against "éa" has precision 1, recall 1/2
  CHECK(corpus_chrf({"é"}, {"éa"}) == doctest::Approx(100.0 * 5 * 0.5 / (4 + 0.5)));
}

TEST_CASE("bleu, chrf: a hypothesis per reference") {
  CHECK_THROWS_AS(corpus_bleu({"a"}, {"a", "b"}), UserError);
  CHECK_THROWS_AS(corpus_chrf({"a", "b"}, {"a"}), UserError);
}
