#!/usr/bin/env bash
# End to end: data.task parallel (docs/tasks.md). A tiny encoder_decoder trains a few steps on
# generated sentence pairs given as one TSV file and as two files; both read the same pairs, so
# their val rows agree, and metrics.jsonl and `attnlab eval` report bleu and chrf. Long pairs are
# dropped and counted in train.log. data.batch_tokens runs repeat for a seed and the log states the
# budget. Each malformed file is one clear error (exit 2) naming file and line.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
expect_error() {  # expect_error PATTERN CMD...: exit 2 and an error line matching PATTERN (grep -E)
  local pat=$1; shift
  set +e
  out=$("$@" 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "expected exit 2 from '$*', got $rc: $out"
  grep -qE "^error: .*$pat" <<<"$out" || fail "expected an error matching '$pat' from '$*': $out"
}

# pairs: a few words -> the same words reversed and upper-cased; every 25th pair is too long
/usr/bin/python3 - <<'PY'
import random
r = random.Random(3)
words = "one two three four five six seven eight nine ten cat dog sun".split()
src, tgt, n_long = [], [], 0
for i in range(400):
    n = 9 if i % 25 == 0 else r.randint(1, 3)
    s = " ".join(r.choice(words) for _ in range(n))
    t = " ".join(reversed(s.split())).upper()
    n_long += len(s.encode()) > 24 or len(t.encode()) > 24
    src.append(s); tgt.append(t)
open("pairs.tsv", "w").write("".join(f"{s}\t{t}\n" for s, t in zip(src, tgt)))
open("src.txt", "w").write("".join(s + "\n" for s in src))
open("tgt.txt", "w").write("".join(t + "\n" for t in tgt))
open("n_long", "w").write(str(n_long))
PY
cat > tsv.yaml <<'YAML'
model: {kind: encoder_decoder, block_size: 26, n_layers: 1, d_model: 32, n_heads: 2}
data: {task: parallel, path: pairs.tsv, max_len: 24, n_val: 20}
train: {steps: 12, batch_size: 8, lr: 3.0e-3, warmup_steps: 2, eval_interval: 6, eval_batches: 2, threads: 1,
        log_interval: 6}
YAML
"$bin" train tsv.yaml --run-dir tsv --quiet
grep -q "data: task parallel .*pairs.tsv: 400 line pairs.* $(cat n_long) dropped (longer than data.max_len 24 tokens)" \
  tsv/train.log || fail "train.log data line: $(grep data: tsv/train.log)"
"$bin" train tsv.yaml --run-dir two --quiet --set data.path= --set data.src_path=src.txt --set data.tgt_path=tgt.txt
/usr/bin/python3 - <<'PY'
import json
def val(d):
    rows = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tokens_per_s")} for r in rows if r.get("split") == "val"]
a, b = val("tsv"), val("two")
assert len(a) >= 2 and a == b, (a, b)
with_bleu = [r for r in a if "bleu" in r]
assert with_bleu, a
for r in with_bleu:
    assert 0.0 <= r["bleu"] <= 100.0 and 0.0 <= r["chrf"] <= 100.0, r
assert with_bleu[-1]["chrf"] > 0.0, a  # a few steps already get some characters right
PY
"$bin" eval tsv --split test --json --quiet > eval.json
/usr/bin/python3 -c "
import json; m = json.load(open('eval.json'))['metrics']
assert 'bleu' in m and 'chrf' in m and m['exact_match'] <= 1.0, m"

# token-budget batches: the same run twice gives the same losses; the log names the budget
for d in bt1 bt2; do
  "$bin" train tsv.yaml --run-dir $d --quiet --set data.batch_tokens=120 --set train.eval_interval=0
done
grep -q "batches within 120 padded tokens (data.batch_tokens)" bt1/train.log || fail "batch_tokens log: $(cat bt1/train.log)"
cmp <(grep -o '"loss":[^,]*' bt1/metrics.jsonl) <(grep -o '"loss":[^,]*' bt2/metrics.jsonl) || fail "batch_tokens runs differ"
cmp -s <(grep -o '"loss":[^,]*' bt1/metrics.jsonl) <(grep -o '"loss":[^,]*' tsv/metrics.jsonl) && fail "batch_tokens changed nothing"
# grad_accum 2 and, when MPI is built in, mpirun -np 2: the same rows cut into equal halves, so -np 2
# gives the bits of one process with grad_accum 2 (docs/distributed.md)
bt=(--quiet --set data.batch_tokens=120 --set train.eval_interval=6 --set train.grad_accum=2)
"$bin" train tsv.yaml --run-dir acc "${bt[@]}"
grep -q "2 micro-batches of equal rows" acc/train.log || fail "grad_accum log: $(cat acc/train.log)"
if "$bin" --version | grep -q "MPI: Open MPI" && command -v mpirun >/dev/null; then
  if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  mpirun --oversubscribe --bind-to none -np 2 "$bin" train tsv.yaml --run-dir np2 "${bt[@]}" --set train.grad_accum=1
  strip() { grep -o '"loss":[^,]*\|"grad_norm":[^,]*\|"chrf":[^,]*' "$1/metrics.jsonl"; }
  [ "$(strip acc | grep -c grad_norm)" -ge 2 ] || fail "no train rows in acc/metrics.jsonl"
  cmp <(strip acc) <(strip np2) || fail "mpirun -np 2 with data.batch_tokens differs from grad_accum 2"
fi
expect_error "data.batch_tokens = 20 cannot hold 1 row of the longest pair" "$bin" train tsv.yaml --run-dir bad --quiet \
  --set data.batch_tokens=20
expect_error "data.batch_tokens is for data.task parallel" "$bin" config check tsv.yaml --set data.task=reverse \
  --set data.path= --set data.batch_tokens=100 --set data.max_len=8

# malformed files: each one error line naming file and line
check() { expect_error "$1" "$bin" config check tsv.yaml "${@:2}"; }
head -n 399 tgt.txt > short.txt
check "data.src_path 'src.txt' has 400 lines but data.tgt_path 'short.txt' has 399" \
  --set data.path= --set data.src_path=src.txt --set data.tgt_path=short.txt
{ head -n 4 src.txt; echo; tail -n +6 src.txt; } > gap.txt
check "gap.txt:5: empty line" --set data.path= --set data.src_path=gap.txt --set data.tgt_path=tgt.txt
{ head -n 6 tgt.txt; printf 'ab\xffcd\n'; tail -n +8 tgt.txt; } > bad8.txt
check "bad8.txt:7:3: invalid UTF-8 at byte 3" --set data.path= --set data.src_path=src.txt --set data.tgt_path=bad8.txt
{ head -n 2 pairs.tsv; echo "no tab here"; } > notab.tsv
check "notab.tsv:3: no TAB" --set data.path=notab.tsv
printf 'a\tb\tc\n' > twotabs.tsv
check "twotabs.tsv:1: more than one TAB" --set data.path=twotabs.tsv
printf 'a\t\n' > emptytgt.tsv
check "emptytgt.tsv:1: empty target" --set data.path=emptytgt.tsv
check "data.path 'missing.tsv': cannot be read" --set data.path=missing.tsv
check "data.path '.': is a directory" --set data.path=.
check "not both" --set data.src_path=src.txt --set data.tgt_path=tgt.txt
check "needs its sentence pairs" --set data.path=
echo "parallel: OK"
