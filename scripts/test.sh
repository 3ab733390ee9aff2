#!/usr/bin/env bash
# The test command: install dependencies, build, run every test (unit + end-to-end).
#   scripts/test.sh [CTEST ARGS...]             Release build in build/, every test
#   scripts/test.sh --sanitize [CTEST ARGS...]  AddressSanitizer + UBSan build in build-sanitize/,
#                                               unit and e2e tests (not the `experiments` or `cuda`
#                                               labels); see docs/reliability.md, "Sanitizers"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  scripts/setup.sh
  # CPU only: the CUDA runtime and ASan's shadow memory do not mix without extra options
  ATTNLAB_BUILD_DIR=build-sanitize ATTNLAB_CUDA=OFF ATTNLAB_CMAKE_FLAGS="-DATTNLAB_SANITIZE=ON" scripts/build.sh
  supp=$PWD/scripts/sanitizers
  # halt_on_error / abort: the first report ends the process, so it fails the test that ran it.
  # detect_leaks: LeakSanitizer runs at exit of every process and reports our own leaks.
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  cd build-sanitize
  ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" -LE 'experiments|cuda' "$@"
  exit
fi
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"
