#!/usr/bin/env bash
# Installs what attnlab needs to build and test, from Debian packages.
# Idempotent: packages already installed are skipped; uses sudo when not root.
set -euo pipefail

packages=(
  cmake g++ make                # toolchain
  libeigen3-dev                 # linear algebra
  libyaml-cpp-dev               # config files
  libfmt-dev                    # formatting
  libcli11-dev                  # command line
  doctest-dev                   # unit tests
  nlohmann-json3-dev            # safetensors headers, metrics.jsonl
  libopenblas-openmp-dev        # GEMMs (the OpenMP build: shares our thread pool)
  python3-numpy                 # tests read checkpoints and .npy dumps with NumPy
  python3-matplotlib            # scripts/plot_metrics.py, scripts/plot_attention.py
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
