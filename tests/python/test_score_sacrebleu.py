"""`attnlab score` against the sacrebleu package: corpus BLEU and chrF with sacreBLEU's defaults
agree to 0.01 on hand-picked tricky lines (punctuation, numbers, HTML entities, Unicode, empty
lines, a short or empty hypothesis) and on seeded random corpora built from the same pieces.
Args: ATTNLAB_BINARY WORK_DIR"""
import json
import random
import subprocess
import sys

import sacrebleu

bin_, work = sys.argv[1], sys.argv[2]

TRICKY = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("It costs $3.50, (approx.) - or 1,000.5 yen!", "It costs $3.50 (approximately), or 1,000 yen."),
    ("1990-2000: a decade; 3.14 != 22/7?", "1990 - 2000 : a decade ; 3.14 is not 22/7"),
    ("Tom &amp; Jerry &lt;3 &quot;forever&quot;", 'Tom & Jerry <3 "forever"'),
    ("Ünïcödé naïve café — «quoted» text…", "Unicode naive café - “quoted” text..."),
    ("日本語 の テキスト です。", "日本語のテキストです。"),
    ("", "an empty hypothesis"),
    ("a reference that is empty", ""),
    ("", ""),
    ("short", "a much longer reference sentence with many words in it"),
    ("e.g. U.S.A. vs. u.s.a", "e.g. U.S.A. versus U.S.A."),
    ("tabs\tand  double  spaces\u00a0nbsp", "tabs and double spaces nbsp"),
    ("trailing spaces   ", "trailing spaces"),
    ("<skipped> words and back-\nslash \\ {braces} [brackets] ^caret_ `tick` |pipe| ~tilde",
     "words and backslash \\ {braces} [brackets] ^caret_ `tick` |pipe| ~tilde"),
    ("emoji 🙂 and 4-byte 𝔘𝔫𝔦", "emoji 🙂 and 4-byte 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
]

PIECES = ("the a of cat dog sat ran on in mat house 3.50 1,000 42 1990-2000 e.g. U.S. café naïve 日本 "
          "— « » ( ) , . ! ? ; : - & &amp; $ % \" ' / 🙂 x-ray co-op don't").split()


def sentence(r):
    words = [r.choice(PIECES) for _ in range(r.randint(0, 14))]
    glue = [r.choice(["", " ", " ", " ", "  "]) for _ in words]
    return "".join(g + w for g, w in zip(glue, words)).strip(" ") if r.random() > 0.05 else ""


def noisy(r, ref):
    words = ref.split(" ")
    out = [w for w in words if r.random() > 0.2]
    for _ in range(r.randint(0, 3)):
        out.insert(r.randint(0, len(out)), r.choice(PIECES))
    return " ".join(out)


def attnlab_scores(hyps, refs, tag):
    hp, rp = f"{work}/{tag}.hyp", f"{work}/{tag}.ref"
    for path, lines in ((hp, hyps), (rp, refs)):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
    out = subprocess.run([bin_, "score", "--hyp", hp, "--ref", rp, "--json"], check=True, capture_output=True,
                         text=True).stdout
    j = json.loads(out)
    assert j["lines"] == len(hyps), j
    return j["bleu"], j["chrf"]


def compare(hyps, refs, tag):
    # sacrebleu reads the same lines as attnlab: a line never holds '\n' (split on it above)
    hyps = [h.replace("\n", " ") for h in hyps]
    refs = [r.replace("\n", " ") for r in refs]
    want_b = sacrebleu.corpus_bleu(hyps, [refs]).score
    want_c = sacrebleu.corpus_chrf(hyps, [refs]).score
    got_b, got_c = attnlab_scores(hyps, refs, tag)
    assert abs(got_b - want_b) < 0.01, f"{tag}: BLEU attnlab {got_b} vs sacrebleu {want_b}"
    assert abs(got_c - want_c) < 0.01, f"{tag}: chrF attnlab {got_c} vs sacrebleu {want_c}"
    return want_b, want_c


tricky = compare([h for h, _ in TRICKY], [r for _, r in TRICKY], "tricky")
for i, (h, r) in enumerate(TRICKY):  # each line alone, too: one-line corpora hit every edge
    compare([h], [r], f"line{i}")
r = random.Random(17)
scores = []
for k in range(25):
    refs = [sentence(r) for _ in range(r.randint(1, 30))]
    hyps = [noisy(r, ref) if r.random() > 0.1 else sentence(r) for ref in refs]
    scores.append(compare(hyps, refs, f"random{k}"))
nonzero = sum(1 for b, _ in scores if b > 0)
assert nonzero >= 10, f"only {nonzero} random corpora have BLEU > 0: the comparison would be weak"
print(f"score agrees with sacrebleu on {len(TRICKY) + 1 + len(scores)} corpora "
      f"(tricky: BLEU {tricky[0]:.2f}, chrF {tricky[1]:.2f}; random BLEU up to {max(b for b, _ in scores):.2f})")
