#!/usr/bin/env bash
# Quantization speed, dcq against llama-quantize in the same run (docs/benchmarks.md).
# Usage: tools/bench_quant.sh [build/tools/dcq/dcq] — writes a Markdown table on stdout.
# Input: a stories110M-shape F32 synth (134M weights). Both tools read the same file, write a
# GGUF, use 2 threads, --pure; each timing is the best of 3 whole-command runs.
set -euo pipefail
dcq=${1:-build/tools/dcq/dcq}
lq=../shared/peers/llama.cpp/bin/llama-quantize
work=${BENCH_DIR:-/tmp/dcq-bench-quant}
mkdir -p "$work"
src=$work/s110-F32.gguf
[ -f "$src" ] || $dcq synth --preset stories110M --type F32 -o "$src" -q
best() {  # best wall time of 3 runs of "$@", in seconds
  local b=999999
  for _ in 1 2 3; do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    b=$(awk -v a="$t0" -v c="$t1" -v b="$b" 'BEGIN { d = c - a; print (d < b) ? d : b }')
  done
  echo "$b"
}
echo "| type | dcq convert (s) | llama-quantize (s) | dcq speed-up | identical bytes |"
echo "|---|---:|---:|---:|---|"
for t in Q4_0 Q8_0 Q4_K; do
  d=$(best $dcq convert "$src" --type "$t" --pure --threads 2 -o "$work/dcq-$t.gguf" --force -q)
  if [ -x "$lq" ]; then
    l=$(best $lq --pure "$src" "$work/lq-$t.gguf" "$t" 2)
    same=$(cmp -s "$work/dcq-$t.gguf" "$work/lq-$t.gguf" && echo yes || echo no)
    printf "| %s | %.2f | %.2f | %.2fx | %s |\n" "$t" "$d" "$l" "$(awk -v l="$l" -v d="$d" 'BEGIN { print l / d }')" "$same"
  else
    printf "| %s | %.2f | (llama-quantize absent) | | |\n" "$t" "$d"
  fi
done
