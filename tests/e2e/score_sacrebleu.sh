#!/usr/bin/env bash
# `attnlab score` (corpus BLEU and chrF) agrees with the sacrebleu package to 0.01 on tricky lines
# and on seeded random corpora (tests/python/test_score_sacrebleu.py). Needs sacrebleu in .venv
# (scripts/setup.sh) or ATTNLAB_PYTHON; exits 77 (skipped) without it, a failure under CI
# (tests/e2e/lib/venv.sh). Also: unequal line counts and a missing file are clear errors.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" sacrebleu
"$py" "$src/tests/python/test_score_sacrebleu.py" "$bin" "$tmp"

printf 'a\nb\n' > two.txt
printf 'a\n' > one.txt
set +e
"$bin" score --hyp two.txt --ref one.txt > err.out 2>&1; rc=$?
set -e
[ "$rc" = 2 ] || fail "unequal line counts: exit $rc, expected 2"
grep -q "^error: --hyp 'two.txt' has 2 lines but --ref 'one.txt' has 1" err.out || fail "message: $(cat err.out)"
set +e
"$bin" score --hyp two.txt --ref missing.txt > err.out 2>&1; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "^error: --ref 'missing.txt': cannot be read" err.out || fail "missing file: $rc $(cat err.out)"
echo "score: OK"
