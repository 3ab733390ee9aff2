#!/usr/bin/env bash
# Checkpoints load with Python's safetensors.numpy.load_file, with the names and shapes of
# docs/checkpoint-format.md (tests/python/test_checkpoint_numpy.py). Exits 77 (skipped) when
# the safetensors module is missing. ATTNLAB_PYTHON picks another interpreter (a venv with
# safetensors, say); default /usr/bin/python3. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
exec "${ATTNLAB_PYTHON:-/usr/bin/python3}" "$2/tests/python/test_checkpoint_numpy.py" "$1" "$2" --part safetensors
