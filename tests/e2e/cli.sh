#!/usr/bin/env bash
# End to end: drive the attnlab binary like a user. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin" --version | grep -q '^attnlab [0-9]' || fail "--version"
"$bin" --help | grep -q train || fail "--help lists train"

# a bad config: exit 2 and one error line naming file:line:col and the key
printf 'model:\n  d_model: 384\n  n_heads: 5\n' > "$tmp/bad.yaml"
set +e
out=$("$bin" config check "$tmp/bad.yaml" 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "bad config exit code $rc"
grep -q "error: $tmp/bad.yaml:3:12: key 'model.n_heads'" <<<"$out" || fail "bad config message: $out"

set +e
out=$("$bin" train "$src/configs/tasks/reverse_decoder.yaml" --set model.n_head=2 --run-dir "$tmp/x" 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "unknown --set key exit code $rc"
grep -q "unknown key 'model.n_head'" <<<"$out" || fail "unknown --set key message: $out"
[ ! -e "$tmp/x" ] || fail "a rejected config must not create a run directory"

# the GEMM library is chosen by ATTNLAB_GEMM (src/core/gemm.cpp): anything but openblas or onednn is
# refused before any work, with exit 2 and the variable named
set +e
out=$(ATTNLAB_GEMM=mkl "$bin" config check "$src/configs/tasks/reverse_decoder.yaml" 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "bad ATTNLAB_GEMM exit code $rc"
grep -q "error: ATTNLAB_GEMM='mkl' is not a GEMM library" <<<"$out" || fail "bad ATTNLAB_GEMM message: $out"
ATTNLAB_GEMM=openblas "$bin" config check "$src/configs/tasks/reverse_decoder.yaml" >/dev/null ||
  fail "ATTNLAB_GEMM=openblas is accepted"

# train.precision takes fp32 or bf16; ATTNLAB_BF16_KERNEL, read when bf16 is asked for, names a
# kernel (amx, avx512bf16, none) or is refused with exit 2 before any step
set +e
out=$("$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/p" --set train.precision=fp16 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "train.precision=fp16 exit code $rc"
grep -q "train.precision" <<<"$out" && grep -q "bf16" <<<"$out" || fail "train.precision=fp16 message: $out"
set +e
out=$(ATTNLAB_BF16_KERNEL=tensorcores "$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/p2" \
  --set train.precision=bf16 --set train.steps=2 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "bad ATTNLAB_BF16_KERNEL exit code $rc"
grep -q "ATTNLAB_BF16_KERNEL='tensorcores' is not a bf16 kernel" <<<"$out" || fail "bad ATTNLAB_BF16_KERNEL message: $out"
[ ! -e "$tmp/p2/checkpoints" ] || fail "a refused bf16 kernel must not train"

set +e
"$bin" sample "$tmp/missing.safetensors" >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "missing checkpoint exit code $rc"
grep -q "cannot read checkpoint" "$tmp/err" || fail "missing checkpoint message"

# a short real run of the demo config, then sampling from its checkpoint
"$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/run" --set train.steps=60 --set train.eval_interval=30 \
  --set data.n_val=20 --set train.threads=1 > "$tmp/train.out"
grep -q "held-out reverse examples: exact match" "$tmp/train.out" || fail "train summary"
for f in config.yaml metrics.jsonl train.log checkpoints/latest; do [ -s "$tmp/run/$f" ] || fail "missing $f"; done
[ "$(grep -c '"split":"val"' "$tmp/run/metrics.jsonl")" -ge 2 ] || fail "val metrics"
"$bin" config check "$tmp/run/config.yaml" >/dev/null || fail "run config.yaml is valid"
ckpt="$tmp/run/checkpoints/$(cat "$tmp/run/checkpoints/latest")"
out=$("$bin" sample "$ckpt" --prompt "abcd=" --temperature 0 --max-new-tokens 5)
[[ "$out" == abcd=* ]] || fail "sample output: $out"
[ "${#out}" -eq 10 ] || fail "sample length: $out"
# sampling is reproducible for a seed
a=$("$bin" sample "$ckpt" --prompt "ab" --max-new-tokens 20 --seed 3)
b=$("$bin" sample "$ckpt" --prompt "ab" --max-new-tokens 20 --seed 3)
[ "$a" = "$b" ] || fail "same seed, different samples"
set +e
"$bin" sample "$ckpt" --prompt "xyz" > /dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "prompt outside the vocabulary exit code $rc"
# the finite-difference check of every registered attention variant
out=$("$bin" gradcheck --all) || fail "gradcheck --all failed: $out"
grep -Eq '^([0-9]+) of \1 cases pass$' <<<"$out" || fail "gradcheck summary: $(tail -n 1 <<<"$out")"
set +e
"$bin" gradcheck --attention nope >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "gradcheck unknown type exit code $rc"
echo "e2e cli: ok"
