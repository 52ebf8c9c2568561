#!/usr/bin/env bash
# Engine speed, dcq against llama-bench in the same run (docs/kernels.md, docs/benchmarks.md).
# Usage: tools/bench_engine.sh [build/tools/dcq/dcq] [types...] — Markdown table on stdout.
# Model: stories110M-shape synth (dcq synth --preset stories110M --type T; a llama.cpp mix such
# as Q4_K_M is synthesized as F32 and then `dcq convert --type T`); prompt 64 tokens,
# generation 32 tokens, 2 threads, as `llama-bench -p 64 -n 32 -t 2`.
# Environment: REPS (default 3) runs of each tool, interleaved, reported as best (spread =
# (best - worst) / best); THREADS (default 2); DCQ_ISA forces dcq's kernel path; DCQ_REPACK=0
# keeps Q8_0/Q4_0 weights in ggml's plain layout (the engine before weight repacking); BENCH_DIR;
# BEFORE=<other dcq binary> adds a row per type for it, run interleaved in the same loop.
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
# CPU=1: CPU time per token instead (robust when the machine is shared: time-sharing does not
# change it), 1 thread, dcq and llama.cpp in the same run, best of REPS (spread). Prompt ms/token:
# dcq `run -p <64 tokens> -n 1` minus `run -p a -n 1` over 63 tokens; llama-bench `-p 64 -n 0 -r 5`
# minus `-r 1` (4 prompts). Generation: `-n 144` minus `-n 16` over 128 tokens, for both.
# BEFORE=<other dcq binary> adds its columns (e.g. main's build).
if [ "${CPU:-0}" = 1 ]; then
  cpu() { /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}'; }
  msb() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print('%.2f (%.0f %%)' % (min(v), 100*(max(v)-min(v))/min(v)))" "$@"; }
  mr() { python3 -c "import sys; a=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]; print('%.2f' % (min(b) / min(a)))" "$1" "$2"; }
  bins="$dcq${BEFORE:+ $BEFORE}"
  echo "| type | binary | dcq prompt ms/tok | llama.cpp prompt ms/tok | ratio | dcq gen ms/tok | llama.cpp gen ms/tok | ratio |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for t in $types; do
    m=$work/s110-$t.gguf
    if [ ! -f "$m" ]; then
      if ! $dcq synth --preset stories110M --type "$t" -o "$m" -q >/dev/null 2>&1; then
        f32=$work/s110-F32.gguf
        [ -f "$f32" ] || $dcq synth --preset stories110M --type F32 -o "$f32" -q >/dev/null
        $dcq convert "$f32" --type "$t" -o "$m" -q >/dev/null
      fi
    fi
    lp=""; lg=""
    for ((r = 0; r < reps; ++r)); do
      a=$(cpu "$lb" -m "$m" -p 64 -n 0 -t 1 -r 5); c=$(cpu "$lb" -m "$m" -p 64 -n 0 -t 1 -r 1)
      lp="$lp $(python3 -c "print(($a - $c) / 256 * 1000)")"
      a=$(cpu "$lb" -m "$m" -p 0 -n 144 -t 1 -r 1); c=$(cpu "$lb" -m "$m" -p 0 -n 16 -t 1 -r 1)
      lg="$lg $(python3 -c "print(($a - $c) / 128 * 1000)")"
    done
    for d in $bins; do
      dp=""; dg=""
      for ((r = 0; r < reps; ++r)); do
        a=$(cpu "$d" run "$m" -p "$prompt" -n 1 --temp 0 --threads 1 -q); c=$(cpu "$d" run "$m" -p a -n 1 --temp 0 --threads 1 -q)
        dp="$dp $(python3 -c "print(($a - $c) / 63 * 1000)")"
        a=$(cpu "$d" run "$m" -p a -n 144 --temp 0 --threads 1 -q); c=$(cpu "$d" run "$m" -p a -n 16 --temp 0 --threads 1 -q)
        dg="$dg $(python3 -c "print(($a - $c) / 128 * 1000)")"
      done
      # shellcheck disable=SC2086
      echo "| $t | $d | $(msb $dp) | $(msb $lp) | $(mr "$dp" "$lp") | $(msb $dg) | $(msb $lg) | $(mr "$dg" "$lg") |"
    done
  done
  exit 0
fi
# Memory read bandwidth in the same run (the physical limit of generation): THREADS threads each
# sum their own 256 MiB buffer (AVX2 loads, 4 accumulators), best of 5; printed as a comment line.
bw_src=$work/readbw.c
cat > "$bw_src" <<'C'
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
enum { N = 256 << 20 };
static void* run(void* p) {
  const float* a = p; __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < N / 4; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i)); s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16)); s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
  }
  float o[8]; _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return (void*)(size_t)(o[0] != 12345.f);
}
int main(int argc, char** argv) {
  int t = argc > 1 ? atoi(argv[1]) : 1; double best = 0;
  float* b[64]; pthread_t th[64];
  for (int i = 0; i < t; ++i) { b[i] = aligned_alloc(64, N); memset(b[i], 1, N); }
  for (int r = 0; r < 5; ++r) {
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < t; ++i) pthread_create(&th[i], 0, run, b[i]);
    for (int i = 0; i < t; ++i) pthread_join(th[i], 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double g = (double)N * t / ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) / 1e9;
    if (g > best) best = g;
  }
  printf("%.1f\n", best);
  return 0;
}
C
if cc -O2 -mavx2 -pthread "$bw_src" -o "$work/readbw" 2>/dev/null; then
  echo "<!-- memory read bandwidth, $threads threads: $("$work/readbw" "$threads") GB/s -->"
fi
echo "| type | dcq prompt tok/s | llama.cpp prompt tok/s | ratio | dcq gen tok/s | llama.cpp gen tok/s | ratio | dcq gen GB/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for t in $types; do
  m=$work/s110-$t.gguf
  if [ ! -f "$m" ]; then
    if ! $dcq synth --preset stories110M --type "$t" -o "$m" -q >/dev/null 2>&1; then
      f32=$work/s110-F32.gguf
      [ -f "$f32" ] || $dcq synth --preset stories110M --type F32 -o "$f32" -q >/dev/null
      $dcq convert "$f32" --type "$t" -o "$m" -q >/dev/null
    fi
  fi
  dp=(); dg=(); lp=(); lg=(); bp=(); bg=()
  for ((r = 0; r < reps; ++r)); do
    j=$($dcq run "$m" -p "$prompt" -n 32 --temp 0 --threads "$threads" --json 2>/dev/null)
    dp+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tokens_per_s'])")")
    dg+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['gen_tokens_per_s'])")")
    if [ -n "${BEFORE:-}" ]; then  # the same run with another dcq binary (e.g. main's build)
      j=$($BEFORE run "$m" -p "$prompt" -n 32 --temp 0 --threads "$threads" --json 2>/dev/null)
      bp+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tokens_per_s'])")")
      bg+=("$(echo "$j" | python3 -c "import json,sys; print(json.load(sys.stdin)['gen_tokens_per_s'])")")
    fi
    if [ -x "$lb" ]; then
      lj=$($lb -m "$m" -p 64 -n 32 -t "$threads" -r 1 -o json 2>/dev/null)
      lp+=("$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print([x for x in r if x['n_prompt']>0][0]['avg_ts'])")")
      lg+=("$(echo "$lj" | python3 -c "import json,sys; r=json.load(sys.stdin); print([x for x in r if x['n_gen']>0][0]['avg_ts'])")")
    fi
  done
  # Weight bytes streamed per generated token: every tensor but the embedding table (one row is
  # read per token; the 110M synth has a separate output matrix).
  wbytes=$($dcq inspect "$m" --json 2>/dev/null | python3 -c "
import json, sys
j = json.load(sys.stdin)
print(sum(t.get('bytes', 0) for t in j.get('tensors', []) if t.get('name') != 'token_embd.weight'))" 2>/dev/null || echo 0)
  gbs=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) * float(sys.argv[2]) / 1e9))" "$(best "${dg[@]}")" "${wbytes:-0}")
  if [ ${#lp[@]} -gt 0 ]; then
    echo "| $t | $(stats "${dp[@]}") | $(stats "${lp[@]}") | $(ratio "$(best "${dp[@]}")" "${lp[@]}") |" \
         "$(stats "${dg[@]}") | $(stats "${lg[@]}") | $(ratio "$(best "${dg[@]}")" "${lg[@]}") | $gbs |"
    if [ ${#bp[@]} -gt 0 ]; then
      echo "| $t (BEFORE) | $(stats "${bp[@]}") | $(stats "${lp[@]}") | $(ratio "$(best "${bp[@]}")" "${lp[@]}") |" \
           "$(stats "${bg[@]}") | $(stats "${lg[@]}") | $(ratio "$(best "${bg[@]}")" "${lg[@]}") | - |"
    fi
  else
    echo "| $t | $(stats "${dp[@]}") | - | - | $(stats "${dg[@]}") | - | - | $gbs |"
  fi
done
