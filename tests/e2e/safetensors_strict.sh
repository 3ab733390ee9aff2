#!/usr/bin/env bash
# Malformed safetensors files: attnlab rejects (exit 2, one `error:` line) at least every file
# that the reference safetensors package rejects (tests/python/test_safetensors_strict.py prints
# the table). Runs .venv/bin/python (scripts/setup.sh) or ATTNLAB_PYTHON; exits 77 (skipped)
# without them, a failure under CI (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/venv.sh"
venv_python "$2" safetensors numpy
exec "$py" "$2/tests/python/test_safetensors_strict.py" "$1" "$2"
