#!/usr/bin/env bash
# End to end: data.task parallel with BPE tokens and with separate vocabularies (docs/tasks.md).
#  - parallel + bpe trains, reports bleu and chrf, and its checkpoint carries the tokenizer: eval,
#    sample and inspect work with the tokenizer file gone;
#  - data.shared_vocab false (chars and bpe): the source and target ids are disjoint ranges of the
#    one vocabulary, and decoded outputs hold no source-only token (decoding masks those ids);
#  - eval --set data.src_path/tgt_path (and data.path) evaluates a checkpoint on other files with
#    its own vocabulary; a byte it lacks is <unk>, counted in a note;
#  - train --resume of a BPE run keeps the checkpoint's tokenizer when the file is deleted or
#    changed, and equals the uninterrupted run;
#  - metrics.csv has the loss_per_char column of metrics.jsonl.
# Corpus: scripts/make_parallel.py (number words in four languages -> numerals), a few steps each.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

/usr/bin/python3 "$src/scripts/make_parallel.py" --out num --n 600 --seed 1 --max-len 40 >/dev/null
/usr/bin/python3 "$src/scripts/make_parallel.py" --out other --n 80 --seed 2 --max-len 40 >/dev/null
printf 'vingt-deux €\t22\n' >>other.tsv  # '€' is in no line of num: the checkpoint reads its bytes as <unk>
"$bin" tokenizer train num.src num.tgt --vocab-size 300 -o tok.json --quiet
cat > bpe.yaml <<'YAML'
model: {kind: encoder_decoder, block_size: 48, n_layers: 1, d_model: 32, n_heads: 2}
data: {task: parallel, src_path: num.src, tgt_path: num.tgt, max_len: 40, n_val: 16, tokenizer: bpe,
       tokenizer_file: tok.json}
train: {steps: 8, batch_size: 8, lr: 3.0e-3, warmup_steps: 2, eval_interval: 4, eval_batches: 2, threads: 1,
        log_interval: 4}
YAML
# inspect_json RUN: the checkpoint's tokenizer report (inspect --json)
inspect_tok() { "$bin" inspect "$1/checkpoints/best.safetensors" --json 2>/dev/null > "$1.inspect.json"; }

# --- BPE, one vocabulary
"$bin" train bpe.yaml --run-dir bpe --quiet
grep -q "data: task parallel .*BPE tokens, one vocabulary for both sides" bpe/train.log \
  || fail "train.log data line: $(grep data: bpe/train.log)"
mv tok.json tok.saved  # from here on the checkpoints must carry what they need
"$bin" eval bpe --json --quiet > bpe_eval.json 2>/dev/null
"$bin" sample bpe --input "twenty-two" > bpe_sample.txt 2>/dev/null
grep -q "^twenty-two -> " bpe_sample.txt || fail "sample: $(cat bpe_sample.txt)"
inspect_tok bpe
/usr/bin/python3 - <<'PY'
import json
rows = [json.loads(l) for l in open("bpe/metrics.jsonl")]
val = [r for r in rows if r.get("split") == "val"]
assert val and all("bleu" in r and "chrf" in r for r in val), val
m = json.load(open("bpe_eval.json"))["metrics"]
assert 0 <= m["bleu"] <= 100 and 0 <= m["chrf"] <= 100, m
t = json.load(open("bpe.inspect.json"))["tokenizer"]
assert t["type"] == "bpe" and t["vocab_size"] == 304, t  # 300 BPE ids, then <sep> <end> <pad> <unk>
assert t["vocab"][300:] == ["<sep>", "<end>", "<pad>", "<unk>"], t["vocab"][300:]
PY

# --- separate vocabularies: chars, then bpe
"$bin" train bpe.yaml --run-dir sep --quiet --set data.tokenizer=chars --set data.tokenizer_file= \
  --set data.shared_vocab=false
grep -q "char tokens, separate source (ids 0\.\.[0-9]*) and target" sep/train.log \
  || fail "train.log data line: $(grep data: sep/train.log)"
inspect_tok sep
# sampled answers (temperature 1: any allowed token can come) of the split model, and of a shared
# vocabulary model as the control: it does emit letters, so the check below can fail
"$bin" train bpe.yaml --run-dir shared --quiet --set data.tokenizer=chars --set data.tokenizer_file=
inputs=(); while read -r line; do inputs+=(--input "$line"); done < <(head -n 12 num.src)
for r in sep shared; do "$bin" sample $r --temperature 1 --seed 1 --max-new-tokens 12 "${inputs[@]}" > $r.out 2>/dev/null; done
"$bin" train bpe.yaml --run-dir sepbpe --quiet --set data.shared_vocab=false --set data.tokenizer_file=tok.saved
"$bin" eval sepbpe --quiet > /dev/null 2>&1
inspect_tok sepbpe
/usr/bin/python3 - <<'PY'
import json
t = json.load(open("sep.inspect.json"))["tokenizer"]
(s0, s1), (t0, t1) = t["source_ids"], t["target_ids"]
assert s0 == 0 and s1 + 1 == t0 and t1 + 5 == t["vocab_size"], t
vocab = t["vocab"]
src_tok, tgt_tok = set(vocab[s0:s1 + 1]), set(vocab[t0:t1 + 1])
src_bytes = {chr(b) for b in open("num.src", "rb").read() if b < 128}
assert tgt_tok <= set("0123456789 "), tgt_tok  # the targets are numerals
assert "a" in src_tok and "," in src_tok and not ({"a", "e", ","} & tgt_tok), (src_tok, tgt_tok)
source_only = (src_tok - tgt_tok) & src_bytes  # letters, commas, hyphens
# the answers ("INPUT -> OUTPUT   (expected ...)") hold no source-only token; the control's do
def outputs(f):
    outs = [l.split(" -> ", 1)[1].split("   (")[0] for l in open(f, encoding="utf-8", errors="replace")]
    assert len(outs) == 12, open(f).read()
    return [set(o.replace("<end>", "").replace("<pad>", "").replace("<sep>", "").replace("<unk>", "")) for o in outs]
assert all(not (o & source_only) for o in outputs("sep.out")), open("sep.out").read()
assert any(o & source_only for o in outputs("shared.out")), open("shared.out").read()
# bpe: the one file twice, the target ids offset by its size (decoded text cannot tell the sides
# apart here: both hold the same tokens; tests/model/test_generate.cpp checks the ids)
b = json.load(open("sepbpe.inspect.json"))["tokenizer"]
assert b["type"] == "split" and b["source_ids"] == [0, 299] and b["target_ids"] == [300, 599], b
assert b["vocab_size"] == 604 and b["vocab"][:300] == b["vocab"][300:600], b["vocab_size"]
PY

# --- eval on other files: two files, a TSV file; the vocabulary stays the checkpoint's
"$bin" eval sep --json --quiet --set data.src_path=other.src --set data.tgt_path=other.tgt > o1.json 2>o1.err
"$bin" eval sep --json --quiet --set data.path=other.tsv --set data.val_fraction=0.3 > o2.json 2>o2.err
grep -q "note: data: .*other.tsv: 81 line pairs.*bytes outside the vocabulary read as <unk>" o2.err \
  || fail "eval --set data.path: $(cat o2.err)"
"$bin" eval bpe --json --quiet --set data.path=other.tsv > o3.json 2>/dev/null
/usr/bin/python3 - <<'PY'
import json
a, b, c = (json.load(open(f)) for f in ("o1.json", "o2.json", "o3.json"))
assert a["overrides"]["data.src_path"] == {"value": "other.src", "trained": "num.src"}, a["overrides"]
assert b["overrides"]["data.path"]["value"] == "other.tsv", b["overrides"]
for r in (a, b, c):
    assert "bleu" in r["metrics"] and "chrf" in r["metrics"], r
PY
set +e
out=$("$bin" eval sep --set data.src_path=missing.src 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "^error: .*missing.src" <<<"$out" || fail "eval on a missing file: rc $rc: $out"
set +e
out=$("$bin" config check bpe.yaml --set data.task=text --set data.path=num.src --set model.kind=decoder \
  --set data.shared_vocab=false 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "^error: .*data.shared_vocab.*false is for data.task parallel" <<<"$out" \
  || fail "shared_vocab false on text: rc $rc: $out"

# --- resume of a BPE text run: the checkpoint's tokenizer, whatever happened to the file
cp tok.saved tok.json
cat > text.yaml <<'YAML'
model: {kind: decoder, block_size: 32, n_layers: 1, d_model: 32, n_heads: 2}
data: {task: text, path: num.tsv, tokenizer: bpe, tokenizer_file: tok.json}
train: {steps: 8, batch_size: 4, lr: 3.0e-3, warmup_steps: 2, schedule: constant, eval_interval: 2, eval_batches: 2,
        threads: 1, log_interval: 2, checkpoint_interval: 2}  # constant: the lr does not depend on train.steps
YAML
"$bin" train text.yaml --run-dir full --quiet
"$bin" train text.yaml --run-dir part --quiet --set train.steps=4
rm tok.json
"$bin" train --resume part --quiet --set train.steps=6
"$bin" tokenizer train num.tgt --vocab-size 260 -o tok.json --quiet  # another tokenizer under the same name
"$bin" train --resume part --quiet --set train.steps=8
/usr/bin/python3 - <<'PY'
import csv, json
def rows(d):
    return [{k: v for k, v in json.loads(l).items() if k not in ("elapsed_s", "tokens_per_s")}
            for l in open(f"{d}/metrics.jsonl")]
assert rows("full") == rows("part"), (rows("full"), rows("part"))
# metrics.csv: loss_per_char, the same value as metrics.jsonl's, in the last column
with open("full/metrics.csv") as f:
    table = list(csv.DictReader(f))
    header = f.seek(0) or f.readline().strip().split(",")
assert header[-1] == "loss_per_char", header
js = [json.loads(l) for l in open("full/metrics.jsonl")]
val = [(c, j) for c, j in zip(table, js) if j["split"] == "val"]
assert val and all(c["loss_per_char"] and float(c["loss_per_char"]) == j["loss_per_char"] for c, j in val), val
assert all(c["loss_per_char"] == "" for c, j in zip(table, js) if j["split"] == "train")
PY
echo "parallel_vocab: OK"
