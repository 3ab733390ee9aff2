#!/usr/bin/env bash
# Which library should run the blocks of attnlab's large GEMMs? Builds scripts/bench/gemm_libs.cpp
# once per library found (OpenBLAS OpenMP build, oneDNN, BLIS OpenMP build: Debian's
# libopenblas-openmp-dev, libdnnl-dev, libblis-openmp-dev) and prints each one's single-threaded
# GFLOP/s on W1's products, whole and in attnlab's block lengths; OpenBLAS runs twice, with its
# native kernel and with OPENBLAS_CORETYPE=Haswell. One thread, as attnlab calls each block.
#   scripts/bench/gemm_libs.sh
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)/gemm_libs.cpp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 BLIS_NUM_THREADS=1
arch=/usr/lib/x86_64-linux-gnu
ran=0
if [ -f "$arch/openblas-openmp/libopenblas.so" ]; then
  g++ -O2 -march=native -DLIB_OPENBLAS -I/usr/include/x86_64-linux-gnu/openblas-openmp "$src" \
    -L"$arch/openblas-openmp" -Wl,-rpath,"$arch/openblas-openmp" -lopenblas -fopenmp -o "$tmp/openblas"
  (unset OPENBLAS_CORETYPE; "$tmp/openblas")
  OPENBLAS_CORETYPE=Haswell "$tmp/openblas" | tail -n +2 | sed 's/^openblas /ob-hswl  /'
  ran=1
fi
if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then
  g++ -O2 -march=native -DLIB_ONEDNN "$src" -ldnnl -o "$tmp/onednn"
  "$tmp/onednn" | tail -n +$((ran + 1))
  ran=1
fi
if [ -f "$arch/blis-openmp/libblis.a" ]; then
  g++ -O2 -march=native -DLIB_BLIS -I/usr/include/x86_64-linux-gnu/blis-openmp "$src" "$arch/blis-openmp/libblis.a" \
    -fopenmp -lm -lpthread -o "$tmp/blis"
  "$tmp/blis" | tail -n +$((ran + 1))
  ran=1
fi
[ "$ran" = 1 ] || { echo "gemm_libs: none of OpenBLAS (OpenMP), oneDNN, BLIS (OpenMP) is installed" >&2; exit 1; }
echo "(ob-hswl: OpenBLAS with OPENBLAS_CORETYPE=Haswell)"
