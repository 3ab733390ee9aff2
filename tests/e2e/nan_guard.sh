#!/usr/bin/env bash
# End to end: an absurd learning rate (docs/reliability.md). train.lr: 1e6 is a legal
# config (the rate has no upper bound) that diverges within a few steps, and the trainer's NaN/Inf
# guard must catch it cleanly:
#   train.on_nan: stop -> exit 2, exactly one `error:` line that names the step and says which
#                         checkpoint is the last good one (or that none was written);
#   train.on_nan: skip -> exit 0, the skipped steps counted in the summary and in metrics.jsonl.
# In both modes every checkpoint written must hold finite weights only (read with a few lines of
# standard-library Python: a safetensors file is a length, a JSON header and raw tensors).
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=${ATTNLAB_PYTHON:-/usr/bin/python3}

# every *.safetensors under $1: F32 tensors all finite; prints how many files and tensors it read
check_finite() {
  "$py" - "$1" <<'PY'
import json, math, pathlib, struct, sys
from array import array
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.safetensors"))
tensors = 0
for f in files:
    raw = f.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    body = raw[8 + n:]
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        vals = array("f")
        vals.frombytes(body[a:b])
        if sys.byteorder != "little":
            vals.byteswap()
        bad = sum(1 for v in vals if not math.isfinite(v))
        if bad:
            print(f"{f}: tensor {name}: {bad} non-finite values of {len(vals)}")
            sys.exit(1)
        tensors += 1
print(f"{len(files)} {tensors}")
PY
}

# a small decoder (a few seconds per run): warmup off so step 1 already uses the full rate, a checkpoint
# after every step so that a bad state would be written if the guard let one through
common=(--set model.n_layers=1 --set model.d_model=32 --set model.n_heads=2 --set train.batch_size=8
        --set train.lr=1e6 --set train.warmup_steps=0 --set train.steps=30 --set train.eval_interval=0
        --set train.checkpoint_interval=1 --set train.keep_checkpoints=100 --set train.log_interval=1
        --set data.n_val=20 --set train.threads=1)
cfg="$src/configs/tasks/reverse_decoder.yaml"

# --- on_nan: stop ------------------------------------------------------------------------------
set +e
"$bin" train "$cfg" --run-dir "$tmp/stop" "${common[@]}" >"$tmp/stop.out" 2>"$tmp/stop.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "on_nan stop: exit $rc, expected 2; stderr: $(cat "$tmp/stop.err")"
[ "$(grep -c '^error: ' "$tmp/stop.err")" -eq 1 ] || fail "on_nan stop: expected one error line: $(cat "$tmp/stop.err")"
line=$(grep '^error: ' "$tmp/stop.err")
[[ "$line" =~ ^error:\ step\ ([0-9]+):\ the\ (loss|gradient\ norm)\ is\ (NaN|Inf|-Inf|inf|nan|-inf) ]] ||
  fail "on_nan stop: the error line does not name the step and the bad value: $line"
step=${BASH_REMATCH[1]}
[ "$step" -ge 1 ] && [ "$step" -le 30 ] || fail "on_nan stop: step $step out of range"
grep -q "train.on_nan: skip" <<<"$line" || fail "on_nan stop: the error line does not say what to do: $line"
if [ "$step" -eq 1 ]; then
  grep -q "no checkpoint was saved yet" <<<"$line" || fail "on_nan stop at step 1 names a checkpoint: $line"
else
  # the last good checkpoint is the one after step − 1, and it exists
  [[ "$line" =~ the\ last\ good\ checkpoint\ is\ ([^ ]+\.safetensors) ]] || fail "on_nan stop: no checkpoint named: $line"
  good=${BASH_REMATCH[1]}
  [ -s "$good" ] || fail "on_nan stop: the named checkpoint $good does not exist"
  [ "$(cat "$tmp/stop/checkpoints/latest")" = "$(basename "$good")" ] || fail "on_nan stop: latest is not $good"
fi
n=$(check_finite "$tmp/stop") || fail "on_nan stop: a checkpoint holds non-finite weights: $n"
echo "on_nan stop: $line"
echo "on_nan stop: checkpoints read (files tensors): $n"

# --- on_nan: skip ------------------------------------------------------------------------------
"$bin" train "$cfg" --run-dir "$tmp/skip" "${common[@]}" --set train.on_nan=skip >"$tmp/skip.out" 2>"$tmp/skip.err" ||
  fail "on_nan skip: exit $?; stderr: $(cat "$tmp/skip.err")"
skipped=$(grep -c '"skipped":true' "$tmp/skip/metrics.jsonl" || true)
[ "$skipped" -ge 1 ] || fail "on_nan skip: no skipped step in metrics.jsonl"
grep -Eq "note: $skipped steps? (was|were) skipped because of a NaN/Inf loss or gradient" "$tmp/skip.out" ||
  fail "on_nan skip: the summary does not count $skipped skipped steps: $(tail -n 5 "$tmp/skip.out")"
n=$(check_finite "$tmp/skip") || fail "on_nan skip: a checkpoint holds non-finite weights: $n"
echo "on_nan skip: $skipped of 30 steps skipped; checkpoints read (files tensors): $n"
echo "e2e nan_guard: ok"
