#!/usr/bin/env bash
# Engine speed, dcq against llama-bench in the same run (docs/benchmarks.md).
# Usage: tools/bench_engine.sh [build/tools/dcq/dcq] [types...] — Markdown table on stdout.
# Model: stories110M-shape synth (dcq synth --preset stories110M --type T); prompt 64 tokens,
# generation 32 tokens, 2 threads, as `llama-bench -p 64 -n 32 -t 2`.
set -euo pipefail
dcq=${1:-build/tools/dcq/dcq}
shift || true
types=${*:-Q4_0 Q8_0}
lb=../shared/peers/llama.cpp/bin/llama-bench
work=${BENCH_DIR:-/tmp/dcq-bench-engine}
mkdir -p "$work"
# 64 prompt tokens: the synth vocabulary maps each " <letters>" word to one token.
prompt=$(python3 -c "print(' '.join(chr(97 + i % 26) for i in range(63)))")
echo "| type | dcq prompt tok/s | llama.cpp prompt tok/s | dcq gen tok/s | llama.cpp gen tok/s |"
echo "|---|---:|---:|---:|---:|"
for t in $types; do
  m=$work/s110-$t.gguf
  [ -f "$m" ] || $dcq synth --preset stories110M --type "$t" -o "$m" -q >/dev/null
  j=$($dcq run "$m" -p "$prompt" -n 32 --temp 0 --threads 2 --json 2>/dev/null)
  dp=$(echo "$j" | python3 -c "import json,sys; print('%.1f' % json.load(sys.stdin)['prompt_tokens_per_s'])")
  dg=$(echo "$j" | python3 -c "import json,sys; print('%.1f' % json.load(sys.stdin)['gen_tokens_per_s'])")
  if [ -x "$lb" ]; then
    lj=$($lb -m "$m" -p 64 -n 32 -t 2 -o json 2>/dev/null)
    lp=$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print('%.1f' % [x for x in r if x['n_prompt']>0][0]['avg_ts'])")
    lg=$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print('%.1f' % [x for x in r if x['n_gen']>0][0]['avg_ts'])")
  else
    lp="-"; lg="-"
  fi
  echo "| $t | $dp | $lp | $dg | $lg |"
done
