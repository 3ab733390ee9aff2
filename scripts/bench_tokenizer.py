#!/usr/bin/env python3
"""attnlab's byte-level BPE against the Hugging Face `tokenizers` package on one corpus, side by side:
training time at the same vocabulary size, and encoding speed (MB/s) of the whole corpus in one
call with the same tokenizer file, both single-threaded (RAYON_NUM_THREADS=1). The two alternate,
run after run, so that a load on a shared machine falls on both; the medians are printed.

attnlab's figures are its own in-process timings (`attnlab tokenizer bench --json`: Bpe::train and
one Tokenizer::encode, files read beforehand); the peer's are timed around tokenizers' train and
encode calls in this process, once encoding the whole text in one call as attnlab does and once
as a batch of its lines (encode_batch, still one thread), which suits tokenizers better. Each encode starts from a freshly loaded tokenizer (both tokenizers
cache the words they have merged: attnlab for the duration of one call, `tokenizers` for the life
of the Tokenizer object).

Run with the repository's venv (scripts/setup.sh):
  .venv/bin/python scripts/bench_tokenizer.py data/tinyshakespeare.txt --vocab-size 4096 --runs 5
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402


def attnlab_bench(binary, corpus, tok_file, train_vocab):
    cmd = [binary, "tokenizer", "bench", corpus, "--tokenizer", tok_file, "--runs", "1", "--json"]
    if train_vocab:
        cmd += ["--train-vocab", str(train_vocab)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def peer_train(corpus, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    t0 = time.perf_counter()
    tok.train([corpus], trainer)
    return time.perf_counter() - t0


def peer_encode(tok_file, text):
    tok = Tokenizer.from_file(tok_file)
    t0 = time.perf_counter()
    n = len(tok.encode(text).ids)
    return time.perf_counter() - t0, n


def peer_encode_lines(tok_file, lines):
    tok = Tokenizer.from_file(tok_file)
    t0 = time.perf_counter()
    tok.encode_batch(lines)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "build", "attnlab"))
    a = ap.parse_args()
    text = open(a.corpus, encoding="utf-8").read()
    mb = len(text.encode("utf-8")) / 1e6
    with tempfile.TemporaryDirectory() as d:
        tok_file = os.path.join(d, "tok.json")
        subprocess.run([a.binary, "tokenizer", "train", a.corpus, "--vocab-size", str(a.vocab_size), "-o", tok_file,
                        "--quiet"], check=True)
        lines = text.splitlines(keepends=True)
        ours_train, ours_enc, peer_tr, peer_enc, peer_lines = [], [], [], [], []
        n_ours = n_peer = 0
        for _ in range(a.runs):
            r = attnlab_bench(a.binary, a.corpus, tok_file, a.vocab_size)
            ours_train.append(r["train_s"])
            ours_enc.append(r["encode_s"])
            n_ours = r["tokens"]
            peer_tr.append(peer_train(a.corpus, a.vocab_size))
            s, n_peer = peer_encode(tok_file, text)
            peer_enc.append(s)
            peer_lines.append(peer_encode_lines(tok_file, lines))
    if n_ours != n_peer:
        print(f"warning: attnlab gives {n_ours} tokens, tokenizers {n_peer}", file=sys.stderr)
    med = statistics.median
    print(f"corpus {a.corpus}: {mb:.2f} MB, vocabulary {a.vocab_size}, {n_ours} tokens; medians of {a.runs} "
          f"alternating runs, single-threaded")
    print(f"{'':26} {'train s':>9} {'encode s':>9} {'encode MB/s':>12}")
    print(f"{'attnlab':26} {med(ours_train):9.3f} {med(ours_enc):9.3f} {mb / med(ours_enc):12.2f}")
    print(f"{'tokenizers':26} {med(peer_tr):9.3f} {med(peer_enc):9.3f} {mb / med(peer_enc):12.2f}")
    print(f"{'tokenizers, lines batched':26} {'':>9} {med(peer_lines):9.3f} {mb / med(peer_lines):12.2f}")


if __name__ == "__main__":
    main()
