#!/usr/bin/env bash
# End to end: the same seed and config give the same numbers for any thread count. For each
# attention variant (and the encoder-decoder kind, with dropout), a short training run with 1, 2
# and 3 threads must log the same losses, gradient norms and evaluation metrics, and save the same
# weights and AdamW moments, bit for bit. CI runs this under the native OpenBLAS kernel and under
# OPENBLAS_CORETYPE=Haswell (whose GEMM results depend on how a product is partitioned; see
# src/core/gemm.cpp). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# 3 threads on a 2-core machine: threads that sleep instead of spinning keep that fast (results are
# the same either way)
export OMP_WAIT_POLICY=passive

# the deterministic content of a run: metrics rows without wall-clock fields, then every tensor of
# the last checkpoint and its training state (names, shapes, dtypes and bytes), as one digest
digest() {
  /usr/bin/python3 - "$1" <<'PY'
import hashlib, json, os, struct, sys
run = sys.argv[1]
h = hashlib.sha256()
for line in open(os.path.join(run, "metrics.jsonl")):
    row = json.loads(line)
    for k in ("elapsed_s", "tokens_per_s"):
        row.pop(k, None)
    h.update(json.dumps(row, sort_keys=True).encode())
ck = os.path.join(run, "checkpoints")
name = open(os.path.join(ck, "latest")).read().strip()
for f in (name, name.replace(".safetensors", ".state.safetensors")):
    raw = open(os.path.join(ck, f), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    for t in sorted(k for k in header if k != "__metadata__"):
        e = header[t]
        lo, hi = e["data_offsets"]
        h.update(f"{t}{e['dtype']}{e['shape']}".encode())
        h.update(data[lo:hi])
print(h.hexdigest())
PY
}

common=(--set train.steps=12 --set train.log_interval=1 --set train.eval_interval=6 --set train.eval_batches=2 --set data.n_val=32)
check() {  # check LABEL CONFIG [--set ...]: runs it with 1, 2 and 3 threads and compares digests
  local label=$1 cfg=$2; shift 2
  local ref=""
  for t in 1 2 3; do
    "$bin" train "$cfg" --run-dir "$tmp/$label-$t" "${common[@]}" --set train.threads=$t "$@" > "$tmp/$label-$t.out" 2>&1 ||
      fail "$label with $t threads: $(tail -3 "$tmp/$label-$t.out")"
    d=$(digest "$tmp/$label-$t")
    if [ -z "$ref" ]; then ref=$d; elif [ "$d" != "$ref" ]; then fail "$label: $t threads differ from 1 thread"; fi
  done
  echo "ok   $label: 1, 2 and 3 threads identical"
}

dec="$src/configs/tasks/reverse_decoder.yaml"
for type in scaled_dot_product flash linear differential bahdanau; do
  check "$type" "$dec" --set model.attention.type=$type
done
check luong_concat_gqa "$dec" --set model.attention.type=luong --set model.attention.score=concat --set model.attention.n_kv_heads=1
check rope_dropout "$dec" --set model.positions=rope --set model.dropout=0.1 --set model.attention.dropout=0.1
check encoder_decoder "$src/configs/default.yaml" --set model.dropout=0.1 --set train.batch_size=16
echo "kernel: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<native>}"
