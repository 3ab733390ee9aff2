#!/usr/bin/env bash
# scripts/assemble_experiments.sh: a results table replaces the block between its markers (and
# only that block), running it twice changes nothing, a document without markers gets the block
# appended under one "Generated results tables" heading, and a missing file is an error.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
src=$2
tool=$src/scripts/assemble_experiments.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$tmp/results.md" <<'MD'
# eX

| a | b |
|---|---:|
| 1 | 2.5 |

## Summary

| | value |
|---|---:|
| slope | 1.9 |

![plot](eX_1_b.png)
MD
cat >"$tmp/doc.md" <<'MD'
# Experiments
## EX
text before
<!-- results:eX -->
old table
<!-- /results:eX -->
text after
<!-- results:eY -->
other
<!-- /results:eY -->
MD
"$tool" "$tmp/doc.md" eX "$tmp/results.md" >/dev/null
grep -q "^| 1 | 2.5 |$" "$tmp/doc.md" || fail "table not inserted"
grep -q "old table" "$tmp/doc.md" && fail "old block kept"
grep -q "^#### Summary$" "$tmp/doc.md" || fail "sections not demoted"
grep -q "^# eX" "$tmp/doc.md" && fail "title kept"
grep -q "eX_1_b.png" "$tmp/doc.md" && fail "image link kept"
grep -q "^text before$" "$tmp/doc.md" && grep -q "^text after$" "$tmp/doc.md" || fail "text around the block lost"
grep -q "^other$" "$tmp/doc.md" || fail "another experiment's block changed"
cp "$tmp/doc.md" "$tmp/once.md"
"$tool" "$tmp/doc.md" eX "$tmp/results.md" >/dev/null
cmp -s "$tmp/doc.md" "$tmp/once.md" || fail "a second run changed the document"

printf '# Experiments\n' >"$tmp/bare.md"
"$tool" "$tmp/bare.md" eX "$tmp/results.md" >/dev/null
"$tool" "$tmp/bare.md" eZ "$tmp/results.md" >/dev/null
[ "$(grep -c '^## Generated results tables$' "$tmp/bare.md")" -eq 1 ] || fail "heading not added exactly once"
grep -q "^<!-- /results:eZ -->$" "$tmp/bare.md" || fail "block not appended"

if "$tool" "$tmp/doc.md" eX "$tmp/missing.md" 2>"$tmp/err"; then fail "a missing results file was accepted"; fi
grep -q "no such file" "$tmp/err" || fail "unclear error: $(cat "$tmp/err")"
echo "ok"
