#!/usr/bin/env bash
# Structured pruning benchmark (docs/pruning.md, "Benchmarks"): on stories260K-F32, for sparsities
# of 1 and 2 blocks and 2, 3, 4 sub-layers, the held-out TinyStories and WikiText perplexity of
# the masks chosen by EvoP, ShortGPT, SLEB, random and exhaustive search; CCDS against random
# calibration sampling; search time; size and speed of the pruned models; llama.cpp loading the
# pruned files and giving the same perplexity.
#
# Usage: tools/bench_prune.sh [BUILD_DIR] [OUT_DIR]   (defaults: build, /tmp/dcq-bench-prune)
# Calibration: the first 200,000 bytes of tinystories_val.txt; held-out: the rest of it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
out=${2:-/tmp/dcq-bench-prune}
data=${DCQ_TEST_DATA:-$here/../shared/data}
peers=${LLAMA_BIN:-$here/../shared/peers/llama.cpp/bin}
dcq=$build/tools/dcq/dcq
model=$data/models/stories260K/stories260K-F32.gguf
mkdir -p "$out"
head -c 200000 "$data/text/tinystories_val.txt" > "$out/calib.txt"
tail -c +200001 "$data/text/tinystories_val.txt" > "$out/heldout.txt"
wiki=$data/text/wikitext2-test.txt
CHUNKS=${CHUNKS:-150}   # perplexity chunks of 256 tokens per text (38,400 tokens, half of them scored)
SAMPLES=${SAMPLES:-16}  # calibration samples of 128 tokens
POP=${POP:-16}; GEN=${GEN:-10}  # EvoP budget: at most POP*GEN masks (the spaces have 5..210)
THREADS=${THREADS:-2}

ppl() {  # model text -> PPL
  "$dcq" perplexity "$1" -f "$2" -c 256 --chunks "$CHUNKS" --threads "$THREADS" --json | jq -r '.ppl'
}

echo "lscpu: $(lscpu | grep 'Model name' | sed 's/.*: *//'), $(nproc) cores"
base_ts=$(ppl "$model" "$out/heldout.txt"); base_wk=$(ppl "$model" "$wiki")
printf 'unpruned\t-\t-\t-\t%s\t%s\t-\t%s\n' "$base_ts" "$base_wk" "$(stat -c %s "$model")"
printf 'units\tS\tmethod\tsampling\tppl_tinystories\tppl_wikitext\tcalib_ppl\tbytes\tmask\tsearch_s\tmasks\n'
run() {  # units S method sampling
  local units=$1 s=$2 method=$3 sampling=$4
  local f=$out/$units-$s-$method-$sampling.gguf
  local j
  j=$("$dcq" prune "$model" -o "$f" --force --structured --units "$units" --sparsity "$s" --method "$method" \
      --calib "$out/calib.txt" --calib-samples "$SAMPLES" --calib-tokens 128 --clusters 4 --calib-sampling "$sampling" \
      --population "$POP" --generations "$GEN" --seed 0 --threads "$THREADS" --json)
  echo "$j" > "${f%.gguf}.json"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$units" "$s" "$method" "$sampling" \
    "$(ppl "$f" "$out/heldout.txt")" "$(ppl "$f" "$wiki")" "$(echo "$j" | jq -r '.calib_ppl')" \
    "$(stat -c %s "$f")" "$(echo "$j" | jq -r '.mask')" "$(echo "$j" | jq -r '.search_seconds')" \
    "$(echo "$j" | jq -r '.masks_evaluated')"
}
for cfg in "blocks 1" "blocks 2" "sublayers 2" "sublayers 3" "sublayers 4"; do
  set -- $cfg
  for m in evop shortgpt sleb random exhaustive; do run "$1" "$2" "$m" ccds; done
  for m in evop exhaustive; do run "$1" "$2" "$m" random; done
done

# Search time of EvoP, sub-layers, sparsity 4 (3 repeats; best and spread).
for i in 1 2 3; do
  "$dcq" prune "$model" -o "$out/t.gguf" --force --structured --units sublayers --sparsity 4 --method evop \
    --calib "$out/calib.txt" --calib-samples "$SAMPLES" --population "$POP" --generations "$GEN" --threads "$THREADS" --json | jq -r '"evop sublayers 4: search \(.search_seconds) s, \(.masks_evaluated) masks"'
done

# Size after double compression (lossless .dcq of the pruned GGUF).
for f in blocks-2-exhaustive-ccds sublayers-4-exhaustive-ccds; do
  "$dcq" compress "$out/$f.gguf" -o "$out/$f.dcq" --lossless --force -q
  echo "$f: gguf $(stat -c %s "$out/$f.gguf") B, dcq $(stat -c %s "$out/$f.dcq") B"
done
"$dcq" compress "$model" -o "$out/unpruned.dcq" --lossless --force -q
echo "unpruned: gguf $(stat -c %s "$model") B, dcq $(stat -c %s "$out/unpruned.dcq") B"

# Speed: llama-bench (tg 128, pp 64) and dcq run on the unpruned and pruned files, 3 runs each.
for f in "$model" "$out/blocks-2-exhaustive-ccds.gguf" "$out/sublayers-4-exhaustive-ccds.gguf"; do
  for i in 1 2 3; do
    "$peers/llama-bench" -m "$f" -p 64 -n 128 -t "$THREADS" -o json 2>/dev/null |
      jq -r --arg f "$(basename "$f")" '.[] | "llama-bench \($f) \(if .n_prompt > 0 then "pp" else "tg" end) \(.avg_ts) tok/s"'
    "$dcq" run "$f" -p "Once upon a time" -n 128 -c 256 --temp 0 --threads "$THREADS" --json 2>/dev/null |
      jq -r --arg f "$(basename "$f")" '"dcq run \($f) gen \(.gen_tokens_per_s) tok/s, prompt \(.prompt_tokens_per_s) tok/s"'
  done
done

# Speed after double compression: dcq run from the .dcq files (decoded on demand), 3 runs each.
for f in unpruned blocks-2-exhaustive-ccds sublayers-4-exhaustive-ccds; do
  for i in 1 2 3; do
    "$dcq" run "$out/$f.dcq" -p "Once upon a time" -n 128 -c 256 --temp 0 --threads "$THREADS" --json 2>/dev/null |
      jq -r --arg f "$f" '"dcq run \($f).dcq gen \(.gen_tokens_per_s) tok/s"'
  done
done

# llama.cpp loads the pruned files and agrees with dcq's perplexity (same text, -c 256, 100 chunks).
for f in blocks-2-exhaustive-ccds sublayers-4-exhaustive-ccds; do
  l=$("$peers/llama-perplexity" -m "$out/$f.gguf" -f "$out/heldout.txt" -c 256 --chunks 100 -t "$THREADS" 2>&1 |
      grep -o 'Final estimate: PPL = [0-9.]*' | grep -o '[0-9.]*$')
  d=$("$dcq" perplexity "$out/$f.gguf" -f "$out/heldout.txt" -c 256 --chunks 100 --threads "$THREADS" --json | jq -r '.ppl')
  echo "$f: llama-perplexity $l, dcq $d"
done
