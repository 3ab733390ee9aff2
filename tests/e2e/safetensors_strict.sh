#!/usr/bin/env bash
# Malformed safetensors files: attnlab rejects (exit 2, one `error:` line) at least every file
# that the reference safetensors package rejects (tests/python/test_safetensors_strict.py prints
# the table). Runs .venv/bin/python (scripts/setup.sh) or ATTNLAB_PYTHON; exits 77 (skipped)
# when neither exists. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
py="${ATTNLAB_PYTHON:-$2/.venv/bin/python}"
if [ ! -x "$py" ]; then
  echo "SKIP: $py not found (run scripts/setup.sh to create .venv with safetensors)"
  exit 77
fi
exec "$py" "$2/tests/python/test_safetensors_strict.py" "$1" "$2"
