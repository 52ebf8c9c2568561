#!/usr/bin/env bash
# Lossless benchmark: .dcq ratio against xz -9e and zstd -19 measured in the same run, and
# decode speed per core (dcq verify --threads 1 times every chunk decode in thread CPU time).
#
#   tools/bench_lossless.sh [DCQ_BINARY] [DATA_DIR] [WORK_DIR]
#   PARTS="folder" tools/bench_lossless.sh ...   # only some parts: gguf synth folder (default all)
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
parts=${PARTS:-gguf synth folder}
has() { [[ " $parts " == *" $1 "* ]]; }

if has gguf; then
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
fi

if has synth; then
echo
echo "Synthetic N(0, 0.02) weights, dim 1024, ffn 2816, 2 layers, vocab 4096 (\`dcq synth\`):"
echo
echo "| file | bytes | xz -9e | zstd -19 | --min-decode-speed | dcq | decode GB/s/core |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in Q8_0 Q4_0; do
  f=$work/synth-$t.gguf
  [ -f "$f" ] || "$dcq" synth --dim 1024 --ffn 2816 --layers 2 --heads 8 --kv-heads 4 --vocab 4096 --type $t -o "$f" --force -q >/dev/null
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
fi

if has folder; then
echo
echo "Hugging Face folders (each compressed as ONE .dcq; xz/zstd compress a tar of the folder;"
echo "ZipNN-style = tools/zipnn_baseline.py: per tensor, byte planes (exponent byte apart), each"
echo "plane zstd -19, other files zstd -19). Ratios against the sum of the folder's file sizes;"
echo "the tensor columns count tensor bytes only (dcq: \`dcq analyze X.dcq\` totals): all tensors"
echo "(dcq stores the tied lm_head once), and distinct tensors only (the coders alone):"
echo
echo "| folder | bytes | xz -9e (tar) | zstd -19 (tar) | ZipNN-style | dcq | all tensors: ZipNN-style | all tensors: dcq | distinct tensors: ZipNN-style | distinct tensors: dcq | dcq decode GB/s/core |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for m in stories260K-hf-bf16 stories260K-hf-f32 stories260K-hf-sharded; do
  dir=$data/models/$m
  n=$(find "$dir" -maxdepth 1 -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
  x=$(tar -C "$dir/.." -cf - "$m" | xz -9e -T1 -c | wc -c)
  z=$(tar -C "$dir/.." -cf - "$m" | zstd -q -19 -c | wc -c)
  zj=$(python3 "$here/tools/zipnn_baseline.py" "$dir")
  zn=$(echo "$zj" | json "['zipnn_bytes']")
  ztr=$(echo "$zj" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['tensor_ratio']:.3f}\")")
  zur=$(echo "$zj" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['tensor_unique_ratio']:.3f}\")")
  "$dcq" compress "$dir" -o "$work/$m.dcq" --lossless --force -q
  d=$(stat -c %s "$work/$m.dcq")
  an=$("$dcq" analyze "$work/$m.dcq" --repeat 1 --json)
  dtr=$(echo "$an" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['totals']['ratio_with_duplicates']:.3f}\")")
  dur=$(echo "$an" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['totals']['ratio']:.3f}\")")
  g=$("$dcq" verify "$work/$m.dcq" --threads 1 --json | json "['decode_gbps_per_core']")
  echo "| $m | $n | $(ratio $n $x) | $(ratio $n $z) | $(ratio $n ${zn%.*}) | **$(ratio $n $d)** | $ztr | **$dtr** | $zur | **$dur** | $g |"
done
fi
