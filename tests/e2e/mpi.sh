#!/usr/bin/env bash
# End to end: data-parallel training under mpirun (docs/distributed.md).
#   1. configs/shakespeare_char.yaml, `mpirun -np 2` equals one process with train.grad_accum 2,
#      bit for bit: every metrics row (losses, grad norms, val metrics), the weights of the last
#      and of the best checkpoint, and AdamW's moments.
#   2. -np 3 and -np 4 against one process with grad_accum 3 and 4: the first step's loss is
#      the same bits, and the last losses and the weights within the tolerance of
#      docs/distributed.md (MPI chooses how three or four gradients are grouped when summed).
#   3. SIGUSR1 to mpirun stops the job after one step with one checkpoint, exit 0; resumed in
#      one process with grad_accum 2, the run ends exactly as the uninterrupted run of (1).
#      Resuming with -np 3 (32 rows do not divide by 3) is refused, with one error line.
#   4. kill -9 of rank 1: mpirun exits non-zero and names the rank; the last checkpoint loads and
#      the run resumes from it in one process.
#   5. errors met by every rank are printed once; commands other than train refuse mpirun.
# A build without MPI: a launcher's environment with 2 processes is refused with a message
# that says so (the rest needs MPI and is not run).
# The corpus: $ATTNLAB_DATA_DIR/tinyshakespeare.txt or SOURCE_DIR/data/; when neither has it, a
# generated text stands in (and ATTNLAB_DATA_DIR set without the file fails).
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
cfg=$src/configs/shakespeare_char.yaml

if ! "$bin" --version | grep -q "MPI: Open MPI\|MPI: MPICH\|MPI: Intel"; then
  rc=0
  OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$bin" train "$cfg" --run-dir nompi >out 2>err || rc=$?
  [ "$rc" = 2 ] || fail "a build without MPI as one of 2 processes: exit $rc, expected 2"
  grep -q "built without MPI" err || { cat err; fail "the refusal does not say the build has no MPI"; }
  [ ! -e nompi ] || fail "the refused run created its run directory"
  echo "mpi e2e: this build has no MPI; its refusal to run as one of several processes checked"
  exit 0
fi
command -v mpirun >/dev/null || fail "this attnlab is built with MPI but mpirun is not on PATH (scripts/setup.sh installs openmpi-bin)"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=(mpirun --oversubscribe --bind-to none)  # an array, not a function: `$!` must be mpirun itself

corpus_or_standin 30000
common=(--set "data.path=$corpus" --set train.threads=1 --set train.log_interval=1 --set train.eval_interval=8
        --set train.eval_batches=2 --set train.steps=16)

# ---- 1. -np 2 == grad_accum 2, bit for bit ----
"$bin" train "$cfg" "${common[@]}" --set train.grad_accum=2 --run-dir ga2 >ga2.out
"${mpi[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --run-dir np2 >np2.out
grep -q "2 processes × 1 thread" np2/train.log || fail "train.log does not say 2 processes"
grep -q "2 micro-batches of 16, 1 per process" np2/train.log || fail "train.log does not say how the batch is split"
[ "$(grep -c '^done:' np2.out)" = 1 ] || { cat np2.out; fail "the job's closing line is not printed once"; }

# compare.py A B [tol]: metrics rows and the tensors of the last checkpoint, its state and best.
cat >compare.py <<'PY'
import json, math, struct, sys
a, b = sys.argv[1], sys.argv[2]
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
def rows(d):
    out = []
    for line in open(d + "/metrics.jsonl"):
        r = json.loads(line)
        for k in ("elapsed_s", "tokens_per_s"):
            r.pop(k, None)
        out.append(r)
    return out
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in head.items()}
def floats(b):
    return struct.unpack("<%df" % (len(b) // 4), b)
ra, rb = rows(a), rows(b)
assert len(ra) == len(rb) and len(ra) > 0, f"{len(ra)} vs {len(rb)} metrics rows"
worst_loss = 0.0
for x, y in zip(ra, rb):
    assert x.keys() == y.keys(), (x, y)
    for k in x:
        if isinstance(x[k], float):
            d = abs(x[k] - y[k]) / max(abs(x[k]), 1e-30)
            worst_loss = max(worst_loss, d)
            if tol == 0.0:
                assert x[k] == y[k], f"step {x['step']} {x['split']} {k}: {x[k]!r} vs {y[k]!r}"
        else:
            assert x[k] == y[k], (k, x[k], y[k])
    if x["step"] == 1 and x["split"] == "train":
        assert x["loss"] == y["loss"], f"step 1 loss differs: {x['loss']!r} vs {y['loss']!r}"
latest = open(a + "/checkpoints/latest").read().strip()
assert latest == open(b + "/checkpoints/latest").read().strip()
worst_w = 0.0
for name in (latest, latest.replace(".safetensors", ".state.safetensors"), "best.safetensors"):
    ta, tb = tensors(f"{a}/checkpoints/{name}"), tensors(f"{b}/checkpoints/{name}")
    assert ta.keys() == tb.keys(), name
    for k in ta:
        if tol == 0.0:
            assert ta[k] == tb[k], f"{name}: tensor {k} differs"
        else:
            for u, v in zip(floats(ta[k]), floats(tb[k])):
                worst_w = max(worst_w, abs(u - v))
if tol > 0.0:
    print(f"largest relative difference of a logged value {worst_loss:.2e}, of a weight or moment {worst_w:.2e} "
          f"(tolerance {tol:g})")
    assert worst_loss <= tol and worst_w <= tol, "beyond the tolerance"
else:
    print(f"{len(ra)} metrics rows and every tensor identical")
PY
/usr/bin/python3 compare.py ga2 np2 || fail "-np 2 differs from grad_accum 2"

# ---- 2. -np 3 / -np 4: the same run within the tolerance ----
for n in 3 4; do
  "$bin" train "$cfg" "${common[@]}" --set train.batch_size=24 --set train.steps=12 --set train.grad_accum=$n --run-dir ga$n >/dev/null
  "${mpi[@]}" -np $n "$bin" train "$cfg" "${common[@]}" --set train.batch_size=24 --set train.steps=12 --run-dir np$n >/dev/null
  echo -n "-np $n vs grad_accum $n: "
  /usr/bin/python3 compare.py ga$n np$n 1e-5 || fail "-np $n is not within the tolerance of grad_accum $n"
done

# ---- 3. SIGUSR1 stops the job cleanly; resume with another process count ----
"${mpi[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --run-dir stop >stop.out 2>stop.err &
pid=$!
for _ in $(seq 600); do
  [ -s stop/metrics.jsonl ] && [ "$(grep -c '"split":"train"' stop/metrics.jsonl)" -ge 2 ] && break
  sleep 0.05
done
kill -USR1 $pid
rc=0
wait $pid || rc=$?
[ "$rc" = 0 ] || { cat stop.out stop.err; fail "SIGUSR1 to mpirun: exit $rc, expected 0"; }
grep -q "^interrupted at step" stop.out || { cat stop.out; fail "the job was not interrupted (it ran to the end first?)"; }
at=$(sed -n 's/^interrupted at step \([0-9]*\).*/\1/p' stop.out)
[ "$at" -lt 16 ] || fail "stopped at step $at"
[ "$(ls stop/checkpoints/ | grep -c '^step_.*[0-9].safetensors$')" = 1 ] || fail "not exactly one checkpoint"
[ "$(grep -c 'finishing this step' stop.err)" = 1 ] || { cat stop.err; fail "the interrupt note is not printed once"; }
rc=0
"${mpi[@]}" -np 3 "$bin" train --resume stop >r3.out 2>r3.err || rc=$?
[ "$rc" = 2 ] || fail "resume with -np 3: exit $rc, expected 2"
[ "$(grep -c '^error: ' r3.err)" = 1 ] || { cat r3.err; fail "resume with -np 3: expected one error line"; }
grep -q "does not divide into 3 processes" r3.err || { cat r3.err; fail "resume with -np 3: the error does not say why"; }
"$bin" train --resume stop --set train.grad_accum=2 >resume.out
grep -q "resume: from step $at" resume.out || fail "the resume did not start at step $at"
/usr/bin/python3 compare.py ga2 stop || fail "stopped at step $at under -np 2 and resumed in one process, the run differs"
echo "stopped by SIGUSR1 at step $at of 16, resumed in one process with grad_accum 2: identical to the uninterrupted run"

# ---- 4. a rank that dies ----
"${mpi[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set train.steps=400 --set train.checkpoint_interval=2 \
  --run-dir dead >dead.out 2>dead.err &
pid=$!
for _ in $(seq 600); do
  [ -f dead/checkpoints/latest ] && [ "$(grep -c '"split":"train"' dead/metrics.jsonl)" -ge 3 ] && break
  sleep 0.05
done
victim=""
for p in $(pgrep -P $pid); do
  if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=$p; fi
done
[ -n "$victim" ] || fail "rank 1's process was not found"
kill -9 "$victim"
rc=0
wait $pid || rc=$?
[ "$rc" != 0 ] || fail "a killed rank: mpirun exited 0"
grep -q "rank 1" dead.err || { cat dead.err; fail "mpirun's message does not name rank 1"; }
"$bin" inspect dead >inspect.out || fail "inspect of the run whose rank died"
last=$(sed 's/step_0*\([0-9]*\).safetensors/\1/' dead/checkpoints/latest)
"$bin" train --resume dead --set train.grad_accum=2 --set train.steps=$((last + 4)) >dead_resume.out ||
  fail "the run whose rank died does not resume"
grep -q "^resume: from step" dead_resume.out || fail "no resume line"
echo "kill -9 of rank 1: mpirun exit $rc; $(grep -o 'resume: from step [0-9]*' dead_resume.out) in one process"

# ---- 5. errors once; other commands refuse ----
rc=0
"${mpi[@]}" -np 2 "$bin" train "$cfg" --set train.stepz=3 --run-dir bad >bad.out 2>bad.err || rc=$?
[ "$rc" = 2 ] || fail "a bad key under mpirun: exit $rc, expected 2"
[ "$(grep -c '^error: ' bad.err)" = 1 ] || { cat bad.err; fail "a bad key under mpirun: expected one error line"; }
rc=0
"${mpi[@]}" -np 2 "$bin" sample np2 >s.out 2>s.err || rc=$?
[ "$rc" = 2 ] && grep -q "only \`train\` and \`bench train\` run" s.err || { cat s.err; fail "sample under mpirun"; }
echo "mpi e2e: ok"
