#!/usr/bin/env bash
# End to end: `attnlab bench attention` and `attnlab bench generate` on tiny sizes: the table,
# the CSV rows, the skip of lengths over the memory budget, and bad input -> exit 2 with an
# `error:` line. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- bench gemm: 12 products, fp32 and each bf16 kernel the machine has ----
"$bin" bench gemm --rows 40 --d-model 16 --d-ff 24 --repeats 2 --warmup 1 --threads 1 --quiet > "$tmp/g.out"
grep -Eq '^bench gemm \| rows 40, d_model 16, d_ff 24 \| fp32: [a-z+ -]+ \| bf16 kernels: .* \| threads 1$' "$tmp/g.out" ||
  fail "bench gemm first line: $(head -1 "$tmp/g.out")"
paths=$(sed -n 2p "$tmp/g.out" | grep -o ' ms ' | wc -l)  # one "X ms" column per path
grep -q "bf16 kernels: none" "$tmp/g.out" && want=1 || want=$((1 + $(head -1 "$tmp/g.out" | grep -o 'amx\|avx512bf16' | wc -l)))
[ "$paths" -eq "$want" ] || fail "bench gemm: $paths paths, expected $want: $(sed -n 2p "$tmp/g.out")"
# W1's layer: q/k/v (3d), output (d), MLP (d_ff) products, forward, dx and dW
for row in "qkv fwd +40 +48 +16 +ABT" "fc2 fwd +40 +16 +24 +ABT" "qkv dx +40 +16 +48 +AB" "fc1 dW +24 +16 +40 +ATB"; do
  grep -Eq "^$row( +[0-9]+\.[0-9]+){$((2 * paths))}$" "$tmp/g.out" || fail "bench gemm row '$row': $(cat "$tmp/g.out")"
done
[ "$(grep -cE '^(qkv|out|fc1|fc2) (fwd|dx|dW) ' "$tmp/g.out")" -eq 12 ] || fail "bench gemm: not 12 products"
grep -Eq "^total( +[0-9]+\.[0-9]+){$((2 * paths))}$" "$tmp/g.out" || fail "bench gemm total: $(cat "$tmp/g.out")"
[ "$(grep -c ' / fp32: ' "$tmp/g.out")" -eq $((paths - 1)) ] || fail "bench gemm ratio lines"
set +e
"$bin" bench gemm --rows 0 > /dev/null 2> "$tmp/g.err"; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "rows" "$tmp/g.err" || fail "bench gemm --rows 0: exit $rc, $(cat "$tmp/g.err")"

# ---- bench attention ----
"$bin" bench attention --types causal,linear --lengths 16,32 --heads 2 --head-dim 8 --backward --repeats 2 \
  --threads 1 --csv "$tmp/a.csv" > "$tmp/a.out"
grep -Eq '^type +mask +n +ms median +ms min +proj ms +GFLOP +GFLOP/s +peak extra MB$' "$tmp/a.out" ||
  fail "table header: $(cat "$tmp/a.out")"
for t in causal linear; do
  for n in 16 32; do
    grep -Eq "^$t +causal +$n( +[0-9]+\.[0-9]+){6}$" "$tmp/a.out" || fail "table row $t $n: $(cat "$tmp/a.out")"
  done
done
head -1 "$tmp/a.csv" | grep -qx 'type,impl,n,batch,heads,head_dim,kv_heads,causal,backward,threads,repeats,ms_median,ms_min,proj_ms,gflop,gflops,peak_extra_mb,est_buffers_mb,status' ||
  fail "csv header: $(head -1 "$tmp/a.csv")"
[ "$(wc -l < "$tmp/a.csv")" -eq 5 ] || fail "csv rows: $(cat "$tmp/a.csv")"
# every data row: 19 fields, the shape as asked, a positive time, status ok
awk -F, 'NR > 1 && !(NF == 19 && $4 == 1 && $5 == 2 && $6 == 8 && $7 == 2 && $8 == 1 && $9 == 1 && $10 == 1 &&
                    $11 == 2 && $12 > 0 && $13 > 0 && $13 <= $12 && $19 == "ok") { bad = 1; print }
         END { exit bad }' "$tmp/a.csv" || fail "csv values"
# the nominal FLOPs of causal n=16, B=1, H=2, D=8, C=16, fwd+bwd: 3·(4·2·16²·8 + 2·16·16·64) = 147456
awk -F, '$1 == "causal" && $3 == 16 { n++; v = $15 } END { exit !(n == 1 && v == "0.000147") }' "$tmp/a.csv" ||
  fail "gflop column"

# --core: the flash kernel alone; FLOPs as FlashAttention counts them, the causal half only:
# 3.5·2·B·H·n²·D = 3.5·2·1·2·32²·16 = 229376 causal, twice that without the mask
for mask in causal no-causal; do
  "$bin" bench attention --types flash --core --lengths 32 --heads 2 --head-dim 16 --backward --repeats 1 \
    --threads 1 --$mask --quiet --csv "$tmp/c_$mask.csv" > "$tmp/c_$mask.out"
  grep -q 'the flash kernel alone' "$tmp/c_$mask.out" || fail "--core header: $(cat "$tmp/c_$mask.out")"
done
awk -F, 'NR == 2 { exit !($1 == "flash" && $15 == "0.000229" && $14 == "0.000" && $19 == "ok") }' "$tmp/c_causal.csv" ||
  fail "--core causal csv: $(cat "$tmp/c_causal.csv")"
# --dtype bf16 on the CPU: the header names the kernel (the machine's best), or, where there is
# none, a clear error
set +e
"$bin" bench attention --types flash --core --lengths 32 --heads 2 --head-dim 16 --backward --repeats 1 \
  --threads 1 --quiet --dtype bf16 > "$tmp/c_bf16.out" 2> "$tmp/c_bf16.err"; rc=$?
set -e
if grep -q "bf16 kernels: none" "$tmp/g.out" || [ "${ATTNLAB_BF16_KERNEL:-}" = none ]; then
  [ "$rc" -eq 2 ] && grep -q "needs a CPU with AMX-BF16 or AVX512-BF16" "$tmp/c_bf16.err" ||
    fail "--dtype bf16 without a bf16 kernel: exit $rc, $(cat "$tmp/c_bf16.err")"
else
  [ "$rc" -eq 0 ] || fail "--dtype bf16: exit $rc, $(cat "$tmp/c_bf16.err")"
  grep -Eq '^bench attention \| gemm: .* \| threads 1 \| bf16 inputs \((amx|avx512bf16) kernel\)$' "$tmp/c_bf16.out" ||
    fail "--dtype bf16 header: $(head -1 "$tmp/c_bf16.out")"
  grep -Eq '^flash +causal +32( +[0-9]+\.[0-9]+){6}$' "$tmp/c_bf16.out" || fail "--dtype bf16 row: $(cat "$tmp/c_bf16.out")"
fi
# as on a CPU without either: the same clear error, exit 2
set +e
ATTNLAB_BF16_KERNEL=none "$bin" bench attention --types flash --core --lengths 32 --dtype bf16 --quiet \
  > /dev/null 2> "$tmp/c_none.err"; rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "^error: --dtype bf16 needs a CPU with AMX-BF16 or AVX512-BF16" "$tmp/c_none.err" ||
  fail "--dtype bf16 with ATTNLAB_BF16_KERNEL=none: exit $rc, $(cat "$tmp/c_none.err")"
grep -Eq '^bench attention \| gemm: .* \| threads 1 \| fp32$' "$tmp/c_causal.out" ||
  fail "fp32 header: $(head -1 "$tmp/c_causal.out")"
awk -F, 'NR == 2 { exit !($15 == "0.000459") }' "$tmp/c_no-causal.csv" || fail "--core no-causal gflop: $(cat "$tmp/c_no-causal.csv")"

# ---- bench peak: a row for 1 thread and one for --threads; per thread = total / threads; a
# figure no CPU core reaches (> 1000 GFLOP/s a thread) would mean the loop was optimised away
"$bin" bench peak --threads 2 --repeats 1 --seconds 0.02 > "$tmp/p.out"
grep -Eq '^bench peak \| (AVX-512 FMA|AVX2 FMA|SSE multiply \+ add) \([0-9]+ floats a vector\)' "$tmp/p.out" ||
  fail "bench peak header: $(cat "$tmp/p.out")"
awk '$1 ~ /^[12]$/ && NF == 3 { n++; if (!($2 > 0.5 && $3 > 0.5 && $3 < 1000 && ($2 / $1 - $3) ^ 2 < 0.01)) bad = 1 }
     END { exit !(n == 2 && !bad) }' "$tmp/p.out" || fail "bench peak rows: $(cat "$tmp/p.out")"

# forward only, no mask, a budget that skips the longer length
"$bin" bench attention --types scaled_dot_product --lengths 8,64 --heads 2 --head-dim 4 --no-causal --repeats 1 \
  --threads 1 --max-mem-gb 0.00001 --csv "$tmp/s.csv" > "$tmp/s.out"
grep -Eq '^scaled_dot_product +none +8( +[0-9.]+){6}$' "$tmp/s.out" || fail "no-causal row: $(cat "$tmp/s.out")"
grep -Eq '^scaled_dot_product +none +64 +skipped: .*--max-mem-gb' "$tmp/s.out" || fail "skip line: $(cat "$tmp/s.out")"
grep -q '^scaled_dot_product,auto,64,.*,skipped$' "$tmp/s.csv" || fail "skip csv: $(cat "$tmp/s.csv")"
grep -q '^scaled_dot_product,auto,8,1,2,4,2,0,0,' "$tmp/s.csv" || fail "forward-only csv: $(cat "$tmp/s.csv")"

expect_error() {  # expect_error PATTERN ARGS...: exit 2, an `error:` line matching PATTERN
  local pat=$1 rc
  shift
  set +e
  "$bin" "$@" > "$tmp/e.out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "exit $rc (expected 2) for: $* :: $(cat "$tmp/e.out")"
  grep -Eq "^error: .*$pat" "$tmp/e.out" || fail "no error line matching '$pat' for: $* :: $(cat "$tmp/e.out")"
}
expect_error "unknown attention type 'nope' \(known: .*causal.*\)" bench attention --types causal,nope --lengths 16
expect_error "--lengths: expected positive" bench attention --types causal --lengths 16,0
expect_error "n_heads" bench attention --types causal --lengths 16 --heads 3 --head-dim 8 --kv-heads 2
expect_error "--impl: expected naive, flash or auto" bench attention --types causal --lengths 16 --impl fast
expect_error "--core times the tiled kernel alone" bench attention --types linear --core --lengths 16
set +e
"$bin" bench peak --seconds 0 > /dev/null 2> "$tmp/p.err"; rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "seconds" "$tmp/p.err" || fail "bench peak --seconds 0: exit $rc, $(cat "$tmp/p.err")"
expect_error "cannot write" bench attention --types causal --lengths 16 --csv "$tmp/no/such/dir/a.csv"
[ ! -e "$tmp/no" ] || fail "a failed run must not create files"
set +e
"$bin" bench attention --types causal > /dev/null 2>&1; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "missing --lengths exit $rc"

# ---- bench generate ----
cfg=$src/configs/tasks/reverse_decoder.yaml  # block_size 32, a synthetic task: no data file needed
"$bin" bench generate "$cfg" --tokens 16 --repeats 2 --threads 1 > "$tmp/g.out"
for m in cache no-cache; do
  grep -Eq "^$m +[0-9]+\.[0-9] tokens/s +[0-9]+\.[0-9]{3} ms/token +\(median of 2; peak extra RSS [0-9.]+ MB\)$" \
    "$tmp/g.out" || fail "generate $m line: $(cat "$tmp/g.out")"
done
grep -Eq '^KV cache +[0-9.]+ MB' "$tmp/g.out" || fail "KV cache line"
grep -Eq '^speed-up +cache / no-cache = [0-9.]+x$' "$tmp/g.out" || fail "speed-up line"
# batch > 1 and a longer prompt, cache only; then a checkpoint
"$bin" bench generate "$cfg" --vocab 11 --tokens 8 --prompt-len 4 --batch 3 --repeats 1 --threads 1 --cache-only \
  > "$tmp/g3.out"
grep -q '^decode  *batch 3, prompt 4 token(s), 8 new tokens' "$tmp/g3.out" || fail "batch line: $(cat "$tmp/g3.out")"
grep -Eq '^cache +[0-9.]+ tokens/s' "$tmp/g3.out" || fail "batch 3 cache line"
! grep -q '^no-cache' "$tmp/g3.out" || fail "--cache-only ran the no-cache path"
# the memory line: MB read per cached step = the weights + K/V of the average cached length
# (prompt + (tokens − 1)/2 positions, each KV-cache-MB / block_size 32); both runs must imply the
# same weight bytes
mem_re='^memory +([0-9.]+) MB read per cached step .*: [0-9.]+ GB/s = [0-9]+% of the [0-9.]+ GB/s measured'
for f in g g3; do grep -Eq "$mem_re" "$tmp/$f.out" || fail "memory line ($f): $(cat "$tmp/$f.out")"; done
w1=$(awk '/^memory/ {r=$2} /^KV cache/ {k=$3} END {printf "%.4f", r - (1 + 15 / 2) * k / 32}' "$tmp/g.out")
w3=$(awk '/^memory/ {r=$2} /^KV cache/ {k=$3} END {printf "%.4f", r - (4 + 7 / 2) * k / 32}' "$tmp/g3.out")
awk -v a="$w1" -v b="$w3" 'BEGIN { d = a - b; exit !(a > 0 && d < 0.011 && d > -0.011) }' ||
  fail "memory lines imply different weight sizes: $w1 vs $w3 MB"
# and those are the parameters in fp32 (the model line rounds the count to 0.01 M)
mp=$(awk '/^model/ {print $2}' "$tmp/g.out")
awk -v w="$w1" -v p="$mp" 'BEGIN { d = w - p * 4e6 / 1048576; exit !(d < 0.03 && d > -0.03) }' ||
  fail "memory line: weights $w1 MB, but the model has $mp M parameters"
"$bin" train "$cfg" --run-dir "$tmp/run" --set train.steps=1 --set train.eval_interval=1 --set data.n_val=4 \
  --set train.threads=1 > /dev/null
ck=$(ls "$tmp"/run/checkpoints/step_*.safetensors | grep -v state | head -1)
"$bin" bench generate "$ck" --tokens 8 --repeats 1 --no-cache > "$tmp/gc.out"
grep -Eq '^no-cache +[0-9.]+ tokens/s' "$tmp/gc.out" || fail "checkpoint generate: $(cat "$tmp/gc.out")"
! grep -q '^cache ' "$tmp/gc.out" || fail "--no-cache ran the cached path"

# --context (E8): greedy decoding after 40 cached tokens; rope lets the model grow past block_size 32
"$bin" bench generate "$cfg" --vocab 11 --context 40 --tokens 4 --repeats 2 --threads 1 \
  --set model.positions=rope --set model.attention.n_kv_heads=2 > "$tmp/gx.out"
grep -Eq '^ms/token +[0-9.]+ \(median; every repeat: [0-9.]+ [0-9.]+\)$' "$tmp/gx.out" || fail "context ms: $(cat "$tmp/gx.out")"
# d_head 16, 2 KV heads: K and V of 2 heads = 64 values per token in each of the 2 layers
grep -Eq '^cache values +per token per layer: 64 64 \(read from the caches, 44 positions\)$' "$tmp/gx.out" ||
  fail "context cache values: $(cat "$tmp/gx.out")"
expect_error "44 positions exceed its model.block_size 32" bench generate "$ck" --context 40 --tokens 4
expect_error "--tokens.*block_size 32" bench generate "$cfg" --tokens 40
expect_error "--tokens: expected a positive" bench generate "$cfg" --tokens 0
expect_error "cannot read checkpoint" bench generate "$tmp/missing.safetensors"
echo "bench e2e: ok"
