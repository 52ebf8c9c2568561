#!/usr/bin/env bash
# Lossless benchmark: .dcq ratio against xz -9e and zstd -19 measured in the same run, and
# decode speed per core (dcq verify --threads 1 times every chunk decode in thread CPU time).
#
#   tools/bench_lossless.sh [DCQ_BINARY] [DATA_DIR] [WORK_DIR]
#
# Prints a markdown table per part (docs/benchmarks.md, "Lossless"). WORK_DIR (default: a temp
# folder) receives the .dcq files and the synthetic models (a few hundred MB).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dcq=${1:-$here/build/tools/dcq/dcq}
data=${2:-$here/../shared/data}
work=${3:-$(mktemp -d)}
mkdir -p "$work"

ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }
json() { python3 -c "import json,sys; print(round(json.load(sys.stdin)$1, 2))"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; dcq $(git -C "$here" rev-parse --short HEAD)"
echo
echo "| file | bytes | xz -9e | zstd -19 | dcq | dcq decode GB/s/core |"
echo "|---|---:|---:|---:|---:|---:|"
for t in F32 F16 BF16 Q8_0 Q5_1 Q5_0 Q4_1 Q4_0 IQ4_NL Q4_K_M Q5_K_M Q3_K_M; do
  f=$data/models/stories260K/stories260K-$t.gguf
  n=$(stat -c %s "$f")
  x=$(xz -9e -T1 -c "$f" | wc -c)
  z=$(zstd -q -19 -c "$f" | wc -c)
  "$dcq" compress "$f" -o "$work/s-$t.dcq" --lossless --force -q
  d=$(stat -c %s "$work/s-$t.dcq")
  g=$("$dcq" verify "$work/s-$t.dcq" --threads 1 --json | json "['decode_gbps_per_core']")
  echo "| stories260K-$t | $n | $(ratio $n $x) | $(ratio $n $z) | **$(ratio $n $d)** | $g |"
done

echo
echo "Synthetic N(0, 0.02) weights, dim 1024, ffn 2816, 2 layers, vocab 4096 (\`dcq synth\`):"
echo
echo "| file | bytes | xz -9e | zstd -19 | --min-decode-speed | dcq | decode GB/s/core |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in Q8_0 Q4_0; do
  f=$work/synth-$t.gguf
  [ -f "$f" ] || "$dcq" synth --dim 1024 --ffn 2816 --layers 2 --heads 8 --kv-heads 4 --vocab 4096 --type $t -o "$f" --force -q
  n=$(stat -c %s "$f")
  x=$(xz -9e -T1 -c "$f" | wc -c)
  z=$(zstd -q -19 -c "$f" | wc -c)
  for floor in 1.0 1.5; do
    "$dcq" compress "$f" -o "$work/synth-$t.dcq" --lossless --force -q --min-decode-speed $floor
    d=$(stat -c %s "$work/synth-$t.dcq")
    g=$("$dcq" verify "$work/synth-$t.dcq" --threads 1 --json | json "['decode_gbps_per_core']")
    echo "| synth-$t | $n | $(ratio $n $x) | $(ratio $n $z) | $floor | **$(ratio $n $d)** | $g |"
  done
done
