"""attnlab's byte-level BPE against the Hugging Face `tokenizers` package, both ways:

1. a tokenizer trained by `attnlab tokenizer train` loads in `tokenizers` (Tokenizer.from_file)
   and gives the same ids as `attnlab tokenizer encode` on the whole corpus and on a text of
   tricky cases (contractions, digits, runs of spaces, newlines, non-ASCII letters);
2. a tokenizer trained by `tokenizers` (with a special token inside its vocabulary), saved as it
   writes it and once more with its merges as "a b" strings (the older layout), loads in attnlab
   and gives the ids `tokenizers` gives.

Usage: test_bpe_tokenizers.py ATTNLAB_BINARY CORPUS WORKDIR"""
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TRICKY = ("I'm can't you'll they've we're he'd it's 'S ab'sx ''s\n"
          "abc 123 4five x2 \u0663\u0664 1,000,000.5\n"
          "a   b\n\n\nc\t\td  \n \t e   \n"
          "h\u00e9llo w\u00f6rld \u03a9mega \u65e5\u672c\u8a9e \u30c6\u30b9\u30c8 na\u00efve caf\u00e9\n"
          "x!!! ?y (parens) [brackets] {braces} \u00abquotes\u00bb \u2014 dash \u2026\n"
          "a \u00a0b\u3000c\u2028d emoji \U0001F600\U0001F680 end  ")


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def attnlab_ids(binary, tok_file, text_file):
    out = subprocess.run([binary, "tokenizer", "encode", "--tokenizer", tok_file, text_file], check=True,
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def compare(name, ours, theirs):
    if ours == theirs:
        return
    k = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    fail(f"{name}: attnlab gives {len(ours)} ids, tokenizers {len(theirs)}; first difference at {k}: "
         f"{ours[k:k + 8]} vs {theirs[k:k + 8]}")


def main():
    binary, corpus, work = sys.argv[1], sys.argv[2], sys.argv[3]
    text = open(corpus, encoding="utf-8").read()
    tricky_file = os.path.join(work, "tricky.txt")
    with open(tricky_file, "w", encoding="utf-8") as f:
        f.write(TRICKY)

    # 1. attnlab's file in tokenizers
    ours_file = os.path.join(work, "ours.json")
    subprocess.run([binary, "tokenizer", "train", corpus, tricky_file, "--vocab-size", "1000", "-o", ours_file,
                    "--quiet"], check=True)
    hf = Tokenizer.from_file(ours_file)
    n_vocab = len(json.load(open(ours_file, encoding="utf-8"))["model"]["vocab"])
    # 1000 on tinyshakespeare; the small stand-in corpus may run out of pairs before
    if hf.get_vocab_size() != n_vocab or not 300 <= n_vocab <= 1000:
        fail(f"tokenizers reads {hf.get_vocab_size()} tokens from attnlab's file of {n_vocab}")
    for name, t, f in [("corpus", text, corpus), ("tricky text", TRICKY, tricky_file)]:
        theirs = hf.encode(t).ids
        compare(f"attnlab's tokenizer on the {name}", attnlab_ids(binary, ours_file, f), theirs)
        if hf.decode(theirs) != t:
            fail(f"tokenizers does not decode attnlab's ids of the {name} back to the text")
        if name == "corpus":
            n_corpus = len(theirs)
    print(f"attnlab's tokenizer: same ids in tokenizers on the whole corpus ({len(text)} chars, {n_corpus} tokens) "
          f"and the tricky text")

    # 2. a tokenizers file in attnlab
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<pad>"], show_progress=False)
    tok.train([corpus, tricky_file], trainer)
    theirs_file = os.path.join(work, "theirs.json")
    tok.save(theirs_file)
    doc = json.load(open(theirs_file, encoding="utf-8"))
    if not isinstance(doc["model"]["merges"][0], str):
        doc["model"]["merges"] = [" ".join(m) for m in doc["model"]["merges"]]
    strings_file = os.path.join(work, "theirs_strings.json")
    json.dump(doc, open(strings_file, "w", encoding="utf-8"), ensure_ascii=False)
    expected = {corpus: tok.encode(text).ids, tricky_file: tok.encode(TRICKY).ids}
    for tf in [theirs_file, strings_file]:
        for name, f in [("corpus", corpus), ("tricky text", tricky_file)]:
            compare(f"{os.path.basename(tf)} on the {name}", attnlab_ids(binary, tf, f), expected[f])
    print("tokenizers' tokenizer (merges as pairs and as strings): same ids in attnlab")


if __name__ == "__main__":
    main()
