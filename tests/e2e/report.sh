#!/usr/bin/env bash
# `attnlab report` writes one self-contained HTML page, and headless Chromium (Debian's chromium)
# opens it: the script runs to its end without a console message, the screenshot is not blank,
# every curve has as many points as metrics.jsonl has rows, every slot × layer × head map of the
# best checkpoint is there, and the history slider has one frame per evaluation. A page with a
# script error must be caught by the same console check (proved on a broken copy). Also: bad
# arguments exit 2 with one error: line, decoder / encoder runs get a page too, and a diverged
# run's page says failed.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" numpy matplotlib
chrome=$(command -v chromium || true)
if [ -z "$chrome" ]; then
  [ -n "${CI:-}" ] && fail "chromium is not installed (scripts/setup.sh installs it)"
  echo "SKIP: chromium is not installed (scripts/setup.sh installs it)"
  exit 77
fi
check="$src/tests/e2e/report/check_page.py"
browse() {  # browse PAGE OUT_PREFIX [chromium args...]: DOM to OUT.dom, log to OUT.log
  local page=$1 out=$2
  shift 2
  timeout 60 "$chrome" --headless=new --no-sandbox --disable-gpu --no-first-run --user-data-dir="$tmp/profile" \
    --enable-logging=stderr --v=0 "$@" "file://$page#frame=0" >"$out.dom" 2>"$out.log" || fail "chromium on $page: $(tail -3 "$out.log")"
}

# a tiny encoder_decoder seq2seq run: 4 evaluations, decoded examples, the trainer's history of maps
run=$tmp/run
"$bin" train "$src/configs/tasks/reverse_encoder_decoder.yaml" --run-dir "$run" --set train.steps=40 \
  --set train.eval_interval=10 --set train.log_interval=5 --set train.threads=1 --set train.batch_size=16 \
  --set model.d_model=32 --set data.n_val=20 --set train.eval_batches=2 >/dev/null
[ -s "$run/attention_history.jsonl" ] || fail "the run wrote no attention_history.jsonl"
out=$("$bin" report "$run") || fail "report: $out"
echo "$out"
page=$run/report.html
[ -s "$page" ] || fail "no $page"
grep -q "^report: $page" <<<"$out" || fail "the summary does not name $page"
! grep -Eiq '<script[^>]+src=|<link[^>]+href=|https?://' "$page" || fail "the page loads something from outside"

# the maps the model has, from an independent forward dump
"$bin" inspect "$run/checkpoints/best.safetensors" --input abcd --dump "$tmp/dump" >/dev/null
browse "$page" "$tmp/page" --dump-dom
"$py" "$check" console "$tmp/page.log"
"$py" "$check" dom "$tmp/page.dom" "$run" "$tmp/dump"
browse "$page" "$tmp/shot" --screenshot="$tmp/shot.png" --window-size=1400,1800 --hide-scrollbars
"$py" "$check" screenshot "$tmp/shot.png"

# the checks catch a broken script: an error in the page's script fails both
sed 's|</main><script>|</main><script>missingFunction();|' "$page" >"$tmp/broken.html"
browse "$tmp/broken.html" "$tmp/broken" --dump-dom
if "$py" "$check" console "$tmp/broken.log" >/dev/null; then fail "the console check missed a script error"; fi
if "$py" "$check" dom "$tmp/broken.dom" "$run" "$tmp/dump" >/dev/null; then fail "the DOM check missed a script error"; fi

# -o, and errors: exit 2 with one error: line
"$bin" report "$run" -o "$tmp/other.html" >/dev/null && [ -s "$tmp/other.html" ] || fail "report -o"
mkdir -p "$tmp/empty" "$tmp/nometrics"
cp "$run/config.yaml" "$tmp/nometrics/"
for bad in "$tmp/missing" "$tmp/empty" "$tmp/nometrics" "$run -o $tmp/no/such/dir/r.html"; do
  set +e
  # shellcheck disable=SC2086
  msg=$("$bin" report $bad 2>&1 >/dev/null); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "report $bad: exit $rc (expected 2): $msg"
  [ "$(grep -c '^error: ' <<<"$msg")" -eq 1 ] || fail "report $bad: not one error: line: $msg"
done
[ ! -e "$tmp/no" ] || fail "a failed report left files behind"

# a decoder (causal, linear attention) and an encoder (classification) run get a page as well
"$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/dec" --set train.steps=10 \
  --set train.eval_interval=5 --set train.threads=1 --set model.d_model=16 --set data.n_val=5 \
  --set model.attention.type=linear >/dev/null
"$bin" report "$tmp/dec" >/dev/null || fail "report of a decoder run"
grep -q 'class="heatmap"' "$tmp/dec/report.html" || fail "no map in the decoder run's page"
"$bin" train "$src/configs/tasks/parity_encoder.yaml" --run-dir "$tmp/enc" --set train.steps=10 \
  --set train.eval_interval=5 --set train.threads=1 --set model.d_model=16 --set data.n_val=5 >/dev/null
"$bin" report "$tmp/enc" >/dev/null || fail "report of an encoder run"
grep -q 'data-key="encoder_self_L0"' "$tmp/enc/report.html" || fail "no encoder map in the encoder run's page"
# a run that diverged: the status says failed, and a chart of one huge value draws without an error
set +e
"$bin" train "$src/configs/tasks/reverse_decoder.yaml" --run-dir "$tmp/nan" --set train.steps=50 --set train.lr=1e4 \
  --set train.warmup_steps=0 --set train.eval_interval=5 --set train.checkpoint_interval=5 --set train.threads=1 \
  --set model.d_model=16 --set data.n_val=5 >/dev/null 2>&1
set -e
"$bin" report "$tmp/nan" >/dev/null || fail "report of a failed run"
grep -q 'data-state="failed"' "$tmp/nan/report.html" || fail "the diverged run's page does not say failed"
browse "$tmp/nan/report.html" "$tmp/nan_page" --dump-dom
"$py" "$check" console "$tmp/nan_page.log" >/dev/null || fail "the diverged run's page: $(grep CONSOLE "$tmp/nan_page.log" | head -2)"
echo "report: ok"
