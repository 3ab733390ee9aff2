#!/usr/bin/env bash
# End to end: `attnlab experiment run` on a 2-cell tiny experiment (results.csv rows, results.md
# table, done.json), a rerun that skips both cells, --jobs 2 (child processes) giving the same
# numbers, `experiment show`, the plot when matplotlib is there, and a bad grid key exiting 2
# before anything runs. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$tmp/configs/experiments" "$tmp/scripts"
cp "$src/scripts/plot_experiment.py" "$tmp/scripts/"
cat >"$tmp/configs/experiments/tiny_base.yaml" <<'EOF'
model: {kind: encoder_decoder, n_layers: 1, d_model: 16, n_heads: 2, d_ff: 32, block_size: 16}
data: {task: reverse, n_symbols: 6, min_len: 4, max_len: 4, n_val: 16}
train: {steps: 20, batch_size: 8, warmup_steps: 2, eval_interval: 10, eval_batches: 1, log_interval: 10, threads: 1}
EOF
cat >"$tmp/configs/experiments/etiny.yaml" <<'EOF'
experiment: etiny
base: tiny_base.yaml
grid:
  model.bottleneck: [false]
  data.max_len: [4, 6]
tie: {data.min_len: data.max_len}
metrics: [greedy_token_acc, loss@10, mirror_weight]
table: {rows: data.max_len, cols: model.bottleneck, value: greedy_token_acc}
plot: {x: data.max_len, y: greedy_token_acc}
EOF
exp="$tmp/configs/experiments/etiny.yaml"
out="$tmp/out"

cd "$tmp"
"$bin" experiment run "$exp" --out "$out" >"$tmp/run1" 2>&1 || { cat "$tmp/run1"; fail "experiment run exited $?"; }
grep -q "^cell 1/2 (model.bottleneck=false, data.max_len=4) | ETA" "$tmp/run1" || { cat "$tmp/run1"; fail "no progress line"; }
grep -q "^cell 2/2 (model.bottleneck=false, data.max_len=6) | ETA" "$tmp/run1" || fail "no progress line for cell 2"
[ "$(wc -l <"$out/results.csv")" -eq 3 ] || { cat "$out/results.csv"; fail "results.csv should have a header and 2 rows"; }
head -1 "$out/results.csv" | grep -qx "model.bottleneck,data.max_len,greedy_token_acc,loss@10,mirror_weight,seconds" \
  || fail "results.csv header: $(head -1 "$out/results.csv")"
sed -n 2p "$out/results.csv" | grep -q "^false,4,0\.[0-9]*,[0-9.]*,0\.[0-9]*,[0-9.e-]*$" || fail "row 1: $(sed -n 2p "$out/results.csv")"
sed -n 3p "$out/results.csv" | grep -q "^false,6," || fail "row 2: $(sed -n 3p "$out/results.csv")"
grep -q "^| model.bottleneck | data.max_len | greedy_token_acc | loss@10 | mirror_weight | seconds |" "$out/results.md" \
  || fail "results.md has no table"
grep -q "^## greedy_token_acc by data.max_len and model.bottleneck" "$out/results.md" || fail "results.md has no pivot"
for c in "bottleneck=false_max_len=4" "bottleneck=false_max_len=6"; do
  [ -s "$out/cells/$c/done.json" ] || fail "cells/$c/done.json missing"
  [ -s "$out/cells/$c/metrics.jsonl" ] || fail "cells/$c is not a run directory"
done
grep -q '"data.min_len=6"' "$out/cells/bottleneck=false_max_len=6/done.json" || fail "tie not applied"
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  [ -s "$out/etiny.png" ] || { cat "$tmp/run1"; fail "no plot although matplotlib is there"; }
fi

# rerun: both cells skipped, the runs untouched
cp "$out/results.csv" "$tmp/results1.csv"
before=$(stat -c %Y.%s "$out/cells/bottleneck=false_max_len=4/metrics.jsonl")
"$bin" experiment run "$exp" --out "$out" --no-plot >"$tmp/run2" 2>&1 || fail "rerun exited $?"
grep -q "2 done earlier, 0 to run" "$tmp/run2" || { cat "$tmp/run2"; fail "rerun did not skip the done cells"; }
grep -q "^cell 1/2" "$tmp/run2" && fail "rerun started a cell"
[ "$(stat -c %Y.%s "$out/cells/bottleneck=false_max_len=4/metrics.jsonl")" = "$before" ] || fail "rerun touched a run"
diff <(cut -d, -f1-5 "$tmp/results1.csv") <(cut -d, -f1-5 "$out/results.csv") || fail "rerun changed the results"

# --jobs 2: child processes, same numbers (seconds aside)
"$bin" experiment run "$exp" --out "$tmp/out2" --jobs 2 --no-plot >"$tmp/run3" 2>&1 || { cat "$tmp/run3"; fail "--jobs 2 exited"; }
diff <(cut -d, -f1-5 "$tmp/results1.csv") <(cut -d, -f1-5 "$tmp/out2/results.csv") || fail "--jobs 2 gave other numbers"

# show: by directory and by file (default output directory relative to the working directory)
"$bin" experiment show "$out" | grep -q "^# etiny" || fail "show DIR"
"$bin" experiment run "$exp" --no-plot >/dev/null 2>&1 || fail "run with the default --out"
[ -s "$tmp/runs/experiments/etiny/results.md" ] || fail "default output directory not used"
"$bin" experiment show "$exp" | grep -q "2 of 2 cells finished" || fail "show FILE"

# a bad grid key: exit 2, one error line naming the file and the key, nothing run
sed 's/data.max_len: \[4, 6\]/data.maxlen: [4, 6]/' "$exp" >"$tmp/configs/experiments/ebad.yaml"
sed -i 's/^experiment: etiny/experiment: ebad/' "$tmp/configs/experiments/ebad.yaml"
set +e
"$bin" experiment run "$tmp/configs/experiments/ebad.yaml" --out "$tmp/bad" >"$tmp/bad_out" 2>"$tmp/bad_err"
rc=$?
set -e
[ "$rc" -eq 2 ] || { cat "$tmp/bad_err"; fail "bad grid key exited $rc, expected 2"; }
grep -q "ebad.yaml:.*unknown config key 'data.maxlen'" "$tmp/bad_err" || { cat "$tmp/bad_err"; fail "error does not name the file and key"; }
[ ! -e "$tmp/bad/cells" ] || fail "a bad experiment started running"
# learning curves (plot x: step) from the NAME@STEP columns, on a hand-written results.csv
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  mkdir -p "$tmp/curves"
  cat >"$tmp/curves/experiment.json" <<'EOF'
{"experiment": "c", "grid_keys": ["model.attention.type"], "metrics": ["label_acc@250", "label_acc@500", "loss"],
 "plots": [{"x": "step", "y": "label_acc", "series": "", "file": "c.png"},
           {"x": "step", "y": "loss", "series": "", "file": "bad.png"}]}
EOF
  printf 'model.attention.type,label_acc@250,label_acc@500,loss,seconds\ncausal,0.5,1,0.1,3\nlinear,0.1,0.2,2,3\n' \
    >"$tmp/curves/results.csv"
  set +e
  out=$(/usr/bin/python3 "$src/scripts/plot_experiment.py" "$tmp/curves" 2>&1); rc=$?
  set -e
  [ -s "$tmp/curves/c.png" ] || fail "no learning-curve plot: $out"
  # loss has no @STEP column: a clear error, not a traceback
  [ "$rc" -ne 0 ] && grep -q "no column 'loss@STEP'" <<<"$out" || fail "plot of a y without @STEP columns: $out"
fi
echo "ok"
