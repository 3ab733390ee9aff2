#!/usr/bin/env bash
# Byte-level BPE against the Hugging Face `tokenizers` package (tests/python/test_bpe_tokenizers.py):
# a tokenizer trained by `attnlab tokenizer train` gives the same ids in `tokenizers` on the whole
# corpus, and one trained by `tokenizers` gives the same ids in attnlab. The corpus is
# tinyshakespeare ($ATTNLAB_DATA_DIR or SOURCE_DIR/data/) or a generated stand-in. Needs the
# repository's .venv with tokenizers (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" tokenizers
corpus_or_standin 3000
RAYON_NUM_THREADS=1 "$py" "$src/tests/python/test_bpe_tokenizers.py" "$bin" "$corpus" "$tmp"
