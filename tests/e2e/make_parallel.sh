#!/usr/bin/env bash
# scripts/make_parallel.py, the parallel corpus of the seq2seq demo: the same seed gives the same
# bytes, another seed other lines; the .src/.tgt/.tsv files agree line by line; every target is the
# numerals of its source, read back by a parser written here from the languages' number grammar
# (not by the script's own speller); lengths stay within --min-len..--max-len. Standard-library
# Python only (/usr/bin/python3). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
gen=$src/scripts/make_parallel.py

/usr/bin/python3 "$gen" --out a --n 3000 --seed 7 --min-len 5 --max-len 90 >/dev/null
/usr/bin/python3 "$gen" --out b --n 3000 --seed 7 --min-len 5 --max-len 90 >/dev/null
/usr/bin/python3 "$gen" --out c --n 3000 --seed 8 --min-len 5 --max-len 90 >/dev/null
for ext in src tgt tsv; do
  cmp -s "a.$ext" "b.$ext" || fail "seed 7 twice: a.$ext and b.$ext differ"
done
cmp -s a.tsv c.tsv && fail "seeds 7 and 8 gave the same corpus"
/usr/bin/python3 "$gen" --out t --n 50 --seed 7 --format tsv >/dev/null
[ -f t.tsv ] && [ ! -e t.src ] || fail "--format tsv writes PREFIX.tsv alone"

/usr/bin/python3 - <<'PY'
import re, sys
src = open("a.src", encoding="utf-8").read().split("\n")
tgt = open("a.tgt", encoding="utf-8").read().split("\n")
tsv = open("a.tsv", encoding="utf-8").read().split("\n")
assert src[-1] == tgt[-1] == tsv[-1] == "", "files end with a newline"
src, tgt, tsv = src[:-1], tgt[:-1], tsv[:-1]
assert len(src) == len(tgt) == len(tsv) == 3000, (len(src), len(tgt), len(tsv))
assert len(set(src)) == 3000, "sources are distinct"
for s, t, row in zip(src, tgt, tsv):
    assert row == s + "\t" + t, row
    assert "\t" not in s and re.fullmatch(r"[0-9]+( [0-9]+)*", t), (s, t)
    assert 5 <= len(s) <= 90, (len(s), s)
lens = sorted(len(s) for s in src)
assert lens[len(lens) // 10] < 30 and lens[-len(lens) // 10] > 70, "lengths spread over the range"

# An independent reader of the four spellings: word values summed by the usual rules.
EN = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
      "thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
EN.update({w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1})
FR = {w: i for i, w in enumerate("zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize "
      "quatorze quinze seize".split())}
FR.update(vingt=20, vingts=20, trente=30, quarante=40, cinquante=50, soixante=60)
ES = {w: i for i, w in enumerate("cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece "
      "catorce quince dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós veintitrés "
      "veinticuatro veinticinco veintiséis veintisiete veintiocho veintinueve".split())}
ES.update(un=1, veintiún=21, treinta=30, cuarenta=40, cincuenta=50, sesenta=60, setenta=70, ochenta=80, noventa=90,
          cien=100, ciento=100, doscientos=200, trescientos=300, cuatrocientos=400, quinientos=500,
          seiscientos=600, setecientos=700, ochocientos=800, novecientos=900)

def read_words(words, table, hundred, thousand, skip):
    total = cur = 0
    for w in words:
        if w in skip:
            continue
        if w in hundred:
            cur = max(cur, 1) * 100
        elif w in thousand:
            total, cur = (total + max(cur, 1)) * 1000, 0
        else:
            cur += table[w]
    return total + cur

def fr_words(s):
    out = []
    for w in s.replace("-", " ").split():
        if out and out[-1] == "quatre" and w in ("vingt", "vingts"):
            out[-1] = "80"  # quatre-vingt(s)
            continue
        out.append(w)
    return out

def read_fr(s):
    total = cur = 0
    for w in fr_words(s):
        if w == "et":
            continue
        if w in ("cent", "cents"):
            cur = max(cur, 1) * 100
        elif w == "mille":
            total, cur = max(cur, 1) * 1000, 0
        else:
            cur += 80 if w == "80" else FR[w]
    return total + cur

DE_UNITS = {"null": 0, "eins": 1, "ein": 1, "zwei": 2, "drei": 3, "vier": 4, "fünf": 5, "sechs": 6, "sieben": 7,
            "acht": 8, "neun": 9, "zehn": 10, "elf": 11, "zwölf": 12, "dreizehn": 13, "vierzehn": 14,
            "fünfzehn": 15, "sechzehn": 16, "siebzehn": 17, "achtzehn": 18, "neunzehn": 19, "zwanzig": 20,
            "dreißig": 30, "vierzig": 40, "fünfzig": 50, "sechzig": 60, "siebzig": 70, "achtzig": 80,
            "neunzig": 90}

def read_de_below_1000(s):
    v = 0
    if "hundert" in s:
        h, s = s.split("hundert", 1)
        v += 100 * DE_UNITS[h]
    if not s:
        return v
    if "und" in s:
        u, t = s.split("und", 1)
        return v + DE_UNITS[u] + DE_UNITS[t]
    return v + DE_UNITS[s]

def read_de(s):
    if "tausend" in s:
        th, rest = s.split("tausend", 1)
        return 1000 * read_de_below_1000(th) + (read_de_below_1000(rest) if rest else 0)
    return read_de_below_1000(s)

def read(phrase):
    words = phrase.replace("-", " ").split()
    if len(words) == 1 and phrase not in EN and phrase not in FR and phrase not in ES:
        return read_de(phrase)
    if all(w in EN or w in ("hundred", "thousand", "and") for w in words):
        return read_words(words, EN, {"hundred"}, {"thousand"}, {"and"})
    if all(w in ES or w in ("mil", "y") for w in words):
        return read_words(words, ES, set(), {"mil"}, {"y"})
    return read_fr(phrase)

wrong = [(s, t) for s, t in zip(src, tgt) if " ".join(str(read(p)) for p in s.split(", ")) != t]
assert not wrong, f"{len(wrong)} lines whose target is not their source's numbers, e.g. {wrong[:3]}"
print(f"3000 lines read back; lengths {lens[0]}..{lens[-1]}")
PY
echo "make_parallel: ok"
