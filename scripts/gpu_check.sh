#!/usr/bin/env bash
# The GPU verification of the CUDA backend, in one command (docs/cuda.md):
#   1. configure build-cuda/ with -DATTNLAB_CUDA=ON and build the CUDA test program and benchmark
#   2. ctest -L cuda: every kernel against the CPU reference (fails if any test was skipped:
#      a check that skipped verified nothing)
#   3. the benchmark table (n = 512 … 16384, fwd and fwd+bwd, fp32 and bf16, ms and TFLOP/s),
#      and PyTorch's scaled_dot_product_attention on the same shapes when torch (≥ 2.0, with CUDA)
#      is importable
# Exits non-zero on any failure; prints the total time. Environment:
#   ATTNLAB_CUDA_ARCH   CMAKE_CUDA_ARCHITECTURES (default: the project's "80;90")
#   GPU_CHECK_ITERS     timed runs per benchmark row (default 5)
#   PYTHON              interpreter for the PyTorch comparison (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }
trap 'echo "gpu_check: FAILED after $(elapsed)" >&2' ERR

if [ -x scripts/setup.sh ]; then scripts/setup.sh; fi
if ! command -v nvcc >/dev/null 2>&1; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  else
    echo "gpu_check: nvcc not found (install the CUDA toolkit or put nvcc on PATH)" >&2
    exit 1
  fi
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi

echo "== configure + build (build-cuda/) =="
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON \
  ${ATTNLAB_CUDA_ARCH:+-DCMAKE_CUDA_ARCHITECTURES="$ATTNLAB_CUDA_ARCH"} >/dev/null
cmake --build build-cuda -j "$(nproc 2>/dev/null || echo 4)" --target test_cuda attnlab_cuda_bench
echo "build done at $(elapsed)"

echo "== ctest -L cuda =="
log=build-cuda/gpu_check_ctest.log
(cd build-cuda && ctest -L cuda --output-on-failure 2>&1) | tee "$log"
if grep -q "(Skipped)" "$log"; then
  echo "gpu_check: FAILED after $(elapsed): the CUDA tests were skipped (no GPU visible?), nothing was verified" >&2
  exit 1
fi
echo "tests done at $(elapsed)"

echo "== benchmark: attnlab flash kernels =="
csv=build-cuda/cuda_bench.csv
build-cuda/attnlab_cuda_bench --iters "${GPU_CHECK_ITERS:-5}" --csv "$csv"
echo "benchmark done at $(elapsed)"

echo "== benchmark: PyTorch scaled_dot_product_attention =="
py=${PYTHON:-python3}
if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() and hasattr(torch.nn.functional, "scaled_dot_product_attention") else 1)' 2>/dev/null; then
  "$py" scripts/bench_sdpa.py --ours "$csv" --iters "${GPU_CHECK_ITERS:-5}"
else
  echo "(skipped: torch ≥ 2.0 with CUDA is not importable by $py)"
fi

trap - ERR
echo "gpu_check: OK, total $(elapsed)"
