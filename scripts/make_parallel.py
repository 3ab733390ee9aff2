#!/usr/bin/env python3
"""Writes a parallel corpus for the seq2seq demo: numbers spelled out in words -> numerals.

Each source line is one to several numbers (0 .. 999999) written out in one language, separated
by commas; its target is the same numbers as digits, separated by spaces:

    three hundred and forty-two, seventeen      ->  342 17
    trois cent quarante-deux, dix-sept          ->  342 17
    dreihundertzweiundvierzig, siebzehn         ->  342 17
    trescientos cuarenta y dos, diecisiete      ->  342 17

Languages: en (British "and"), fr (traditional spelling: hyphens below a hundred, "et un",
"quatre-vingts"), de (one word below a million), es. A model has to read the language's
number grammar (German reads units before tens, French counts seventy as sixty-ten) and keep
every number of the line, in order: the longer the line, the more a fixed-size summary of the
source (the bottleneck) has to hold, which is what attention was invented to avoid (Bahdanau et
al. 2014, Fig. 2). Source lengths are spread evenly over --min-len .. --max-len characters.

Standard library only; the same arguments and --seed give the same files, byte for byte.

    scripts/make_parallel.py --out data/numbers --n 20000 --seed 1 --max-len 100
    # -> data/numbers.src, data/numbers.tgt (one sentence per line), data/numbers.tsv (source TAB target)
"""
import argparse
import random
import sys

EN_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen").split()
EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def en_below_1000(n):
    h, r = divmod(n, 100)
    words = []
    if h:
        words.append(EN_SMALL[h] + " hundred")
    if r:
        if h:
            words.append("and")
        if r < 20:
            words.append(EN_SMALL[r])
        else:
            t, u = divmod(r, 10)
            words.append(EN_TENS[t] + ("-" + EN_SMALL[u] if u else ""))
    return " ".join(words)


def en(n):
    if n == 0:
        return "zero"
    th, r = divmod(n, 1000)
    parts = []
    if th:
        parts.append(en_below_1000(th) + " thousand")
    if r:
        parts.append(("and " if th and r < 100 else "") + en_below_1000(r))
    return " ".join(parts)


FR_SMALL = ("zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize "
            "dix-sept dix-huit dix-neuf").split()
FR_TENS = "_ _ vingt trente quarante cinquante soixante".split()


def fr_below_100(n, final=True):
    if n < 20:
        return FR_SMALL[n]
    t, u = divmod(n, 10)
    if t in (7, 9):  # soixante-dix .. soixante-dix-neuf, quatre-vingt-dix ..
        base = "soixante" if t == 7 else "quatre-vingt"
        if n == 71:
            return "soixante et onze"
        return base + "-" + FR_SMALL[10 + u]
    if t == 8:
        return "quatre-vingt" + ("-" + FR_SMALL[u] if u else ("s" if final else ""))
    if u == 0:
        return FR_TENS[t]
    if u == 1:
        return FR_TENS[t] + " et un"
    return FR_TENS[t] + "-" + FR_SMALL[u]


def fr_below_1000(n, final=True):
    """`final`: nothing follows (the plural -s of cents and quatre-vingts drops before mille)."""
    h, r = divmod(n, 100)
    words = []
    if h:
        words.append("cent" if h == 1 else FR_SMALL[h] + " cent" + ("s" if r == 0 and final else ""))
    if r:
        words.append(fr_below_100(r, final))
    return " ".join(words)


def fr(n):
    if n == 0:
        return "zéro"
    th, r = divmod(n, 1000)
    parts = []
    if th:
        parts.append("mille" if th == 1 else fr_below_1000(th, final=False) + " mille")
    if r:
        parts.append(fr_below_1000(r))
    return " ".join(parts)


DE_SMALL = ("null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn "
            "sechzehn siebzehn achtzehn neunzehn").split()
DE_TENS = "_ _ zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()


def de_below_1000(n, final=True):
    h, r = divmod(n, 100)
    s = ""
    if h:
        s += ("ein" if h == 1 else DE_SMALL[h]) + "hundert"
    if r:
        if r < 20:
            s += "ein" if r == 1 and not final else DE_SMALL[r]
        else:
            t, u = divmod(r, 10)
            s += (("ein" if u == 1 else DE_SMALL[u]) + "und" if u else "") + DE_TENS[t]
    return s


def de(n):
    if n == 0:
        return "null"
    th, r = divmod(n, 1000)
    s = ""
    if th:
        s += de_below_1000(th, final=False) + "tausend"
    if r:
        s += de_below_1000(r)
    return s


ES_SMALL = ("cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince "
            "dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós veintitrés veinticuatro "
            "veinticinco veintiséis veintisiete veintiocho veintinueve").split()
ES_TENS = "_ _ _ treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
ES_HUNDREDS = ("_ ciento doscientos trescientos cuatrocientos quinientos seiscientos setecientos ochocientos "
               "novecientos").split()


def es_below_1000(n):
    h, r = divmod(n, 100)
    words = []
    if h:
        words.append("cien" if n == 100 else ES_HUNDREDS[h])
    if r:
        if r < 30:
            words.append(ES_SMALL[r])
        else:
            t, u = divmod(r, 10)
            words.append(ES_TENS[t] + (" y " + ES_SMALL[u] if u else ""))
    return " ".join(words)


def es(n):
    if n == 0:
        return "cero"
    th, r = divmod(n, 1000)
    parts = []
    if th == 1:
        parts.append("mil")
    elif th:
        t = es_below_1000(th)  # uno -> un before mil (veintiún mil, treinta y un mil)
        if t.endswith("veintiuno"):
            t = t[:-len("veintiuno")] + "veintiún"
        elif t.endswith("uno"):
            t = t[:-3] + "un"
        parts.append(t + " mil")
    if r:
        parts.append(es_below_1000(r))
    return " ".join(parts)


LANGS = {"en": en, "fr": fr, "de": de, "es": es}
MAX_NUMBER = 999999


def spell(n, lang):
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"{n} is outside 0..{MAX_NUMBER}")
    return LANGS[lang](n)


def draw_number(rng):
    digits = rng.randint(1, 6)  # as many short numbers as long ones
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def draw_line(rng, langs, lo, hi):
    """One (source, target) whose source has lo..hi characters, the length drawn evenly."""
    want = rng.randint(lo, hi)
    lang = rng.choice(langs)
    for _ in range(1000):
        nums, words = [], []
        while True:
            n = draw_number(rng)
            w = spell(n, lang)
            if len(", ".join(words + [w])) > want:
                break
            nums.append(n)
            words.append(w)
        if nums and len(", ".join(words)) >= max(lo, want - 8):  # within 8 characters of the drawn length
            return ", ".join(words), " ".join(map(str, nums))
    raise RuntimeError(f"no line of {lo}..{hi} characters after 1000 tries (raise --max-len)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="path prefix: writes PREFIX.src, PREFIX.tgt and PREFIX.tsv")
    ap.add_argument("--n", type=int, default=20000, help="distinct lines (default 20000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-len", type=int, default=5, help="shortest source, characters (default 5)")
    ap.add_argument("--max-len", type=int, default=100, help="longest source, characters (default 100)")
    ap.add_argument("--langs", default="en,fr,de,es", help="comma-separated, from en, fr, de, es (default all)")
    ap.add_argument("--format", choices=["both", "src-tgt", "tsv"], default="both",
                    help="src-tgt: PREFIX.src + PREFIX.tgt; tsv: PREFIX.tsv; both (default)")
    a = ap.parse_args(argv)
    langs = a.langs.split(",")
    bad = [x for x in langs if x not in LANGS]
    if bad:
        ap.error(f"--langs: unknown language {bad[0]!r} (known: {', '.join(LANGS)})")
    if a.n < 1:
        ap.error("--n must be at least 1")
    if not 4 <= a.min_len <= a.max_len:
        ap.error("--min-len must be at least 4 (the shortest spelled number) and at most --max-len")
    rng = random.Random(a.seed)
    seen, lines = set(), []
    tries = 0
    while len(lines) < a.n:
        tries += 1
        if tries > 50 * a.n + 1000:
            sys.exit(f"error: only {len(lines)} distinct lines of {a.min_len}..{a.max_len} characters found; "
                     "lower --n or widen the lengths")
        src, tgt = draw_line(rng, langs, a.min_len, a.max_len)
        if src not in seen:
            seen.add(src)
            lines.append((src, tgt))
    outputs = {}
    if a.format in ("both", "src-tgt"):
        outputs[a.out + ".src"] = "".join(s + "\n" for s, _ in lines)
        outputs[a.out + ".tgt"] = "".join(t + "\n" for _, t in lines)
    if a.format in ("both", "tsv"):
        outputs[a.out + ".tsv"] = "".join(f"{s}\t{t}\n" for s, t in lines)
    for path, text in outputs.items():
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print(f"{len(lines)} lines, sources {min(len(s) for s, _ in lines)}..{max(len(s) for s, _ in lines)} "
          f"characters: {', '.join(outputs)}")


if __name__ == "__main__":
    main()
