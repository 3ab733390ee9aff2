#!/usr/bin/env bash
# The demo: install, build, train configs/default.yaml (an encoder-decoder learns to turn dates
# written by people into ISO dates, about 40 seconds of training on 2 cores), then show what it
# learned and where its decoder looks in the input, and write the run's HTML report (its path last).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh --target attnlab
run=runs/demo
./build/attnlab train configs/default.yaml --run-dir "$run" --overwrite  # the demo's own run: a rerun replaces it
ckpt="$run/checkpoints/$(cat "$run/checkpoints/latest")"
echo
echo "The trained model on dates it has not been shown (greedy decoding):"
today=$(date +%Y-%m-%d)
read -r y m d <<<"$(date -d "$today" '+%Y %-m %-d')"
if [ "$y" -lt 1950 ] || [ "$y" -gt 2049 ]; then y=1987 m=3 d=3; fi  # the task's dates are 1950-2049
long=$(date -d "$y-$m-$d" '+%A %-d %B %Y' | tr '[:upper:]' '[:lower:]')
short=$(date -d "$y-$m-$d" '+%-m/%-d/%y')
words=$(date -d "$y-$m-$d" '+%B %-d, %Y' | tr '[:upper:]' '[:lower:]')
dots=$(date -d "$y-$m-$d" '+%d.%m.%Y')
./build/attnlab sample "$ckpt" --input "$long" --input "$short" --input "$words" --input "$dots" | sed 's/^/  /'
echo
./build/attnlab inspect "$ckpt" --input "$long" --dump "$run/attention" >/dev/null
if .venv/bin/python -c "import matplotlib, numpy" 2>/dev/null; then
  png=$(.venv/bin/python scripts/plot_attention.py "$run/attention" --layers 1 -o "$run/cross_attention.png")
  echo "Where the decoder looks while it writes the answer (cross-attention, layer 1): $png"
fi
echo "Checkpoint: $ckpt    Metrics: $run/metrics.jsonl"
echo "More: ./build/attnlab eval $ckpt --split test    ./build/attnlab sample $ckpt --input \"march 3, 1987\""
# the run on one page: curves, evaluations, decoded dates and the attention maps (also as they formed)
./build/attnlab report "$run" >/dev/null
echo "Report (one HTML file, open it in a browser): $(readlink -f "$run/report.html")"
