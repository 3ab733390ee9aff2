#!/usr/bin/env bash
# Crash consistency: a training run is killed with SIGKILL at >= 20 random moments, each
# time followed by `attnlab train --resume`; at the end its metrics rows, weights, AdamW
# moments and checkpoint directory must equal those of an uninterrupted run bit for bit
# (docs/reliability.md, "Crash consistency").
#
# The kill delays come from bash's RANDOM seeded with ATTNLAB_CRASH_SEED (printed; set it to
# replay the same sequence of delays; timing on a loaded machine still varies). Kills inside
# checkpoint writes are made likely with the test hook ATTNLAB_TEST_STALL_WRITE_MS, which
# pauses every atomic write half-way (src/core/fs.h).
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
tmp=$(mktemp -d)
cleanup() {
  local p
  for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done  # only our still-running jobs
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
t0=$(date +%s.%N)

seed=${ATTNLAB_CRASH_SEED:-$(( $(date +%s%N) / 1000 % 1000000 ))}
echo "crash: seed $seed (replay the same kill delays with ATTNLAB_CRASH_SEED=$seed)"
RANDOM=$seed
want_kills=${ATTNLAB_CRASH_KILLS:-24}

cfg="$src/configs/tasks/reverse_decoder.yaml"
# tiny and single-threaded; a checkpoint every 3 steps (2 kept, so rotation runs too), a train
# row every 2 steps (the loss accumulator crosses checkpoints), an evaluation every 40 steps
# (best.safetensors is rewritten now and then)
small=(--set model.d_model=16 --set model.n_layers=1 --set model.n_heads=2 --set train.batch_size=4
       --set train.threads=1 --set data.n_val=8 --set train.eval_batches=1 --set train.steps=600
       --set train.warmup_steps=20 --set train.log_interval=2 --set train.eval_interval=40
       --set train.checkpoint_interval=3 --set train.keep_checkpoints=2)

stall_ms=${ATTNLAB_CRASH_STALL_MS:-8}
# ---- the reference: one uninterrupted run (with the same write stalls, which change only its timing) ----
ATTNLAB_TEST_STALL_WRITE_MS=$stall_ms "$bin" train "$cfg" --run-dir "$tmp/ref" "${small[@]}" >"$tmp/ref.out" 2>&1 ||
  fail "reference run: $(tail -3 "$tmp/ref.out")"
t1=$(date +%s.%N)
ref_ms=$($py -c "print(int(($t1 - $t0) * 1000))")
# kill delays: uniform in [20, 20 + span) ms, span sized so that the kills together cover about
# 60% of the reference's duration (disks differ a lot in fsync time)
span=$(( ref_ms * 12 / 10 / want_kills ))
[ "$span" -ge 100 ] || span=100
echo "crash: reference run took $((ref_ms / 1000)).$(( ref_ms % 1000 / 100 ))s; kill delays in [20, $((20 + span))) ms"

# ---- runs that are killed again and again ----
# Each round is a new run, killed until the kill budget is spent or the run finishes, then
# compared with the reference; a second round starts only if a run finished before
# want_kills kills (a faster disk than the reference saw), so every test makes them all.
kills=0 in_file=0 between=0 other=0 torn_rows=0 fresh=0 resumes=0 trial=0 round=0
declare -A in_what=()
latest_step() { [ -s "$ck/latest" ] && sed -E 's/^step_0*([0-9]+)\.safetensors$/\1/' "$ck/latest"; }
while [ "$kills" -lt "$want_kills" ]; do
  round=$((round + 1))
  [ "$round" -le 4 ] || fail "only $kills kills in 4 runs (seed $seed)"
  run="$tmp/run$round"
  ck="$run/checkpoints"
  while true; do
    trial=$((trial + 1))
    if [ -s "$ck/latest" ]; then
      from=$(latest_step)
      [ "$from" -lt 600 ] || break  # killed after the final checkpoint: nothing left to do
      cmd=(train --resume "$run")
      resumes=$((resumes + 1))
    else
      # no complete checkpoint yet: --resume refuses with a clear error; start again (--overwrite:
      # what the killed start wrote is an earlier run, which a new run does not delete unasked)
      if [ -d "$run" ]; then
        set +e
        out=$("$bin" train --resume "$run" 2>&1); rc=$?
        set -e
        [ "$rc" -eq 2 ] && grep -q '^error: cannot resume' <<<"$out" || fail "resume without a checkpoint: exit $rc: $out"
      fi
      from=""
      cmd=(train "$cfg" --run-dir "$run" "${small[@]}" --overwrite)
      fresh=$((fresh + 1))
    fi
    ATTNLAB_TEST_STALL_WRITE_MS=$stall_ms "$bin" "${cmd[@]}" >"$tmp/out.$trial" 2>&1 &
    pid=$!
    if [ "$kills" -lt "$want_kills" ]; then
      delay_ms=$((20 + RANDOM % span))
      sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
      kill -9 "$pid" 2>/dev/null || true
    fi
    set +e
    wait "$pid" 2>/dev/null
    rc=$?
    set -e
    # a resume that got as far as its banner must continue from the checkpoint `latest` named
    if [ -n "$from" ] && grep -q '^resume: ' "$tmp/out.$trial"; then
      grep -q "^resume: from step $from " "$tmp/out.$trial" ||
        fail "trial $trial: latest named step $from, but: $(grep '^resume: ' "$tmp/out.$trial")"
    fi
    if [ "$rc" -eq 0 ]; then
      grep -q "^done: 600 steps" "$tmp/out.$trial" || fail "trial $trial ended without finishing: $(tail -3 "$tmp/out.$trial")"
      break
    fi
    [ "$rc" -eq 137 ] || fail "trial $trial (${cmd[*]}): exit $rc: $(tail -3 "$tmp/out.$trial")"
    kills=$((kills + 1))
    # where did it land? a *.tmp file: inside an atomic write; a step file newer than `latest`:
    # between the files of one save; a torn last line of metrics.jsonl: inside a metrics append
    tmpf=$(cd "$ck" 2>/dev/null && ls -- *.tmp 2>/dev/null | head -1 || true)
    newer=0
    cur=$(latest_step || echo -1)
    for f in "$ck"/step_*.safetensors; do
      [ -e "$f" ] || continue
      s=$(basename "$f" | sed -E 's/^step_0*([0-9]+)\..*$/\1/')
      [ "$s" -gt "$cur" ] && newer=1
    done
    if [ -n "$tmpf" ]; then
      in_file=$((in_file + 1))
      case $tmpf in
        *.state.safetensors.tmp) w=state ;;
        best.safetensors.tmp) w=best ;;
        latest.tmp) w=latest ;;
        *) w=model ;;
      esac
      in_what[$w]=$(( ${in_what[$w]:-0} + 1 ))
    elif [ "$newer" -eq 1 ]; then
      between=$((between + 1))
    else
      other=$((other + 1))
    fi
    if [ -s "$run/metrics.jsonl" ] && [ "$(tail -c 1 "$run/metrics.jsonl" | od -An -c | tr -d ' ')" != '\n' ]; then
      torn_rows=$((torn_rows + 1))
    fi
  done
  [ "$(cat "$ck/latest")" = "step_0000600.safetensors" ] || fail "run $round did not finish"
  # ---- the killed run must equal the reference bit for bit ----
  $py "$src/tests/e2e/compare_runs.py" "$tmp/ref" "$run" "crash run $round" ||
    fail "killed-and-resumed run $round differs from the reference (seed $seed)"
done
t2=$(date +%s.%N)
detail=""
for w in state model latest best; do detail+=" $w ${in_what[$w]:-0},"; done
echo "crash: $kills kills in $trial processes ($fresh fresh starts, $resumes resumes) over $round run(s) in $($py -c "print(f'{$t2 - $t1:.1f}')")s"
echo "crash: landed inside a checkpoint file write: $in_file (${detail%,} ), between the files of a save: $between, elsewhere: $other; torn metrics rows left: $torn_rows"
[ "$kills" -ge 20 ] || fail "only $kills kills"
[ "$in_file" -ge 1 ] || fail "no kill landed inside a checkpoint write (seed $seed); the stall hook is not working"
echo "crash: total $($py -c "import time; print(f'{time.time() - $t0:.1f}')")s"
echo "e2e crash: ok"
