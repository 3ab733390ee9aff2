#!/usr/bin/env bash
# Stops N short training runs with SIGINT right after their first checkpoint (as
# tests/e2e/crash_errors.sh stops its runs) and counts the runs that did not finish cleanly: exit
# status 0 and "interrupted at step" in the output. For failures that show up only sometimes
# (docs/performance.md, "Interrupts with AMX in use").
#   scripts/sigint_stress.sh N [--set KEY=VALUE ...]      e.g. 30 --set train.precision=bf16
# Runs the reverse_decoder task config from the repository's build/attnlab (ATTNLAB_BIN overrides).
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: scripts/sigint_stress.sh N [--set KEY=VALUE ...]}
shift
bin=${ATTNLAB_BIN:-build/attnlab}
[ -x "$bin" ] || { echo "error: $bin not found: build first (scripts/build.sh)" >&2; exit 2; }
fails=0
for i in $(seq 1 "$n"); do
  d=$(mktemp -d)
  "$bin" train configs/tasks/reverse_decoder.yaml --run-dir "$d/r" --set model.d_model=64 --set model.n_layers=2 \
    --set train.batch_size=8 --set data.n_val=8 --set train.eval_batches=1 --set train.steps=5000 \
    --set train.log_interval=1 --set train.eval_interval=0 --set train.checkpoint_interval=10 \
    --set train.keep_checkpoints=2 "$@" > "$d/out" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do [ -e "$d/r/checkpoints/latest" ] && break; sleep 0.1; done
  sleep "0.$((RANDOM % 10))"  # a little later each time: the signal lands at different points of a step
  kill -INT "$pid"
  wait "$pid"
  rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q '^interrupted at step' "$d/out"; then
    fails=$((fails + 1))
    echo "run $i: exit $rc: $(tail -2 "$d/out")"
  fi
  rm -rf "$d"
done
echo "failures: $fails of $n"
[ "$fails" -eq 0 ]
