#!/usr/bin/env bash
# Checkpoints load with Python's safetensors.numpy.load_file, with the names and shapes of
# docs/checkpoint-format.md (tests/python/test_checkpoint_numpy.py). The interpreter is the
# repository's .venv/bin/python (scripts/setup.sh installs safetensors and numpy there);
# ATTNLAB_PYTHON picks another. Exits 77 (skipped) only when neither is there or the safetensors
# module is missing. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
py="${ATTNLAB_PYTHON:-$2/.venv/bin/python}"
if [ ! -x "$py" ]; then
  echo "SKIP: $py not found (run scripts/setup.sh to create .venv with safetensors)"
  exit 77
fi
exec "$py" "$2/tests/python/test_checkpoint_numpy.py" "$1" "$2" --part safetensors
