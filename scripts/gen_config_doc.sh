#!/usr/bin/env bash
# Regenerates the key table of docs/config.md (everything after the "<!-- keys -->" line)
# from `attnlab config keys`, the schema in src/config/config.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/attnlab}
doc=docs/config.md
head=$(sed '/^<!-- keys -->$/q' "$doc")
{ printf '%s\n\n' "$head"; "$bin" config keys; } > "$doc.tmp"
mv "$doc.tmp" "$doc"
