#!/usr/bin/env bash
# Runs every experiment file under configs/experiments/ (the e*.yaml files with an `experiment:`
# key; the others are the base configs they name), one after the other, then puts each one's
# results table into docs/experiments.md (scripts/assemble_experiments.sh: the block between
# `<!-- results:NAME -->` markers) and says where the full results are. Finished cells are
# skipped, so running it again continues where it stopped. ONLY=e1,e5 runs just those files.
# Not run in CI: the paper experiments take minutes each (docs/experiments.md).
#   scripts/reproduce_all.sh [ATTNLAB_BINARY] [extra `experiment run` options, e.g. --jobs 2]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/build/attnlab
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then bin=$1; shift; fi
[ -x "$bin" ] || { echo "error: $bin is not built (cmake --build build --target attnlab)" >&2; exit 2; }
cd "$root"
ran=()
for f in configs/experiments/e*.yaml; do
  grep -q '^experiment:' "$f" || continue
  if [ -n "${ONLY:-}" ]; then
    case ",$ONLY," in *",$(basename "$f" .yaml),"*) ;; *) continue ;; esac
  fi
  echo "== $f"
  "$bin" experiment run "$f" "$@"
  ran+=("$f")
done
echo
echo "results (results.md, results.csv and plots in each directory):"
for f in "${ran[@]}"; do
  name=$(sed -n 's/^experiment:[[:space:]]*//p' "$f" | head -1)
  echo "  $f -> runs/experiments/$name/results.md"
  scripts/assemble_experiments.sh docs/experiments.md "$name" "runs/experiments/$name/results.md"
done
