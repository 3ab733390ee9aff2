#!/usr/bin/env bash
# The layout rules of docs/architecture.md hold, and the checks that enforce them can fail:
# cmake/check_layers.cmake (the include order, also run by every build), scripts/check_sizes.py
# (no file over 700 lines, no function over 150) and scripts/check_doc_paths.py (every repository
# path the docs name exists) pass on the repository, and each rejects a small tree made to break
# it. Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
layers() { cmake -DSRC="$1" -P "$src/cmake/check_layers.cmake" >"$tmp/out" 2>&1; }

layers "$src/src" || { cat "$tmp/out"; fail "src/ breaks the include order"; }
/usr/bin/python3 "$src/scripts/check_sizes.py" "$src/src" >"$tmp/out" || { cat "$tmp/out"; fail "src/ breaks the size limits"; }
/usr/bin/python3 "$src/scripts/check_doc_paths.py" "$src" >"$tmp/out" || { cat "$tmp/out"; fail "the docs name missing files"; }

# a tree that keeps the order passes
t=$tmp/ok; mkdir -p "$t/core" "$t/model" "$t/cli"
printf '#include "core/a.h"\n' >"$t/model/m.h"
printf '#include "model/m.h"\n#include "core/a.h"\n' >"$t/cli/main.cpp"
printf '#pragma once\n' >"$t/core/a.h"
layers "$t" || { cat "$tmp/out"; fail "a tree that keeps the order was rejected"; }

# an upward include, a sibling include and an unknown folder are each named
printf '#include "model/m.h"\n' >>"$t/core/a.h"
mkdir -p "$t/inspect" "$t/bench" "$t/extra"
printf '#include "inspect/i.h"\n' >"$t/bench/b.cpp"
printf '#pragma once\n' >"$t/inspect/i.h"
printf '#pragma once\n' >"$t/extra/x.h"
if layers "$t"; then fail "check_layers accepted a broken tree"; fi
grep -q "core/a.h:2: includes model/m.h, but core may not depend on model" "$tmp/out" || { cat "$tmp/out"; fail "upward include not named"; }
grep -q "bench/b.cpp:1: includes inspect/i.h, but bench may not depend on inspect" "$tmp/out" || { cat "$tmp/out"; fail "sibling include not named"; }
grep -q "src/extra/: a folder that is not a module" "$tmp/out" || { cat "$tmp/out"; fail "unknown folder not named"; }

# sizes: a 151-line function and a 701-line file are each named; 150 and 700 pass
s=$tmp/sizes; mkdir -p "$s/core"
body() { echo "int $1() {"; for ((i = 0; i < $2 - 2; i++)); do echo "  // $i"; done; echo "}"; }
{ body fits 150; body too_long 151; } >"$s/core/f.cpp"
{ for ((i = 0; i < 701; i++)); do echo "// $i"; done; } >"$s/core/big.h"
if /usr/bin/python3 "$src/scripts/check_sizes.py" "$s" >"$tmp/out"; then fail "check_sizes accepted a broken tree"; fi
grep -q "src/core/f.cpp:151: function too_long is 151 lines" "$tmp/out" || { cat "$tmp/out"; fail "long function not named"; }
grep -q "src/core/big.h: 701 lines" "$tmp/out" || { cat "$tmp/out"; fail "long file not named"; }
grep -q "fits" "$tmp/out" && { cat "$tmp/out"; fail "a 150-line function was rejected"; }
head -n 700 "$s/core/big.h" >"$s/core/big2.h"; mv "$s/core/big2.h" "$s/core/big.h"
sed -i '/^int too_long/,$d' "$s/core/f.cpp"
/usr/bin/python3 "$src/scripts/check_sizes.py" "$s" >"$tmp/out" || { cat "$tmp/out"; fail "limits exactly met were rejected"; }
# doc paths: a missing file is named; globs, {a,b} and <placeholders> match what exists
d=$tmp/docs; mkdir -p "$d/docs" "$d/src/core"
touch "$d/src/core/a.h" "$d/src/core/a.cpp"
printf 'See src/core/a.{h,cpp}, src/core/*.h and src/<module>/a.h.\n' >"$d/README.md"
printf 'ok\nThe loop is in src/train/trainer.cpp.\n' >"$d/docs/x.md"
if /usr/bin/python3 "$src/scripts/check_doc_paths.py" "$d" >"$tmp/out"; then fail "check_doc_paths accepted a stale path"; fi
grep -q "docs/x.md:2: src/train/trainer.cpp does not exist" "$tmp/out" || { cat "$tmp/out"; fail "stale path not named"; }
grep -q "README" "$tmp/out" && { cat "$tmp/out"; fail "an existing path was called stale"; }
echo "layout: ok"
