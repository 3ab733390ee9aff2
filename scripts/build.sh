#!/usr/bin/env bash
# Configures and builds attnlab into build/ (Release, -march=native unless ATTNLAB_NATIVE=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DATTNLAB_NATIVE="${ATTNLAB_NATIVE:-ON}" >/dev/null
cmake --build build -j "$jobs" "$@"
