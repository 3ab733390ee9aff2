#!/usr/bin/env bash
# Configures and builds attnlab into build/ (Release, -march=native unless ATTNLAB_NATIVE=OFF;
# with the CUDA kernels when nvcc is present, see docs/cuda.md).
# A unity build of src/ (ATTNLAB_UNITY=OFF in the environment builds file by file; CMakeLists.txt).
# ATTNLAB_BUILD_DIR picks another build directory (default: build); ATTNLAB_CMAKE_FLAGS adds
# configure options, e.g. ATTNLAB_BUILD_DIR=build-sanitize ATTNLAB_CMAKE_FLAGS="-DATTNLAB_SANITIZE=ON"
# (what scripts/test.sh --sanitize does). Arguments go to `cmake --build` (e.g. --target attnlab).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
build_dir=${ATTNLAB_BUILD_DIR:-build}
read -r -a extra_flags <<<"${ATTNLAB_CMAKE_FLAGS:-}"
# CUDA kernels (src/cuda) are built, and so compile-checked, whenever nvcc is present;
# ATTNLAB_CUDA=ON|OFF in the environment decides instead.
cuda_flag=()
if [ -n "${ATTNLAB_CUDA:-}" ]; then
  cuda_flag=(-DATTNLAB_CUDA="$ATTNLAB_CUDA")
elif command -v nvcc >/dev/null 2>&1; then
  cuda_flag=(-DATTNLAB_CUDA=ON)
elif [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
  cuda_flag=(-DATTNLAB_CUDA=ON)
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DATTNLAB_NATIVE="${ATTNLAB_NATIVE:-ON}" "${cuda_flag[@]}" \
  -DATTNLAB_UNITY="${ATTNLAB_UNITY:-ON}" \
  "${extra_flags[@]}" >/dev/null
cmake --build "$build_dir" -j "$jobs" "$@"
