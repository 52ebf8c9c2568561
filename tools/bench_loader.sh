#!/usr/bin/env bash
# Loader benchmark (docs/benchmarks.md, "Running from a .dcq under a memory budget"): tokens/s and peak RSS against the memory budget on the
# stories110M-shape synth Q8_0 and Q4_0 (lossless .dcq), their raw repacks, and the simulated slow
# storage comparison (.dcq against the same weights stored raw, i.e. the GGUF's bytes).
# Usage: tools/bench_loader.sh BUILD_DIR WORK_DIR   (WORK_DIR receives the models, ~1.3 GB)
set -euo pipefail
build=${1:?build dir}; work=${2:?work dir}
dcq="$build/tools/dcq/dcq"
mkdir -p "$work"; cd "$work"
lscpu | grep 'Model name'; nproc; uptime
[ -f s110-f32.gguf ] || "$dcq" synth --preset stories110M --type F32 -o s110-f32.gguf -q
for t in q8:Q8_0 q4:Q4_0; do
  n=${t%%:*}; ty=${t##*:}
  [ -f "s110-$n.gguf" ] || "$dcq" convert s110-f32.gguf --type "$ty" --pure -o "s110-$n.gguf" -q
  [ -f "s110-$n.dcq" ] || "$dcq" compress --lossless "s110-$n.gguf" -o "s110-$n.dcq" -q
  # Everything raw: the GGUF's bytes through the same loader (the slow-storage baseline).
  [ -f "s110-$n-raw.dcq" ] || "$dcq" compress --lossless "s110-$n.gguf" -o "s110-$n-raw.dcq" --min-decode-speed 1000 -q
  # The plan's repack for a 50 % budget: streamed tensors raw, the rest compressed.
  "$dcq" plan "s110-$n.dcq" --mem-budget 50% --threads 2 --repack "s110-$n-r50.dcq" --force -q > /dev/null
  for f in "s110-$n.dcq" "s110-$n-r50.dcq"; do
    "$dcq" bench memory "$f" --budgets 100%,75%,60%,50%,25% --tokens 32 --repeats 3 --threads 2 --json > "bench-$f.json"
  done
  for mbs in 100 400; do
    for f in "s110-$n.dcq" "s110-$n-raw.dcq"; do
      "$dcq" bench memory "$f" --budgets 50% --tokens 8 --repeats 2 --threads 2 --read-throttle $mbs --json \
        > "throttle-$mbs-$f.json"
    done
  done
done
uptime
