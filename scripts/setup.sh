#!/usr/bin/env bash
# Installs what attnlab needs to build and test: Debian packages, then a Python virtual
# environment .venv/ at the repository root with safetensors and numpy (the tests that check
# checkpoints against the reference safetensors implementation run .venv/bin/python).
# Idempotent: packages already installed are skipped; uses sudo when not root.
set -euo pipefail

# --fuzz: also what scripts/fuzz.sh needs (clang 14 and its libFuzzer)
extra=()
if [ "${1:-}" = --fuzz ]; then
  extra=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
fi

packages=(
  cmake g++ make                # toolchain
  libeigen3-dev                 # linear algebra
  libyaml-cpp-dev               # config files
  libfmt-dev                    # formatting
  libcli11-dev                  # command line
  doctest-dev                   # unit tests
  nlohmann-json3-dev            # safetensors headers, metrics.jsonl
  libopenblas-openmp-dev        # GEMMs (the OpenMP build: shares our thread pool)
  libopenmpi-dev openmpi-bin    # data-parallel training: mpirun -np N attnlab train (docs/distributed.md)
  python3-numpy                 # tests read checkpoints and .npy dumps with NumPy
  python3-matplotlib            # scripts/plot_metrics.py, scripts/plot_attention.py
  python3-venv                  # .venv/ (below)
  "${extra[@]}"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The virtual environment: the reference safetensors package (and numpy for it), from the Python
# package index; never installed into the system Python.
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
if "$venv/bin/python" -c 'import safetensors, numpy' 2>/dev/null; then
  echo "setup: .venv has safetensors and numpy"
else
  echo "setup: installing safetensors and numpy into .venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check safetensors numpy
fi
echo "setup: done"
