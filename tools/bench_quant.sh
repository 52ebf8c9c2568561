#!/usr/bin/env bash
# Quantization speed, dcq against llama-quantize in the same run (docs/benchmarks.md,
# docs/quant_speed.md).
# Usage: tools/bench_quant.sh [build/tools/dcq/dcq] — writes a Markdown table on stdout.
# Input: a stories110M-shape F32 synth (134M weights). Both tools read the same file, write a
# GGUF and use 2 threads; plain types are quantized --pure, mixes (*_M) with their default
# per-tensor choice. Each timing is the best of $REPEATS (default 3) whole-command runs, as wall
# time and as CPU time (user + sys, steadier on a shared machine); the spread column is the
# slowest / fastest wall time of dcq's runs. Types: $TYPES (default below).
set -euo pipefail
dcq=${1:-build/tools/dcq/dcq}
lq=${LLAMA_QUANTIZE:-../shared/peers/llama.cpp/bin/llama-quantize}
work=${BENCH_DIR:-/tmp/dcq-bench-quant}
types=${TYPES:-Q4_0 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M}
repeats=${REPEATS:-3}
mkdir -p "$work"
src=$work/s110-F32.gguf
[ -f "$src" ] || $dcq synth --preset stories110M --type F32 -o "$src" -q
# measure CMD...: prints "best_wall best_cpu worst_wall" over $repeats runs.
measure() {
  local bw=999999 bc=999999 ww=0 line
  for ((r = 0; r < repeats; ++r)); do
    line=$({ TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 | tail -1)
    read -r bw bc ww < <(awk -v l="$line" -v bw="$bw" -v bc="$bc" -v ww="$ww" 'BEGIN {
      split(l, t, " "); w = t[1]; c = t[2] + t[3];
      print (w < bw ? w : bw), (c < bc ? c : bc), (w > ww ? w : ww) }')
  done
  echo "$bw $bc $ww"
}
echo "| type | dcq wall s | llama-quantize wall s | speed-up (wall) | dcq CPU s | llama-quantize CPU s | speed-up (CPU) | dcq spread | identical bytes |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for t in $types; do
  pure=(--pure)
  case $t in *_M) pure=() ;; esac
  read -r dw dc dww < <(measure $dcq convert "$src" --type "$t" "${pure[@]}" --threads 2 -o "$work/dcq-$t.gguf" --force -q)
  spread=$(awk -v a="$dw" -v b="$dww" 'BEGIN { printf "%.2f", b / a }')
  if [ -x "$lq" ]; then
    read -r lw lc _ < <(measure $lq "${pure[@]}" "$src" "$work/lq-$t.gguf" "$t" 2)
    same=$(cmp -s "$work/dcq-$t.gguf" "$work/lq-$t.gguf" && echo yes || echo no)
    printf "| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %.2fx | %s | %s |\n" "$t" "$dw" "$lw" \
      "$(awk -v l="$lw" -v d="$dw" 'BEGIN { print l / d }')" "$dc" "$lc" \
      "$(awk -v l="$lc" -v d="$dc" 'BEGIN { print l / d }')" "$spread" "$same"
  else
    printf "| %s | %.2f | (llama-quantize absent) | | %.2f | | | %s | |\n" "$t" "$dw" "$dc" "$spread"
  fi
done
