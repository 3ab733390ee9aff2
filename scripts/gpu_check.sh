#!/usr/bin/env bash
# The GPU verification of the CUDA backend in one command (docs/cuda.md, "GPU verification"):
#   0. versions first: the driver (and the newest CUDA it supports) and the CUDA toolkit; stops
#      with a plain sentence when there is no GPU or the driver is too old for the runtime
#   1. configure build-cuda/ with -DATTNLAB_CUDA=ON; build test_cuda and attnlab_cuda_bench;
#      attnlab_cuda_bench --info prints the versions the runtime itself reports
#   2. every CUDA test (ctest -L cuda) in checked mode (ATTNLAB_CUDA_CHECKED=1)
#   3. a small case of each kernel under compute-sanitizer: memcheck, racecheck, synccheck
#   4. one summary line per kernel (PASSED / FAILED / SKIPPED and why), then the benchmark table
#      and, when torch with CUDA is importable, PyTorch's SDPA on the same shapes
# Offline: Debian packages are installed (scripts/setup.sh) only when some are missing.
# Exit status: 0 everything passed; 1 something failed; 2 nothing could run (no GPU, driver too
# old, no toolkit); 3 the tests passed but the sanitizer could not run (compute-sanitizer missing).
# Logs: build-cuda/gpu_check/. Environment:
#   ATTNLAB_CUDA_ARCH   CMAKE_CUDA_ARCHITECTURES (default "80;90" plus the visible GPU's own)
#   GPU_CHECK_ITERS     timed runs per benchmark row (default 5); GPU_CHECK_BENCH=0 skips the table
#   PYTHON              interpreter for the PyTorch comparison (default python3)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
t_start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t_start )) s"; }
say() { echo "gpu_check: $*"; }
kernels=("flash forward" "flash backward" "linear forward" "linear backward")
# every kernel's summary line says the same when nothing could run
all_skipped() {
  for k in "${kernels[@]}"; do printf 'gpu_check: %-16s SKIPPED (%s)\n' "$k" "$1"; done
  say "NOTHING VERIFIED: $1 (after $(elapsed))"
  exit 2
}

# ---- 0. versions ------------------------------------------------------------------------------
echo "== versions =="
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
toolkit=""
if command -v nvcc >/dev/null 2>&1; then
  toolkit=$(nvcc --version | sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -1)
fi
driver="" driver_cuda="" gpus="" no_gpu="nvidia-smi not found (no NVIDIA driver installed?)"
if command -v nvidia-smi >/dev/null 2>&1; then
  # without a driver nvidia-smi fails, printing its complaint on stdout: only a success is read
  if smi_out=$(nvidia-smi 2>&1); then
    no_gpu="nvidia-smi lists none"
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1) || driver=""
    driver_cuda=$(echo "$smi_out" | sed -n 's/.*CUDA Version: *\([0-9][0-9.]*\).*/\1/p' | head -1)
    gpus=$(nvidia-smi --query-gpu=index,name,compute_cap,memory.total --format=csv,noheader 2>/dev/null) || gpus=""
  else
    no_gpu="nvidia-smi failed: $(echo "$smi_out" | head -1)"
  fi
fi
echo "NVIDIA driver:        ${driver:-none found (nvidia-smi missing or failing)}"
echo "driver's newest CUDA: ${driver_cuda:-unknown}"
echo "CUDA toolkit (nvcc):  ${toolkit:-none found}"
echo "GPUs:                 ${gpus:-none}"
[ -n "$gpus" ] || all_skipped "no GPU visible: $no_gpu"
[ -n "$toolkit" ] || all_skipped "no CUDA toolkit: nvcc is neither on PATH nor in /usr/local/cuda/bin"
# version_ge A B: A ≥ B for dotted versions
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]; }
if [ -n "$driver_cuda" ] && ! version_ge "$driver_cuda" "$toolkit"; then
  if [ "${driver_cuda%%.*}" != "${toolkit%%.*}" ]; then
    all_skipped "the driver is too old for the runtime: driver $driver supports CUDA $driver_cuda, the toolkit is CUDA $toolkit; update the driver or use a CUDA $driver_cuda toolkit"
  fi
  say "warning: the driver supports CUDA $driver_cuda, older than the toolkit's $toolkit (same major: minor-version compatibility should apply)"
fi

# ---- packages: install only what is missing (offline when all are present) --------------------
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in cmake g++ make libeigen3-dev libyaml-cpp-dev libfmt-dev libcli11-dev doctest-dev \
           nlohmann-json3-dev libopenblas-openmp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "missing packages: ${missing[*]}; running scripts/setup.sh (needs the network)"
  scripts/setup.sh || { say "FAILED: scripts/setup.sh could not install ${missing[*]}"; exit 1; }
else
  say "build packages present (no apt)"
fi

# ---- 1. build ---------------------------------------------------------------------------------
logs=build-cuda/gpu_check
mkdir -p "$logs"
arch=${ATTNLAB_CUDA_ARCH:-}
if [ -z "$arch" ]; then
  arch="80;90"
  own=$(echo "$gpus" | head -1 | awk -F', *' '{gsub(/\./, "", $3); print $3}')
  case ";$arch;" in *";$own;"*) ;; *) [ -n "$own" ] && arch="$arch;$own" ;; esac
fi
echo "== configure + build (build-cuda/, architectures $arch) =="
if ! cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$logs/configure.log" 2>&1; then
  tail -20 "$logs/configure.log"; say "FAILED: configure (see $logs/configure.log)"; exit 1
fi
if ! cmake --build build-cuda -j "$(nproc 2>/dev/null || echo 4)" --target test_cuda attnlab_cuda_bench \
       >"$logs/build.log" 2>&1; then
  grep -m 20 -E "error|Error" "$logs/build.log"; say "FAILED: build (see $logs/build.log)"; exit 1
fi
say "built at $(elapsed)"
test_bin=build-cuda/tests/test_cuda
build-cuda/attnlab_cuda_bench --info
info_rc=$?
[ $info_rc -eq 0 ] || all_skipped "the CUDA runtime cannot use the GPU (attnlab_cuda_bench --info above)"

# ---- 2. every CUDA test, checked mode ---------------------------------------------------------
echo "== ctest -L cuda (ATTNLAB_CUDA_CHECKED=1) =="
(cd build-cuda && ATTNLAB_CUDA_CHECKED=1 ctest -L cuda --output-on-failure) >"$logs/ctest.log" 2>&1
ctest_rc=$?
grep -E "tests passed|tests failed|\(Failed\)|\(Skipped\)|\*\*\*" "$logs/ctest.log"
n_skipped=$(grep -c "(Skipped)" "$logs/ctest.log")
say "tests done at $(elapsed) (log: $logs/ctest.log)"

# ---- 3. each kernel's small case under compute-sanitizer --------------------------------------
sanitizer=""
for c in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  if command -v "$c" >/dev/null 2>&1; then sanitizer=$(command -v "$c"); break; fi
done
declare -A verdict
for k in "${kernels[@]}"; do
  slug=${k// /_}
  # the kernel's own tests: its small case (also part of ctest above) run alone
  if ! ATTNLAB_CUDA_CHECKED=1 "$test_bin" -tc="small case: $k" >"$logs/$slug.test.log" 2>&1; then
    verdict[$k]="FAILED (its small case against the reference: $logs/$slug.test.log)"; continue
  fi
  if grep -q "SKIPPED" "$logs/$slug.test.log"; then
    verdict[$k]="SKIPPED ($(grep -m1 SKIPPED "$logs/$slug.test.log"))"; continue
  fi
  if [ -z "$sanitizer" ]; then
    verdict[$k]="SKIPPED (reference check passed; compute-sanitizer not found, so memcheck, racecheck, synccheck did not run)"
    continue
  fi
  bad=()
  for tool in memcheck racecheck synccheck; do
    extra=()
    [ "$tool" = racecheck ] && extra=(--racecheck-report hazard)
    if ! ATTNLAB_CUDA_CHECKED=1 "$sanitizer" --tool "$tool" "${extra[@]}" --error-exitcode 99 \
         "$test_bin" -tc="small case: $k" >"$logs/$slug.$tool.log" 2>&1; then
      summary=$(grep -m1 -E "ERROR SUMMARY|RACECHECK SUMMARY|error" "$logs/$slug.$tool.log")
      bad+=("$tool: ${summary:-failed} ($logs/$slug.$tool.log)")
    fi
  done
  if [ ${#bad[@]} -eq 0 ]; then
    verdict[$k]="PASSED (reference check; memcheck, racecheck, synccheck clean)"
  else
    verdict[$k]="FAILED (${bad[*]})"
  fi
done
say "sanitizer runs done at $(elapsed)"

# ---- 4. summary -------------------------------------------------------------------------------
echo "== summary =="
status=0
for k in "${kernels[@]}"; do
  printf 'gpu_check: %-16s %s\n' "$k" "${verdict[$k]}"
  case "${verdict[$k]}" in
    FAILED*) status=1 ;;
    SKIPPED*) [ $status -eq 0 ] && status=3 ;;
  esac
done
if [ $ctest_rc -ne 0 ]; then
  say "all CUDA tests: FAILED (ctest exit $ctest_rc; $logs/ctest.log)"; status=1
elif [ "$n_skipped" -gt 0 ]; then
  say "all CUDA tests: $n_skipped SKIPPED, which verifies nothing ($logs/ctest.log)"; status=1
else
  say "all CUDA tests: PASSED"
fi

if [ "${GPU_CHECK_BENCH:-1}" != 0 ]; then
  echo "== benchmark: attnlab flash kernels =="
  csv=build-cuda/cuda_bench.csv
  if build-cuda/attnlab_cuda_bench --iters "${GPU_CHECK_ITERS:-5}" --csv "$csv"; then
    py=${PYTHON:-python3}
    if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() and hasattr(torch.nn.functional, "scaled_dot_product_attention") else 1)' 2>/dev/null; then
      echo "== benchmark: PyTorch scaled_dot_product_attention =="
      "$py" scripts/bench_sdpa.py --ours "$csv" --iters "${GPU_CHECK_ITERS:-5}" || say "SDPA comparison failed"
    else
      say "SDPA comparison skipped: torch >= 2.0 with CUDA is not importable by $py"
    fi
  else
    say "benchmark: FAILED"; status=1
  fi
fi

case $status in
  0) say "OK: every kernel passed, total $(elapsed)" ;;
  3) say "INCOMPLETE: the tests passed but the sanitizer did not run, total $(elapsed)" ;;
  *) say "FAILED, total $(elapsed)" ;;
esac
exit $status
