#!/usr/bin/env bash
# The test command: install dependencies, build, run every test (unit + end-to-end).
#   scripts/test.sh [CTEST ARGS...]             Release build in build/, every test
#   scripts/test.sh --sanitize [CTEST ARGS...]  AddressSanitizer + UBSan build in build-sanitize/,
#                                               unit and e2e tests (not the `experiments`, `cuda`
#                                               or `python` labels: the last checks Python scripts
#                                               against `inspect --dump`, which other e2e tests run
#                                               sanitized); see docs/reliability.md, "Sanitizers"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  # CPU only (CMakeLists.txt refuses ATTNLAB_SANITIZE together with ATTNLAB_CUDA)
  # ATTNLAB_SANITIZE_AREAS (e.g. "core;config;train") limits the unit-test programs built and run;
  # unset: all of them. The e2e tests always run.
  # ATTNLAB_SANITIZE_FUZZ=ON builds with clang-14 and the fuzz targets' coverage hooks too, so
  # that `FUZZ_BUILD_DIR=build-sanitize scripts/fuzz.sh` fuzzes from the same build (what CI does:
  # one sanitizer build instead of two). Default: GCC.
  flags="-DATTNLAB_SANITIZE=ON -DATTNLAB_UNIT_AREAS=${ATTNLAB_SANITIZE_AREAS:-}"
  if [ "${ATTNLAB_SANITIZE_FUZZ:-OFF}" = ON ]; then
    scripts/setup.sh --fuzz
    export CC=clang-14 CXX=clang++-14
    flags="$flags -DATTNLAB_FUZZ=ON"
  else
    scripts/setup.sh
  fi
  ATTNLAB_BUILD_DIR=build-sanitize ATTNLAB_CUDA=OFF ATTNLAB_CMAKE_FLAGS="$flags" scripts/build.sh
  # Every report aborts its process (exit 134), whatever it is: ASan (halt_on_error), UBSan
  # (-fno-sanitize-recover=all, halt_on_error) and LeakSanitizer at each process's exit
  # (detect_leaks); abort_on_error turns the exit into SIGABRT, which doctest reports as a crashed
  # test case and which no e2e script mistakes for the exit 1 or 2 it expects. The report itself
  # is on the test's stderr (--output-on-failure prints it). No suppressions are needed.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  cd build-sanitize
  ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" -LE 'experiments|cuda|python' "$@"
  exit
fi
# torch (about 2.2 GB to download and unpack) installs in the background while the build
# compiles; only the tests need it
scripts/setup.sh --no-torch
mkdir -p build
scripts/setup.sh --torch-only >build/setup-torch.log 2>&1 &
torch_pid=$!
build_rc=0
scripts/build.sh || build_rc=$?
torch_rc=0
wait "$torch_pid" || torch_rc=$?
cat build/setup-torch.log
[ "$build_rc" = 0 ] || exit "$build_rc"
[ "$torch_rc" = 0 ] || { echo "test.sh: installing torch failed (above)" >&2; exit "$torch_rc"; }
cd build
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"
