#!/usr/bin/env bash
# End to end: `attnlab config check` and `attnlab train` give the same verdict.
#   every config of tests/config/broken/ (with the overrides its `# set:` line names): both exit 2
#     with exactly one `error:` line, the same line from both, and it contains the file's
#     `# expect:` text (the file:line:col of the key at fault, or the --set that gave it); train
#     leaves no run directory;
#   a few good configs (a decoder, an encoder, an encoder_decoder, text): both succeed, train in
#     2 steps;
#   the help of gradcheck and `config keys` name the attention types.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
corpus="$src/tests/config/broken"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# runs "$@" in the corpus directory (so that errors name the file as the test wrote it and its
# relative data paths resolve there); stdout and stderr go to $tmp/out, $tmp/err
run_in_corpus() {
  local rc=0
  (cd "$corpus" && "$bin" "$@") >"$tmp/out" 2>"$tmp/err" || rc=$?
  echo "$rc"
}

n=0
for file in "$corpus"/*.yaml; do
  name=$(basename "$file")
  want=$(sed -n 's/^# expect: //p' "$file")
  [ -n "$want" ] || fail "$name has no '# expect:' line"
  sets=()
  for kv in $(sed -n 's/^# set: //p' "$file"); do sets+=(--set "$kv"); done
  verdicts=()
  for cmd in "config check" "train"; do
    args=($cmd "$name" "${sets[@]}")
    [ "$cmd" = train ] && args+=(--run-dir "$tmp/run")
    rc=$(run_in_corpus "${args[@]}")
    [ "$rc" = 2 ] || { cat "$tmp/out" "$tmp/err"; fail "$cmd $name: exit $rc, expected 2"; }
    [ "$(grep -c '^error: ' "$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "$cmd $name: expected one error line"; }
    [ "$(grep -c . "$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "$cmd $name: more than the error line on stderr"; }
    grep -qF -e "$want" "$tmp/err" || { cat "$tmp/err"; fail "$cmd $name: the error does not say '$want'"; }
    verdicts+=("$(grep '^error: ' "$tmp/err")")
  done
  [ "${verdicts[0]}" = "${verdicts[1]}" ] ||
    fail "$name: config check and train differ:\n  ${verdicts[0]}\n  ${verdicts[1]}"
  [ ! -e "$tmp/run" ] || fail "train $name: a rejected config created the run directory"
  n=$((n + 1))
done
[ "$n" -ge 15 ] || fail "only $n broken configs found in $corpus"

# good configs: both succeed
quick=(--set train.steps=2 --set train.eval_batches=1 --set train.eval_interval=0 --set train.log_interval=1
       --set train.batch_size=4 --set train.warmup_steps=0)
cat >"$tmp/encoder.yaml" <<'YAML'
model: {kind: encoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 16, attention: {type: bidirectional}}
data: {task: parity, min_len: 2, max_len: 12, n_val: 20}
YAML
cat >"$tmp/encdec.yaml" <<'YAML'
model: {kind: encoder_decoder, n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 8, min_len: 2, max_len: 6, n_val: 20}
YAML
cat "$corpus/tiny.txt" "$corpus/tiny.txt" "$corpus/tiny.txt" "$corpus/tiny.txt" >"$tmp/text.txt"
cat >"$tmp/text.yaml" <<YAML
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 8}
data: {task: text, path: $tmp/text.txt, val_fraction: 0.25}
YAML
i=0
for cfg in "$src/configs/tasks/reverse_decoder.yaml" "$tmp/encoder.yaml" "$tmp/encdec.yaml" "$tmp/text.yaml"; do
  i=$((i + 1))
  "$bin" config check "$cfg" >"$tmp/out" 2>"$tmp/err" || { cat "$tmp/err"; fail "config check $cfg failed"; }
  grep -qF "$cfg: ok" "$tmp/out" || fail "config check $cfg did not say ok"
  "$bin" train "$cfg" --run-dir "$tmp/good$i" "${quick[@]}" >"$tmp/out" 2>"$tmp/err" ||
    { cat "$tmp/out" "$tmp/err"; fail "train $cfg failed"; }
  [ -e "$tmp/good$i/checkpoints" ] || fail "train $cfg wrote no checkpoints directory"
done

# the names gradcheck --attention takes, in its help and in `config keys`
"$bin" gradcheck --help >"$tmp/out"
for t in scaled_dot_product causal bidirectional bahdanau luong linear differential; do
  grep -q -- "--attention.*$t" "$tmp/out" || { cat "$tmp/out"; fail "gradcheck --help does not name '$t'"; }
done
"$bin" config keys | grep -F '`model.attention.type`' | grep -q 'bahdanau | ' ||
  fail "config keys does not list the attention types of model.attention.type"
echo "config check and train agree on $n broken configs and ${i} good ones"
