#!/usr/bin/env bash
# End to end: the experiment measurement bleu_by_length (docs/experiments.md, "Running
# experiments"). A tiny encoder_decoder (RoPE) trains 300 steps on a make_parallel.py corpus with
# sources of at most 30 bytes; the measurement evaluates with data.max_len=60 (longer sources than
# trained on) and the buckets 1-15 / 16-30 / 31-60. The test decodes the same (final) checkpoint
# with `attnlab eval --set data.max_len=60 --show N`, groups the shown outputs by source length
# itself and scores each bucket with the sacrebleu package: the per-bucket counts in done.json
# must agree exactly, BLEU and chrF in results.csv to 0.01. scripts/plot_bleu_length.py draws
# them and prints the table. Bad bleu_by_length settings are clear errors (exit 2).
# Needs sacrebleu and matplotlib in .venv (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" sacrebleu matplotlib

/usr/bin/python3 "$src/scripts/make_parallel.py" --out nums --n 1500 --seed 3 --min-len 5 --max-len 60 \
  --langs en --format tsv >/dev/null
cat > base.yaml <<'YAML'
model: {kind: encoder_decoder, block_size: 32, n_layers: 1, d_model: 32, n_heads: 2, d_ff: 64, positions: rope}
data: {task: parallel, path: nums.tsv, max_len: 30, n_val: 60, val_fraction: 0.1}
train: {steps: 300, batch_size: 16, lr: 3.0e-3, warmup_steps: 20, eval_interval: 300, eval_batches: 1, threads: 1,
        log_interval: 100, seed: 1}
YAML
cat > exp.yaml <<'YAML'
experiment: bleulen
base: base.yaml
grid: {model.decoder.cross_attention.type: [scaled_dot_product]}
bleu_by_length: {edges: [15, 30, 60], set: [data.max_len=60]}
metrics: [bleu, bleu_by_length, chrf_by_length]
YAML
"$bin" experiment run exp.yaml --out out --no-plot --quiet >run.out 2>&1 || { cat run.out; fail "experiment run"; }
head -1 out/results.csv | grep -q 'bleu_len_1-15,bleu_len_16-30,bleu_len_31-60,chrf_len_1-15,chrf_len_16-30,chrf_len_31-60' ||
  fail "results.csv columns: $(head -1 out/results.csv)"
grep -q 'bleu_len_31-60' out/results.md || fail "results.md lacks the bucket columns"
cell=$(ls out/cells)
ckpt=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "out/cells/$cell/done.json")
"$bin" eval "out/cells/$cell/$ckpt" --set data.max_len=60 --show 1000 --quiet >eval.out
"$py" - "out/cells/$cell/done.json" out/results.csv eval.out nums.tsv <<'PY'
import csv, json, re, sys
import sacrebleu
done = json.load(open(sys.argv[1]))
row = next(csv.DictReader(open(sys.argv[2])))
target = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[4], encoding="utf-8"))
edges, labels = [15, 30, 60], ["1-15", "16-30", "31-60"]
hyps = {l: [] for l in labels}
refs = {l: [] for l in labels}
shown = 0
for line in open(sys.argv[3], encoding="utf-8"):
    m = re.match(r"^  (.*?) -> (.*)  (ok|\(expected .*\))$", line.rstrip("\n"))
    if not m:
        continue
    shown += 1
    src, hyp = m.group(1), m.group(2)
    n = len(src.encode())  # char tokens are bytes
    b = next(l for e, l in zip(edges, labels) if n <= e)
    hyps[b].append(hyp)
    refs[b].append(target[src])
counts = done["measurements"]["counts"]
assert shown == 60, shown
assert all(counts[l] == len(hyps[l]) for l in labels) and counts["beyond"] == 0, (counts, {l: len(hyps[l]) for l in labels})
assert counts["31-60"] > 0 and counts["1-15"] + counts["16-30"] > 0, counts  # data.max_len=60 took effect
for l in labels:
    bleu = sacrebleu.corpus_bleu(hyps[l], [refs[l]]).score
    chrf = sacrebleu.corpus_chrf(hyps[l], [refs[l]]).score
    got_b, got_c = float(row["bleu_len_" + l]), float(row["chrf_len_" + l])
    assert abs(got_b - bleu) < 0.01 and abs(got_c - chrf) < 0.01, (l, got_b, bleu, got_c, chrf)
    assert done["measurements"]["values"]["chrf_len_" + l] == got_c
assert any(float(row["chrf_len_" + l]) > 0 for l in labels), row
print("buckets", counts, {l: round(float(row["chrf_len_" + l]), 2) for l in labels})
PY
"$py" "$src/scripts/plot_bleu_length.py" out --markdown >table.md 2>/dev/null || fail "plot_bleu_length.py"
[ "$(head -c 8 out/out_bleu_by_length.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "no PNG"
want=$("$py" -c "import csv; r=next(csv.DictReader(open('out/results.csv'))); print('%.1f' % float(r['bleu_len_31-60']))")
grep -qE "^\| scaled_dot_product \| .* \| $want \(1\) \|$" table.md || fail "table: $(cat table.md), want $want"

expect_error() {  # expect_error PATTERN FILE: exit 2 and an error line matching PATTERN
  set +e
  out=$("$bin" experiment run "$2" --out bad --dry-run 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] && grep -qE "^error: .*$1" <<<"$out" || fail "expected exit 2 and '$1' from $2, got $rc: $out"
}
sed 's/edges: \[15, 30, 60\]/edges: [30, 15]/' exp.yaml >e1.yaml
expect_error "bleu_by_length.edges: expected ascending positive integers .* got '15'" e1.yaml
sed 's/data.max_len=60/model.d_model=64/' exp.yaml >e2.yaml
expect_error "bleu_by_length.set: 'model.d_model=64': expected data.KEY=VALUE" e2.yaml
grep -v '^bleu_by_length' exp.yaml >e3.yaml
expect_error "metrics: 'bleu_by_length' needs the key bleu_by_length" e3.yaml
sed 's/task: parallel, path: nums.tsv/task: mqar, n_symbols: 16, n_pairs: 2/; s/kind: encoder_decoder/kind: decoder/' \
  base.yaml >base_mqar.yaml
sed 's/base.yaml/base_mqar.yaml/; s/grid: .*/grid: {train.seed: [1]}/; s/metrics: .*/metrics: [loss]/' exp.yaml >e4.yaml
expect_error "measurement bleu_by_length needs a seq2seq task" e4.yaml
echo "bleu_by_length: OK"
