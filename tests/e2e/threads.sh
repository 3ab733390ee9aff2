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
# train.precision: bf16 (src/core/gemm_bf16.cpp): the same bits for any thread count as well, with
# each bf16 kernel the machine has, and other numbers than fp32's. Without a kernel (here forced by
# ATTNLAB_BF16_KERNEL=none, as on a CPU that has neither) the run says so and trains in fp32: it
# must equal the fp32 run bit for bit.
"$bin" train "$dec" --run-dir "$tmp/fp32-ref" "${common[@]}" --set train.threads=2 > "$tmp/fp32-ref.out" 2>&1 ||
  fail "fp32 reference run: $(tail -3 "$tmp/fp32-ref.out")"
fp32=$(digest "$tmp/fp32-ref")
ATTNLAB_BF16_KERNEL=none "$bin" train "$dec" --run-dir "$tmp/bf16-none" "${common[@]}" --set train.threads=2 \
  --set train.precision=bf16 > "$tmp/bf16-none.out" 2>&1 || fail "bf16 run without a kernel: $(tail -3 "$tmp/bf16-none.out")"
grep -q "warning: train.precision: bf16 needs a CPU with" "$tmp/bf16-none/train.log" ||
  fail "bf16 without a kernel: the log does not say so: $(head -4 "$tmp/bf16-none/train.log")"
grep -q "warning: train.precision: bf16 needs a CPU with" "$tmp/bf16-none.out" ||
  fail "bf16 without a kernel: the console does not say so"
[ "$(digest "$tmp/bf16-none")" = "$fp32" ] || fail "bf16 without a kernel: not fp32's run, bit for bit"
echo "ok   bf16 without a kernel: the run says so and equals fp32's"
"$bin" train "$dec" --run-dir "$tmp/bf16-probe" "${common[@]}" --set train.threads=2 --set train.precision=bf16 \
  > "$tmp/bf16-probe.out" 2>&1 || fail "bf16 run: $(tail -3 "$tmp/bf16-probe.out")"
kernels=$(grep -o "precision bf16 GEMM inputs ([a-z0-9]* kernel)" "$tmp/bf16-probe/train.log" | grep -o "([a-z0-9]*" | tr -d '(' || true)
[ "$kernels" = amx ] && kernels="amx avx512bf16"  # a CPU with AMX has AVX512-BF16 too
[ -n "$kernels" ] || echo "note: this machine has no bf16 kernel (AMX-BF16 or AVX512-BF16); bf16 runs were fp32"
for k in $kernels; do
  ATTNLAB_BF16_KERNEL=$k check "bf16-$k" "$dec" --set train.precision=bf16
  grep -q "($k kernel)" "$tmp/bf16-$k-1/train.log" || fail "bf16-$k: the log does not name the $k kernel"
  [ "$(digest "$tmp/bf16-$k-1")" != "$fp32" ] || fail "bf16-$k: the same numbers as fp32 (bf16 not in effect?)"
  # the flash kernel's bf16 tiles (src/attention/flash_bf16.cpp) in a whole training run
  ATTNLAB_BF16_KERNEL=$k check "bf16-flash-$k" "$dec" --set train.precision=bf16 --set model.attention.type=flash
done
echo "kernel: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<native>}"
