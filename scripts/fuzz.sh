#!/usr/bin/env bash
# Runs one libFuzzer target (tests/fuzz/fuzz_TARGET.cpp), or each in turn, for SECONDS each.
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]    e.g. scripts/fuzz.sh safetensors 60
#   scripts/fuzz.sh all SECONDS
#   scripts/fuzz.sh list
# Builds build-fuzz/ (clang-14, -DATTNLAB_FUZZ=ON, ccache when present) when needed. The committed
# seeds (tests/fuzz/corpus/TARGET/) are copied into a working corpus under build-fuzz/work/TARGET/
# that grows from run to run, so the repository is never written to; crashing inputs land in
# build-fuzz/work/TARGET/crashes/. Exits non-zero when a target crashes, leaks, times out on one
# input (-timeout, default 10 s) or goes over the memory limit (-rss_limit_mb, default 2048).
# FUZZ_JOBS (default 2) sets the build's parallelism; FUZZ_RSS_MB and FUZZ_TIMEOUT the limits.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# FUZZ_BUILD_DIR: another build directory configured with -DATTNLAB_FUZZ=ON, e.g. build-sanitize
# after `ATTNLAB_SANITIZE_FUZZ=ON scripts/test.sh --sanitize` (CI's sanitizer tier), so the fuzz
# targets link the library that tier already compiled
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
targets=()
for f in "$root"/tests/fuzz/fuzz_*.cpp; do
  t=$(basename "$f" .cpp)
  targets+=("${t#fuzz_}")
done

usage() {
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer options...]; targets: ${targets[*]}" >&2
  exit 2
}
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi
[ $# -ge 2 ] || usage
what=$1 seconds=$2
shift 2
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }
if [ "$what" = all ]; then
  run=("${targets[@]}")
else
  [[ " ${targets[*]} " == *" $what "* ]] || { echo "fuzz.sh: unknown target '$what' (targets: ${targets[*]})" >&2; exit 2; }
  run=("$what")
fi

# clang 14 and libFuzzer, from Debian, installed when missing
if ! command -v clang++-14 >/dev/null || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  "$root/scripts/setup.sh" --fuzz
fi
if [ -f "$build/CMakeCache.txt" ]; then
  grep -q '^ATTNLAB_FUZZ:BOOL=ON' "$build/CMakeCache.txt" ||
    { echo "fuzz.sh: $build is not configured with -DATTNLAB_FUZZ=ON" >&2; exit 2; }
else
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DATTNLAB_FUZZ=ON \
    -DATTNLAB_UNITY=ON -DATTNLAB_TESTS=OFF -DATTNLAB_CUDA=OFF "${launcher[@]}" >/dev/null
fi
CCACHE_BASEDIR="$root" cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${run[@]/#/fuzz_}" >"$build/fuzz-build.log" 2>&1 ||
  { tail -30 "$build/fuzz-build.log" >&2; echo "fuzz.sh: build failed (log: $build/fuzz-build.log)" >&2; exit 1; }

# leaks are failures; undefined behaviour stops at the first report with a stack
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

failed=()
for t in "${run[@]}"; do
  work="$build/work/$t"
  mkdir -p "$work/corpus" "$work/crashes"
  [ -d "$root/tests/fuzz/corpus/$t" ] && cp -n "$root/tests/fuzz/corpus/$t"/* "$work/corpus/" 2>/dev/null || true
  dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  echo "fuzz.sh: $t for ${seconds}s (corpus $work/corpus: $(ls "$work/corpus" | wc -l) files)"
  rc=0
  (cd "$work" && "$build/fuzz_$t" "$work/corpus" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_RSS_MB:-2048}" -print_final_stats=1 \
    -artifact_prefix="$work/crashes/" "${dict[@]}" "$@") >"$work/last.log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/last.log" | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -eq 0 ]; then
    echo "fuzz.sh: $t: ok, ${execs} executions, corpus $(ls "$work/corpus" | wc -l) files"
  else
    echo "fuzz.sh: $t: FAILED (exit $rc) after ${execs} executions; log $work/last.log, input(s) in $work/crashes/:" >&2
    grep -E '^==[0-9]+==ERROR|runtime error|SUMMARY|fuzz property|terminate called|what\(\)|Test unit written' \
      "$work/last.log" | head -8 >&2 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
