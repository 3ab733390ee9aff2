#!/usr/bin/env bash
# scripts/torch_model.py (attnlab checkpoints as torch.nn.Modules) reproduces `attnlab inspect
# --dump` logits and attention maps for every model kind and position scheme of the
# scaled_dot_product family, and for differential self-attention (tests/python/test_torch_model.py). Needs torch in .venv
# (scripts/setup.sh) or ATTNLAB_PYTHON; exits 77 (skipped) without it, a failure under CI
# (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" torch numpy
corpus_or_standin 400
OMP_NUM_THREADS=1 "$py" "$src/tests/python/test_torch_model.py" "$bin" "$src" "$corpus"
