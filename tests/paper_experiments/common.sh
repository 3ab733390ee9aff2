# Shared by the `experiments` tier (ctest -L experiments): small versions of the paper
# experiments with loose thresholds, so that a regression in learning fails a test.
# Sourced with bin=ATTNLAB_BINARY and src=SOURCE_DIR set.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# val_at RUN_DIR STEP COLUMN: the value of COLUMN in RUN_DIR/metrics.csv's val row at STEP.
# Assign it (x=$(val_at ...)) rather than pass it inline, so that a missing row stops the script.
val_at() {
  awk -F, -v step="$2" -v col="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    $1 == step && $2 == "val" { v = $c }
    END { if (c == 0 || v == "") exit 1; print v }' "$1/metrics.csv" \
    || fail "no val $3 at step $2 in $1/metrics.csv"
}

# at_least NAME VALUE MIN / at_most NAME VALUE MAX: print the figure and check it.
at_least() { echo "$1 = $2 (need >= $3)"; awk -v v="$2" -v m="$3" 'BEGIN { exit !(v >= m) }' || fail "$1 = $2 < $3"; }
at_most() { echo "$1 = $2 (need <= $3)"; awk -v v="$2" -v m="$3" 'BEGIN { exit !(v <= m) }' || fail "$1 = $2 > $3"; }
