#!/usr/bin/env bash
# The TensorBoard events file and attention_history.jsonl of a run, read with TensorBoard's own
# EventAccumulator (tests/python/test_tensorboard.py), before and after a resume. Needs the
# repository's .venv with tensorboard and numpy (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" tensorboard numpy PIL
corpus_or_standin 400
"$py" "$src/tests/python/test_tensorboard.py" "$bin" "$src" "$corpus"
