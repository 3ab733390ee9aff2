# Sourced by the end-to-end scripts in tests/e2e/ (this folder is not globbed as tests):
#   source "$(dirname "$0")/lib/common.sh" "$@"
# sets bin (the attnlab binary) and src (the source tree) as absolute paths from the script's
# arguments ATTNLAB_BINARY SOURCE_DIR, makes a temporary directory $tmp (removed on exit) and
# enters it, and defines fail and expect_error. Scripts turn on `set -euo pipefail` themselves.
bin=$(readlink -f "$1")
src=$(readlink -f "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$tmp"

# expect_error PATTERN CMD...: CMD exits 2 with an error line matching PATTERN (a basic regex,
# so parentheses are literal); sets out to CMD's output
expect_error() {
  local pat=$1; shift
  set +e
  out=$("$@" 2>&1); rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "expected exit 2 from '$*', got $rc: $out"
  grep -q "error:.*$pat" <<<"$out" || fail "expected an error matching '$pat' from '$*': $out"
}

# corpus_or_standin LINES: sets corpus to $ATTNLAB_DATA_DIR/tinyshakespeare.txt or
# $src/data/tinyshakespeare.txt; when neither exists, to a generated text of LINES lines (fixed
# seed). ATTNLAB_DATA_DIR set without the file fails.
corpus_or_standin() {
  corpus=${ATTNLAB_DATA_DIR:-$src/data}/tinyshakespeare.txt
  [ -f "$corpus" ] && return 0
  [ -z "${ATTNLAB_DATA_DIR:-}" ] || fail "ATTNLAB_DATA_DIR is set but $corpus is not a file"
  corpus=$tmp/standin.txt
  /usr/bin/python3 - "$1" >"$corpus" <<'PY'
import random, sys
r = random.Random(7)
w = 'the of and to a in that is was he for it with as his on be at by i this had not are but from'.split()
print('\n'.join(' '.join(r.choice(w) for _ in range(r.randint(3, 12))) for _ in range(int(sys.argv[1]))))
PY
  echo "(the corpus is not here: a generated text stands in for tinyshakespeare.txt)"
}
