#!/usr/bin/env bash
# The main job on the embedded default (README): installs missing packages, builds dcq, then
# takes llama2.c's stories260K (tools/models/stories260K), converts it to GGUF, quantizes it to
# Q8_0, compresses that losslessly into a .dcq, checks the round trip, generates text from the
# .dcq under a memory budget, then double-compresses the F32 model (calibrated on text the model
# itself wrote: the repo ships no corpus) and compares it with Q8_0. Outputs go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dcq
dcq=build/tools/dcq/dcq
model=tools/models/stories260K
mkdir -p out

echo "== convert the llama2.c checkpoint to GGUF (F32), then quantize to Q8_0"
$dcq convert "$model/stories260K.bin" --tokenizer "$model/tok512.bin" -o out/stories260K-F32.gguf --force
$dcq convert out/stories260K-F32.gguf --type Q8_0 -o out/stories260K-Q8_0.gguf --force

echo "== compress losslessly into a .dcq and rebuild the GGUF byte for byte"
$dcq compress out/stories260K-Q8_0.gguf --lossless -o out/stories260K-Q8_0.dcq --force
$dcq verify out/stories260K-Q8_0.dcq
$dcq decompress out/stories260K-Q8_0.dcq -o out/roundtrip.gguf --force
cmp out/stories260K-Q8_0.gguf out/roundtrip.gguf && echo "round trip: identical"
ls -l out/stories260K-F32.gguf out/stories260K-Q8_0.gguf out/stories260K-Q8_0.dcq |
  awk '{printf "  %-32s %9d bytes\n", $9, $5}'

echo "== generate (greedy) straight from the .dcq, decoding chunks on demand in half the memory"
$dcq run out/stories260K-Q8_0.dcq -p "Once upon a time" -n 64 --temp 0 --mem-budget 50%

echo "== double compression: calibrate on the model's own stories, entropy-constrained codes"
for seed in $(seq 1 16); do  # stories within the trained context of 512
  $dcq run out/stories260K-F32.gguf -p "Once upon a time" -n 400 -c 512 --temp 0.8 --seed "$seed" -q
  echo
done > out/calib.txt
$dcq compress out/stories260K-F32.gguf -o out/stories260K-ecsq7.dcq --force --quant ecsq --target-bpw 7 \
  --calib out/calib.txt --calib-tokens 4096
echo "perplexity on that text (-c 256):"
$dcq perplexity out/stories260K-Q8_0.gguf -f out/calib.txt -c 256 -q --json | grep -o '"ppl": [0-9.]*' | sed 's/^/  Q8_0 GGUF        /'
$dcq perplexity out/stories260K-ecsq7.dcq -f out/calib.txt -c 256 -q --json | grep -o '"ppl": [0-9.]*' | sed 's/^/  ecsq7 .dcq       /'
ls -l out/stories260K-Q8_0.gguf out/stories260K-ecsq7.dcq | awk '{printf "  %-32s %9d bytes\n", $9, $5}'
