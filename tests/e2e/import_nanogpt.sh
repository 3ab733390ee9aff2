#!/usr/bin/env bash
# scripts/import_nanogpt.py: a ckpt.pt in nanoGPT's layout (written by the test from its own small
# GPT) imports into a checkpoint whose `attnlab inspect --dump` logits and `attnlab sample` greedy
# output match that GPT (tests/python/test_import_nanogpt.py). Needs torch in .venv
# (scripts/setup.sh) or ATTNLAB_PYTHON; exits 77 (skipped) without it, a failure under CI
# (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" torch numpy
OMP_NUM_THREADS=1 "$py" "$src/tests/python/test_import_nanogpt.py" "$bin" "$src"
