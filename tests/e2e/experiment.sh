#!/usr/bin/env bash
# End to end: `attnlab experiment run` on a 2-cell tiny experiment (results.csv rows, results.md
# table, done.json), a rerun that skips both cells, --jobs 2 (child processes) giving the same
# numbers, `experiment show`, the plot when matplotlib is there, and a bad grid key exiting 2
# before anything runs; then the cells that compute figures (run: invariants with --strict passing
# and, mis-scaled, failing; run: attention_cost with a summary and a log-log plot).
# Args: ATTNLAB_BINARY SOURCE_DIR
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

# cells that compute figures instead of training: run: invariants (E1) with --strict, a
# deliberately mis-scaled variance failing --strict, and run: attention_cost (E5) with a summary
cat >"$tmp/configs/experiments/einv.yaml" <<'EOF'
experiment: einv
run: invariants
set: {threads: 1, samples: 20000}
grid:
  - {check: [variance], d_k: [16]}
  - {check: [flash], mask: [causal, padding], n: [70]}
  - {check: [rope], shift: [100]}
metrics: [var_ratio, logit_var, out_diff, grad_diff, rope_diff, pass]
EOF
"$bin" experiment run "$tmp/configs/experiments/einv.yaml" --out "$tmp/inv" --no-plot --strict >"$tmp/inv_out" 2>&1 \
  || { cat "$tmp/inv_out"; fail "invariants --strict exited $?"; }
grep -q "^strict: every cell finished and every check passed" "$tmp/inv_out" || { cat "$tmp/inv_out"; fail "no strict line"; }
head -1 "$tmp/inv/results.csv" | grep -qx "check,d_k,mask,n,shift,var_ratio,logit_var,out_diff,grad_diff,rope_diff,pass,seconds" \
  || fail "invariants header: $(head -1 "$tmp/inv/results.csv")"
[ "$(wc -l <"$tmp/inv/results.csv")" -eq 5 ] || { cat "$tmp/inv/results.csv"; fail "invariants: 4 rows expected"; }
[ "$(cut -d, -f11 "$tmp/inv/results.csv" | tail -n +2 | sort -u)" = "1" ] || { cat "$tmp/inv/results.csv"; fail "a check failed"; }
grep -q '"figures"' "$tmp/inv/cells/check=flash_mask=padding_n=70/done.json" || fail "no figures in done.json"
set +e
"$bin" experiment run "$tmp/configs/experiments/einv.yaml" --out "$tmp/inv_bad" --no-plot --strict --set scale=none \
  >"$tmp/inv_bad_out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || { cat "$tmp/inv_bad_out"; fail "a mis-scaled variance under --strict exited $rc, expected 1"; }
grep -q "^strict: cell check=variance_d_k=16 (check=variance, d_k=16): pass = 0" "$tmp/inv_bad_out" \
  || { cat "$tmp/inv_bad_out"; fail "the failing check is not named"; }
set +e
"$bin" experiment run "$tmp/configs/experiments/einv.yaml" --out "$tmp/inv_bad2" --set heads=0 >/dev/null 2>"$tmp/inv_err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "einv.yaml: cell .*heads: expected an integer in \\[1, 256\\], got .0." "$tmp/inv_err" \
  || { cat "$tmp/inv_err"; fail "a bad parameter value exited $rc without naming the file and key"; }

cat >"$tmp/configs/experiments/ecost.yaml" <<'EOF'
experiment: ecost
run: attention_cost
set: {heads: 2, head_dim: 16, repeats: 1, threads: 1}
grid:
  type: [causal, linear]
  n: [32, 64, 128]
metrics: [ms, attn_ms, peak_extra_mb]
plot: {x: n, y: ms, series: type, log: true}
summary:
  x: n
  series: type
  slopes: [ms]
  checks: [{slope: peak_extra_mb, series: linear, max: 100}]
EOF
"$bin" experiment run "$tmp/configs/experiments/ecost.yaml" --out "$tmp/cost" >"$tmp/cost_out" 2>&1 \
  || { cat "$tmp/cost_out"; fail "attention_cost exited $?"; }
[ "$(wc -l <"$tmp/cost/results.csv")" -eq 7 ] || { cat "$tmp/cost/results.csv"; fail "attention_cost: 6 rows expected"; }
grep -q "^## Summary" "$tmp/cost/results.md" || fail "no summary in results.md"
grep -q '^"slope(ms, linear)",[0-9.e-]*,,,$' "$tmp/cost/summary.csv" || { cat "$tmp/cost/summary.csv"; fail "summary.csv"; }
grep -q '^"slope(peak_extra_mb, linear)",.*,,100,1$' "$tmp/cost/summary.csv" || { cat "$tmp/cost/summary.csv"; fail "summary check"; }
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  [ -s "$tmp/cost/ecost.png" ] || { cat "$tmp/cost_out"; fail "no log-log plot"; }
fi
"$bin" experiment show "$tmp/cost" | grep -q "run: attention_cost; 6 of 6 cells finished" || fail "show of an attention_cost run"

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
