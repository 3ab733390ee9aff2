#!/usr/bin/env bash
# Installs what attnlab needs to build and test: Debian packages, then a Python virtual
# environment .venv/ at the repository root with the Python packages Debian lacks, from the Python
# package index (never into the system Python):
#   safetensors, numpy   the reference checkpoint reader the tests compare against
#   tensorboard          its EventAccumulator reads the events files `attnlab train` writes
#   tokenizers, sacrebleu  reference tokenizer and BLEU/chrF implementations for the tests
#   matplotlib           scripts/plot_*.py
#   torch (CPU use)      scripts/torch_model.py, scripts/import_nanogpt.py and their tests
# The tests and scripts run .venv/bin/python.
#   scripts/setup.sh            everything above
#   scripts/setup.sh --fuzz     also what scripts/fuzz.sh and the clang sanitizer build need (clang 14,
#                               its libFuzzer and OpenMP runtime)
#   scripts/setup.sh --no-torch everything but torch (about 2.2 GB and a minute to install)
#   scripts/setup.sh --torch-only  torch alone, into an existing .venv (scripts/test.sh runs it
#                               in the background while the build compiles)
# Idempotent: packages already installed are skipped; uses sudo when not root.
set -euo pipefail

extra=()
want_torch=1
only_torch=0
for arg in "$@"; do
  case "$arg" in
    --fuzz) extra=(clang-14 libfuzzer-14-dev libclang-rt-14-dev libomp-14-dev) ;;  # libomp: clang's -fopenmp
    --no-torch) want_torch=0 ;;
    --torch-only) only_torch=1 ;;
    *) echo "setup: unknown option $arg (expected --fuzz, --no-torch, --torch-only)" >&2; exit 2 ;;
  esac
done

packages=(
  cmake g++ make                # toolchain
  libeigen3-dev                 # linear algebra
  libyaml-cpp-dev               # config files
  libfmt-dev                    # formatting
  libcli11-dev                  # command line
  doctest-dev                   # unit tests
  nlohmann-json3-dev            # safetensors headers, metrics.jsonl
  libopenblas-openmp-dev        # GEMMs (the OpenMP build: shares our thread pool)
  libdnnl-dev                   # oneDNN: runs the blocks of large GEMMs (docs/architecture.md, GEMM)
  libopenmpi-dev openmpi-bin    # data-parallel training: mpirun -np N attnlab train (docs/distributed.md)
  python3-numpy                 # tests read checkpoints and .npy dumps with NumPy
  python3-matplotlib            # the plot scripts under /usr/bin/python3 too (the venv has its own)
  python3-venv                  # .venv/ (below)
  chromium fonts-dejavu-core    # the headless browser the `attnlab report` test opens pages in
  "${extra[@]}"
)

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"
pip_install() { "$py" -m pip install -q --disable-pip-version-check "$@"; }
if [ "$only_torch" = 1 ] && [ ! -x "$py" ]; then
  echo "setup: --torch-only needs $venv: run scripts/setup.sh --no-torch first" >&2
  exit 1
fi

missing=()
[ "$only_torch" = 1 ] || for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "$only_torch" = 1 ]; then
  :
elif [ ${#missing[@]} -eq 0 ]; then
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

# The virtual environment.
if [ ! -x "$py" ]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
# module name -> package name
declare -A pypi=([safetensors]=safetensors [numpy]=numpy [tensorboard]=tensorboard
                 [tokenizers]=tokenizers [sacrebleu]=sacrebleu [matplotlib]=matplotlib)
need=()
[ "$only_torch" = 1 ] || for mod in "${!pypi[@]}"; do
  "$py" -c "import $mod" 2>/dev/null || need+=("${pypi[$mod]}")
done
if [ "$only_torch" = 1 ]; then
  :
elif [ ${#need[@]} -eq 0 ]; then
  echo "setup: .venv has ${!pypi[*]}"
else
  echo "setup: installing ${need[*]} into .venv"
  pip_install "${need[@]}"
fi

# torch for the CPU: the wheel without its CUDA dependency tree (several GB), plus the four
# shared libraries `import torch` loads and its pure-Python dependencies, at the versions the
# wheel's own metadata pins.
if [ "$want_torch" = 1 ]; then
  if "$py" -c 'import torch' 2>/dev/null; then
    echo "setup: .venv has torch $("$py" -c 'import torch; print(torch.__version__)')"
  else
    echo "setup: installing torch (CPU use, without the CUDA stack) into .venv"
    pip_install --no-deps 'torch>=2.4,<3'
    mapfile -t deps < <("$py" - <<'PY'
import importlib.metadata as m, re
keep = {"nvidia-cusparselt-cu13", "nvidia-nccl-cu13", "nvidia-nvshmem-cu13", "filelock",
        "typing-extensions", "sympy", "networkx", "jinja2", "fsspec"}
for r in m.requires("torch") or []:
    spec = r.split(";")[0].strip()
    name = re.split(r"[<>=~!\[ ]", spec)[0].lower()
    if name in keep:
        print(spec)
for extra in ("nvidia-cufile", "mpmath", "markupsafe"):
    print(extra)
PY
)
    pip_install --no-deps "${deps[@]}"
    "$py" -c 'import torch' || { echo "setup: torch installed but does not import" >&2; exit 1; }
  fi
fi
echo "setup: done"
