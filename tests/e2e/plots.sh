#!/usr/bin/env bash
# scripts/plot_metrics.py and scripts/plot_attention.py make PNGs from a real (tiny) run and
# its attention dump, and fail with one `error:` line on a bad directory. They run with the
# repository's .venv/bin/python (scripts/setup.sh installs matplotlib there); without it: exit 77
# (skipped), or a failure under CI (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
source "$(dirname "$0")/lib/venv.sh"
venv_python "$src" matplotlib numpy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$1 is not a PNG"; }

for r in a b; do
  "$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/$r" --set train.steps=30 --set train.threads=1 \
    --set model.d_model=16 --set model.n_layers=2 --set train.batch_size=4 --set data.n_val=5 \
    --set train.log_interval=5 --set train.eval_interval=10 --set train.seed=$((RANDOM % 1000)) >/dev/null
done
$py "$src/scripts/plot_metrics.py" "$tmp/a" "$tmp/b" -o "$tmp/loss.png" >/dev/null || fail "plot_metrics"
png "$tmp/loss.png"
$py "$src/scripts/plot_metrics.py" "$tmp/a" >/dev/null || fail "plot_metrics default output"
png "$tmp/a/loss.png"
"$bin" inspect "$tmp/a" --input "abc=cba." --dump "$tmp/dump" >/dev/null || fail "inspect --dump"
$py "$src/scripts/plot_attention.py" "$tmp/dump" -o "$tmp/attn.png" >/dev/null || fail "plot_attention"
png "$tmp/attn.png"
$py "$src/scripts/plot_attention.py" "$tmp/dump" --layers 1 --heads 0,2 -o "$tmp/attn1.png" >/dev/null ||
  fail "plot_attention --layers --heads"
png "$tmp/attn1.png"

for cmd in "plot_metrics.py $tmp/nothing" "plot_metrics.py $tmp/dump" "plot_attention.py $tmp/a" \
           "plot_attention.py $tmp/dump --heads 9"; do
  set +e
  # shellcheck disable=SC2086
  out=$($py "$src/scripts/"$cmd 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "$cmd: exit $rc (expected 2): $out"
  [[ "$out" == error:* ]] || fail "$cmd: $out"
done
# without matplotlib: a clear error, not a traceback
set +e
out=$($py - "$src/scripts/plot_metrics.py" "$tmp/a" 2>&1 <<'PY'
import runpy, sys
sys.modules["matplotlib"] = None  # as if it were not installed
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
PY
)
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "no matplotlib: exit $rc: $out"
grep -q "^error: matplotlib is not installed" <<<"$out" || fail "no matplotlib message: $out"
echo "e2e plots: ok"
