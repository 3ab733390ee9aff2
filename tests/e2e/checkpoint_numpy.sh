#!/usr/bin/env bash
# Checkpoints and training-state files parsed with plain NumPy + json match
# docs/checkpoint-format.md (tests/python/test_checkpoint_numpy.py). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
exec /usr/bin/python3 "$2/tests/python/test_checkpoint_numpy.py" "$1" "$2" --part numpy
