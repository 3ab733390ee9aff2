#!/usr/bin/env bash
# Checkpoints load with Python's safetensors.numpy.load_file, with the names and shapes of
# docs/checkpoint-format.md (tests/python/test_checkpoint_numpy.py). The interpreter is the
# repository's .venv/bin/python (scripts/setup.sh installs safetensors and numpy there);
# ATTNLAB_PYTHON picks another. Without them: exit 77 (skipped), or a failure
# under CI (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
venv_python "$2" safetensors numpy
exec "$py" "$2/tests/python/test_checkpoint_numpy.py" "$1" "$2" --part safetensors
