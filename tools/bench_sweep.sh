#!/usr/bin/env bash
# Size vs perplexity sweep of issue 5 on stories260K (docs/benchmarks.md, "Double compression").
# TinyStories is split: the first 80,000 bytes calibrate, the next 300,000 bytes evaluate.
# Usage: tools/bench_sweep.sh [OUT_DIR] [extra dcq bench sweep flags, e.g. --chunks 200]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${DCQ_TEST_DATA:-$here/../shared/data}
dcq=${DCQ:-$here/build/tools/dcq/dcq}
out=${1:-$here/build/sweep-stories260K}
shift || true
mkdir -p "$out"
text=$data/text/tinystories_val.txt
head -c 80000 "$text" > "$out/calib.txt"
head -c 380000 "$text" | tail -c 300000 > "$out/eval.txt"
"$dcq" bench sweep "$data/models/stories260K/stories260K-F32.gguf" --calib "$out/calib.txt" \
  --eval "$out/eval.txt" -c 256 -o "$out" --threads 2 "$@"
