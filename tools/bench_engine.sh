#!/usr/bin/env bash
# Engine speed, dcq against llama-bench in the same run (docs/kernels.md, docs/benchmarks.md).
# Usage: tools/bench_engine.sh [build/tools/dcq/dcq] [types...] — Markdown table on stdout.
# Model: stories110M-shape synth (dcq synth --preset stories110M --type T; a llama.cpp mix such
# as Q4_K_M is synthesized as F32 and then `dcq convert --type T`); prompt 64 tokens,
# generation 32 tokens, 2 threads, as `llama-bench -p 64 -n 32 -t 2`.
# Environment: REPS (default 3) runs of each tool, interleaved, reported as best (spread =
# (best - worst) / best); THREADS (default 2); DCQ_ISA forces dcq's kernel path; DCQ_REPACK=0
# keeps Q8_0/Q4_0 weights in ggml's plain layout (the engine before weight repacking); BENCH_DIR.
set -euo pipefail
dcq=${1:-build/tools/dcq/dcq}
shift || true
types=${*:-Q4_0 Q8_0}
reps=${REPS:-3}
threads=${THREADS:-2}
lb=${LLAMA_BENCH:-$(dirname "$0")/../../shared/peers/llama.cpp/bin/llama-bench}
[ -x "$lb" ] || lb=/work/shared/peers/llama.cpp/bin/llama-bench
work=${BENCH_DIR:-/tmp/dcq-bench-engine}
mkdir -p "$work"
# 64 prompt tokens: the synth vocabulary maps each " <letters>" word to one token.
prompt=$(python3 -c "print(' '.join(chr(97 + i % 26) for i in range(63)))")
# best and spread of a list of numbers
stats() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; b=max(v); print('%.0f (%.0f %%)' % (b, 100*(b-min(v))/b))" "$@"; }
ratio() { python3 -c "import sys; v=[float(x) for x in sys.argv[2:]]; print('%.2f' % (float(sys.argv[1]) / max(v)))" "$@"; }
best() { python3 -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }
echo "| type | dcq prompt tok/s | llama.cpp prompt tok/s | ratio | dcq gen tok/s | llama.cpp gen tok/s | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in $types; do
  m=$work/s110-$t.gguf
  if [ ! -f "$m" ]; then
    if ! $dcq synth --preset stories110M --type "$t" -o "$m" -q >/dev/null 2>&1; then
      f32=$work/s110-F32.gguf
      [ -f "$f32" ] || $dcq synth --preset stories110M --type F32 -o "$f32" -q >/dev/null
      $dcq convert "$f32" --type "$t" -o "$m" -q >/dev/null
    fi
  fi
  dp=(); dg=(); lp=(); lg=()
  for ((r = 0; r < reps; ++r)); do
    j=$($dcq run "$m" -p "$prompt" -n 32 --temp 0 --threads "$threads" --json 2>/dev/null)
    dp+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tokens_per_s'])")")
    dg+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['gen_tokens_per_s'])")")
    if [ -x "$lb" ]; then
      lj=$($lb -m "$m" -p 64 -n 32 -t "$threads" -r 1 -o json 2>/dev/null)
      lp+=("$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print([x for x in r if x['n_prompt']>0][0]['avg_ts'])")")
      lg+=("$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print([x for x in r if x['n_gen']>0][0]['avg_ts'])")")
    fi
  done
  if [ ${#lp[@]} -gt 0 ]; then
    echo "| $t | $(stats "${dp[@]}") | $(stats "${lp[@]}") | $(ratio "$(best "${dp[@]}")" "${lp[@]}") |" \
         "$(stats "${dg[@]}") | $(stats "${lg[@]}") | $(ratio "$(best "${dg[@]}")" "${lg[@]}") |"
  else
    echo "| $t | $(stats "${dp[@]}") | - | - | $(stats "${dg[@]}") | - | - |"
  fi
done
