#!/usr/bin/env bash
# The errors around a run's files (docs/reliability.md): a full disk or a file-size
# limit during a checkpoint write, a read-only run directory, and a data file (data.task:
# text) that is missing, unreadable or changed between a run and its resume. Each must give
# one clear `error:` line, exit 2, and leave the last checkpoint intact and resumable.
#
# Root ignores permission bits, so "read-only" and "unreadable" are made real either with a
# private mount namespace (unshare -m: a read-only bind mount, a small tmpfs) or by running
# the binary as `nobody` (setpriv); a part that neither can set up here is reported as
# skipped and the script exits 77 after all the others passed.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
bin=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
chmod 755 "$tmp"  # `nobody` must reach the run directories in the fallback below
cleanup() {
  local p
  for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done  # only our still-running jobs
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
py=/usr/bin/python3
skipped=()
t0=$(date +%s.%N)

# wait (at most $2 seconds) until file $1 exists and is not empty
wait_for() {
  local i=0
  while [ ! -s "$1" ]; do
    sleep 0.02
    i=$((i + 1))
    [ "$i" -lt $(($2 * 50)) ] || fail "timed out waiting for $1"
  done
}
# expect_error WANT_REGEX CMD...: exit 2 and exactly one `error:` line matching WANT_REGEX
expect_error() {
  local want=$1 out rc
  shift
  set +e
  out=$("$@" 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "'$*': exit $rc (expected 2): $out"
  [ "$(grep -c '^error: ' <<<"$out")" -eq 1 ] || fail "'$*': one error line expected: $out"
  grep -qE "^error: $want" <<<"$out" || fail "'$*': the error does not match '$want': $(grep '^error: ' <<<"$out")"
  echo "  ok: $(grep '^error: ' <<<"$out" | cut -c1-220)"
}
# tree_sum DIR: a checksum of every file name and content under DIR (to show nothing changed)
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
latest_of() { cat "$1/checkpoints/latest"; }

can_unshare=0
if unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$tmp' && umount '$tmp'" 2>/dev/null; then can_unshare=1; fi
can_setpriv=0
if setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" --version >/dev/null 2>&1; then can_setpriv=1; fi
echo "crash_errors: mount namespaces: $([ $can_unshare = 1 ] && echo yes || echo no); run as nobody: $([ $can_setpriv = 1 ] && echo yes || echo no)"

cfg="$src/configs/tasks/reverse_decoder.yaml"
# a checkpoint of ~400 KB and a state of ~800 KB: much larger than the metrics files, so a
# file-size limit or a small disk fails a checkpoint write first. No periodic evaluation
# (best.safetensors only at the end).
mid=(--set model.d_model=64 --set model.n_layers=2 --set train.batch_size=8 --set train.threads=1
     --set data.n_val=8 --set train.eval_batches=1 --set train.steps=200 --set train.log_interval=1
     --set train.eval_interval=0 --set train.checkpoint_interval=10 --set train.keep_checkpoints=2)

"$bin" train "$cfg" --run-dir "$tmp/ref" "${mid[@]}" >"$tmp/ref.out" 2>&1 || fail "reference run: $(tail -3 "$tmp/ref.out")"

# A run stopped (SIGINT: the step finishes, a checkpoint is saved) after its first checkpoint.
stopped_run() {
  "$bin" train "$cfg" --run-dir "$1" "${mid[@]}" >"$1.out" 2>&1 &
  local pid=$!
  wait_for "$1/checkpoints/latest" 30
  kill -INT "$pid"
  wait "$pid" || fail "stopped run $1: exit $?"
  grep -q '^interrupted at step' "$1.out" || fail "$1 was not interrupted: $(tail -2 "$1.out")"
}
# After a failed save: `latest` unchanged, no temporary or half-saved files, and the run
# resumes from that checkpoint to exactly the reference.
check_intact_and_resume() {
  local dir=$1 before=$2 what=$3
  [ "$(latest_of "$dir")" = "$before" ] || fail "$what: latest is $(latest_of "$dir"), was $before"
  [ -z "$(find "$dir" -name '*.tmp')" ] || fail "$what: temporary files left: $(find "$dir" -name '*.tmp')"
  local n
  n=$(find "$dir/checkpoints" -name 'step_*.safetensors' -newer "$dir/checkpoints/latest" | wc -l)
  [ "$n" -eq 0 ] || fail "$what: files of the failed save left: $(find "$dir/checkpoints" -newer "$dir/checkpoints/latest")"
  "$bin" inspect "$dir/checkpoints/$before" >/dev/null || fail "$what: $before does not load"
  "$bin" train --resume "$dir" >"$dir.resume.out" 2>&1 || fail "$what: resume: $(tail -3 "$dir.resume.out")"
  grep -q "^resume: from step $(sed -E 's/^step_0*([0-9]+).*/\1/' <<<"$before") " "$dir.resume.out" ||
    fail "$what: resume did not start from $before"
  $py "$src/tests/e2e/compare_runs.py" "$tmp/ref" "$dir" "$what" || fail "$what: the resumed run differs from the reference"
}

# ---- a file-size limit (ulimit -f) during a checkpoint write: EFBIG, not death by SIGXFSZ ----
echo "crash_errors: file-size limit"
stopped_run "$tmp/fsize"
before=$(latest_of "$tmp/fsize")
set +e
out=$(ulimit -f 200; "$bin" train --resume "$tmp/fsize" 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || fail "file-size limit: exit $rc (expected 2; 153 would be death by SIGXFSZ): $(tail -3 <<<"$out")"
[ "$(grep -c '^error: ' <<<"$out")" -eq 1 ] || fail "file-size limit: one error line expected: $out"
grep -qE "^error: checkpoint at step [0-9]+ not saved: cannot write '$tmp/fsize/checkpoints/step_[0-9]+\.state\.safetensors': File too large .*the previous checkpoint '$tmp/fsize/checkpoints/$before' is intact" <<<"$out" ||
  fail "file-size limit message: $(grep '^error: ' <<<"$out")"
echo "  ok: $(grep '^error: ' <<<"$out" | cut -c1-220)"
check_intact_and_resume "$tmp/fsize" "$before" "file-size limit"

# ---- a full disk: a small tmpfs in a private mount namespace (ENOSPC) ----
echo "crash_errors: full disk"
if [ "$can_unshare" = 1 ]; then
  stopped_run "$tmp/full"
  before=$(latest_of "$tmp/full")
  used_k=$(du -sk "$tmp/full" | cut -f1)
  mkdir "$tmp/mnt"
  # room for what is there plus ~300 KB: the metrics rows fit, the next state file (~800 KB) not
  set +e
  unshare -m bash -c '
    set -e
    mount -t tmpfs -o size=$(( $3 + 300 ))k tmpfs "$1/mnt"
    cp -a "$1/full" "$1/mnt/full"
    set +e
    "$2" train --resume "$1/mnt/full" >"$1/full.tmpfs.out" 2>&1
    echo $? >"$1/full.tmpfs.rc"
    df -k "$1/mnt" | tail -1 >"$1/full.tmpfs.df"
    set -e
    rm -rf "$1/full"
    cp -a "$1/mnt/full" "$1/full"' _ "$tmp" "$bin" "$used_k"
  set -e
  [ -s "$tmp/full.tmpfs.rc" ] || fail "full disk: the tmpfs run did not happen"
  out=$(cat "$tmp/full.tmpfs.out"); rc=$(cat "$tmp/full.tmpfs.rc")
  [ "$rc" -eq 2 ] || fail "full disk: exit $rc (expected 2): $(tail -3 <<<"$out")"
  [ "$(grep -c '^error: ' <<<"$out")" -eq 1 ] || fail "full disk: one error line expected: $out"
  grep -qE "^error: checkpoint at step [0-9]+ not saved: cannot write '$tmp/mnt/full/checkpoints/step_[0-9]+\.(state\.)?safetensors': No space left on device .*the previous checkpoint '$tmp/mnt/full/checkpoints/$before' is intact" <<<"$out" ||
    fail "full disk message: $(grep '^error: ' <<<"$out")"
  echo "  ok: $(grep '^error: ' <<<"$out" | cut -c1-220)"
  echo "  (tmpfs after the failure: $(awk '{print $3 " KB used, " $4 " KB free"}' "$tmp/full.tmpfs.df"))"
  check_intact_and_resume "$tmp/full" "$before" "full disk"
else
  skipped+=("full disk on a tmpfs (no mount namespace here; the file-size limit above covers the write path)")
fi

# ---- a read-only run directory ----
echo "crash_errors: read-only run directory"
"$bin" train "$cfg" --run-dir "$tmp/ro" "${mid[@]}" --set train.steps=20 >/dev/null 2>&1 || fail "ro: first run"
sum=$(tree_sum "$tmp/ro")
if [ "$can_unshare" = 1 ]; then
  # a read-only bind mount of the run directory over itself: EROFS even for root
  ro() { unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' _ "$tmp/ro" "$@"; }
  cause="Read-only file system"
  mkdir "$tmp/roparent"
  ro_parent() { unshare -m sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' _ "$tmp/roparent" "$@"; }
elif [ "$can_setpriv" = 1 ]; then
  # run as nobody: the root-owned directories (0755) are not writable for it
  ro() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  cause="Permission denied"
  mkdir "$tmp/roparent"
  ro_parent() { ro "$@"; }
fi
if [ "$(type -t ro)" = function ]; then
  expect_error "cannot start a run in '$tmp/ro': directory '$tmp/ro' is not writable \($cause\)" \
    ro "$bin" train "$cfg" --run-dir "$tmp/ro" "${mid[@]}" --overwrite
  expect_error "cannot resume '$tmp/ro': directory '$tmp/ro' is not writable \($cause\)" \
    ro "$bin" train --resume "$tmp/ro" --set train.steps=40
  expect_error "cannot create run directory '$tmp/roparent/run': $cause" \
    ro_parent "$bin" train "$cfg" --run-dir "$tmp/roparent/run" "${mid[@]}"
  [ "$(tree_sum "$tmp/ro")" = "$sum" ] || fail "read-only: the run directory changed"
  "$bin" train --resume "$tmp/ro" --set train.steps=40 >/dev/null 2>&1 || fail "read-only: resume once writable again"
else
  skipped+=("read-only run directory (neither a mount namespace nor setpriv works here)")
fi

# ---- data files (data.task: text) ----
echo "crash_errors: data files"
$py -c '
import random, sys
r = random.Random(7)
words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"]
open(sys.argv[1], "w").write(" ".join(r.choice(words) for _ in range(3000)) + "\n")' "$tmp/data.txt"
text=("$src/configs/shakespeare_char.yaml" --set "data.path=$tmp/data.txt" --set model.d_model=16
      --set model.n_layers=1 --set model.n_heads=2 --set model.block_size=16 --set train.batch_size=4
      --set train.threads=1 --set train.eval_batches=1 --set train.steps=20 --set train.eval_interval=0
      --set train.checkpoint_interval=10)
expect_error "--set data.path=$tmp/nothere.txt: key 'data.path': cannot read text file '$tmp/nothere.txt': No such file or directory" \
  "$bin" train "${text[@]}" --set "data.path=$tmp/nothere.txt" --run-dir "$tmp/t0"
expect_error "--set data.path=$tmp: key 'data.path': cannot read text file '$tmp': it is a directory" \
  "$bin" train "${text[@]}" --set "data.path=$tmp" --run-dir "$tmp/t0"
"$bin" train "${text[@]}" --run-dir "$tmp/text" >/dev/null 2>&1 || fail "text run"
want=$(sha256sum "$tmp/data.txt" | cut -d' ' -f1)
rec=$($py -c '
import json, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]
print(json.loads(b[8:8 + n])["__metadata__"]["data_sha256"])' "$tmp/text/checkpoints/step_0000020.state.safetensors")
[ "$rec" = "$want" ] || fail "the state records data_sha256 $rec, sha256sum says $want"
echo "  ok: the training state records data_sha256 = sha256sum of the file ($want)"
cp "$tmp/data.txt" "$tmp/data.orig"
# missing at resume
mv "$tmp/data.txt" "$tmp/data.away"
expect_error "cannot resume '$tmp/text': cannot read data file '$tmp/data.txt': No such file or directory" \
  "$bin" train --resume "$tmp/text" --set train.steps=30
mv "$tmp/data.away" "$tmp/data.txt"
# unreadable at resume
if [ "$can_setpriv" = 1 ]; then
  chown -R 65534:65534 "$tmp/text"
  chmod 000 "$tmp/data.txt"
  expect_error "cannot resume '$tmp/text': cannot read data file '$tmp/data.txt': Permission denied" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" train --resume "$tmp/text" --set train.steps=30
  expect_error "--set data.path=$tmp/data.txt: key 'data.path': cannot read text file '$tmp/data.txt': Permission denied" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" train "${text[@]}" --run-dir "$tmp/text_nobody"
  chmod 644 "$tmp/data.txt"
  chown -R 0:0 "$tmp/text"
else
  skipped+=("an unreadable data file (setpriv does not work here)")
fi
# changed between the run and its resume: the same characters, two of them swapped (the
# vocabulary check alone would not notice)
$py -c '
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = next(i for i in range(len(b) - 1) if b[i] != b[i + 1]); b[i], b[i + 1] = b[i + 1], b[i]
open(p, "wb").write(b)' "$tmp/data.txt"
now=$(sha256sum "$tmp/data.txt" | cut -d' ' -f1)
sum=$(tree_sum "$tmp/text")
expect_error "cannot resume '$tmp/text': the data file '$tmp/data.txt' changed since the run started \(SHA-256 $want in the training state '[^']*step_0000020.state.safetensors', $now now\); .*restore that file" \
  "$bin" train --resume "$tmp/text" --set train.steps=30
[ "$(tree_sum "$tmp/text")" = "$sum" ] || fail "a refused resume changed the run directory"
cp "$tmp/data.orig" "$tmp/data.txt"
"$bin" train --resume "$tmp/text" --set train.steps=30 >"$tmp/text.out" 2>&1 || fail "resume with the original data: $(tail -2 "$tmp/text.out")"
grep -q "^done: 30 steps" "$tmp/text.out" || fail "resume with the original data did not finish"
echo "  ok: with the original file restored the resume runs"

echo "crash_errors: $($py -c "import time; print(f'{time.time() - $t0:.1f}')")s"
if [ "${#skipped[@]}" -gt 0 ]; then
  for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
  exit 77
fi
echo "e2e crash_errors: ok"
