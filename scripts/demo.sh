#!/usr/bin/env bash
# The demo: install, build, train configs/default.yaml (a small decoder learns
# to reverse strings, about a minute on 2 cores), then show what it learned.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --target attnlab
run=runs/demo
./build/attnlab train configs/default.yaml --run-dir "$run"
ckpt="$run/checkpoints/$(cat "$run/checkpoints/latest")"
echo
echo "The trained model on a few prompts (greedy decoding):"
for prompt in "abcdefgh=" "hhgg=" "bead=" "gafcedb="; do
  printf '  %-10s -> ' "$prompt"
  ./build/attnlab sample "$ckpt" --prompt "$prompt" --temperature 0 --max-new-tokens 9 | tail -n 1 | cut -d= -f2 | sed 's/[.].*/./'
done
echo
echo "Checkpoint: $ckpt    Metrics: $run/metrics.jsonl"
