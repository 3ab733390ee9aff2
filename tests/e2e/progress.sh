#!/usr/bin/env bash
# End to end: the progress of long commands other than train (src/core/progress.h).
#   1. eval, bench train, bench attention, bench generate and inspect --dump write progress lines
#      with counts to stderr; stdout keeps the result alone (eval --json parses as JSON);
#   2. when stderr is not a terminal the lines are plain: no carriage return, no escape code;
#   3. on a terminal (script(1) gives one) the line is redrawn in place with \r and erased at
#      the end, so the result on stdout is not glued to it;
#   4. --quiet (eval, bench, inspect, train) leaves stderr empty; train --quiet leaves stdout
#      empty and train.log full.
# ATTNLAB_PROGRESS_DELAY=0 shows progress from the first unit of work (2 s otherwise), so the
# commands here can be short.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
export ATTNLAB_PROGRESS_DELAY=0
cfg=$src/configs/tasks/copy_encoder_decoder.yaml
small=(--set train.steps=4 --set train.eval_interval=0 --set train.threads=1 --set data.n_val=40)

# train --quiet: nothing on stdout, train.log has the run
"$bin" train "$cfg" --run-dir run "${small[@]}" --quiet >train.out 2>train.err || fail "train --quiet: exit $?"
[ ! -s train.out ] || fail "train --quiet printed on stdout: $(head -3 train.out)"
grep -q "step 4" run/train.log || fail "train --quiet: train.log lacks the steps: $(cat run/train.log)"
ckpt=run/checkpoints/$(cat run/checkpoints/latest)  # a file argument: no "note:" on stderr

plain() {  # $1 file, $2 what: non-empty, and no CR or ESC
  [ -s "$1" ] || fail "$2: no progress on stderr"
  ! grep -q $'\r' "$1" || fail "$2: a carriage return on a non-terminal"
  ! grep -q $'\033' "$1" || fail "$2: an escape code on a non-terminal"
}

# ---- eval: batches and decoded examples, then the last line at 100% ----
"$bin" eval "$ckpt" --json >eval.json 2>eval.err || fail "eval: exit $?"
/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' eval.json || fail "eval --json: stdout is not JSON"
plain eval.err eval
# train.eval_batches (default) + 40 decoded examples
grep -Eq '^eval val: ([0-9]+)/\1 batches and examples \(100%\)' eval.err || fail "eval: no final line: $(cat eval.err)"
total=$(grep -Eo '/[0-9]+ batches' eval.err | tail -1 | tr -dc 0-9)
evb=$("$bin" config show "$cfg" 2>/dev/null | grep -Eo 'eval_batches: [0-9]+' | grep -Eo '[0-9]+' || echo "")
[ -n "$evb" ] || fail "config show: no eval_batches"
[ "$total" -eq $((evb + 40)) ] || fail "eval: total $total, expected $evb batches + 40 examples"
"$bin" eval "$ckpt" --quiet >q.out 2>q.err || fail "eval --quiet: exit $?"
[ ! -s q.err ] || fail "eval --quiet wrote to stderr: $(cat q.err)"
grep -q exact_match q.out || fail "eval --quiet: no table"

# ---- bench train / attention / generate ----
"$bin" bench train "$cfg" --steps 3 --warmup 1 --set train.threads=1 >bt.out 2>bt.err || fail "bench train: exit $?"
plain bt.err "bench train"
grep -q '^bench train: 4/4 steps (100%)' bt.err || fail "bench train: $(cat bt.err)"
grep -q '^ms/step' bt.out || fail "bench train: no result on stdout"
"$bin" bench train "$cfg" --steps 2 --warmup 0 --quiet --set train.threads=1 >/dev/null 2>btq.err || fail "bench train --quiet"
[ ! -s btq.err ] || fail "bench train --quiet wrote to stderr: $(cat btq.err)"
"$bin" bench attention --types scaled_dot_product,linear --lengths 16,32 --repeats 2 --warmup 1 --threads 1 \
  >ba.out 2>ba.err || fail "bench attention: exit $?"
plain ba.err "bench attention"
grep -q '^bench attention: 12/12 calls (100%)' ba.err || fail "bench attention: $(cat ba.err)"
[ "$(grep -c '^scaled_dot_product\|^linear' ba.out)" -eq 4 ] || fail "bench attention: rows: $(cat ba.out)"
"$bin" bench generate "$src/configs/tasks/copy_decoder.yaml" --tokens 8 --repeats 2 --threads 1 \
  >bg.out 2>bg.err || fail "bench generate: exit $?"
plain bg.err "bench generate"
grep -q '^bench generate: 6/6 generations (100%)' bg.err || fail "bench generate: $(cat bg.err)"

# ---- inspect --dump: stages, each named ----
"$bin" inspect "$ckpt" --input "abcd" --dump dump >d.out 2>d.err || fail "inspect --dump: exit $?"
plain d.err "inspect --dump"
grep -q 'attn_' d.err || fail "inspect --dump: the stages are not named: $(cat d.err)"
"$bin" inspect "$ckpt" --input "abcd" --dump dump2 --quiet >/dev/null 2>dq.err || fail "inspect --dump --quiet"
[ ! -s dq.err ] || fail "inspect --dump --quiet wrote to stderr: $(cat dq.err)"

# ---- on a terminal: redrawn in place and erased ----
if command -v script >/dev/null; then
  script -qec "'$bin' eval '$ckpt'" /dev/null >tty.out 2>&1 || fail "eval on a terminal: exit $?"
  grep -q $'\r\033\[Keval val: ' tty.out || fail "eval on a terminal: no live line: $(cat -A tty.out | head -5)"
  # the table starts on a clean line: the live line was erased (\r\033[K) right before it
  grep -q $'\r\033\[Kcheckpoint ' tty.out || fail "eval on a terminal: the table is glued to the progress line"
else
  echo "(script(1) not installed: the terminal case is not checked)"
fi
echo "progress: ok"
