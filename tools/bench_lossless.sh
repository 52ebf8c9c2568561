#!/usr/bin/env bash
# Lossless benchmark: .dcq ratio against xz -9e, zstd -19 and a ZipNN-style baseline measured in
# the same run, and
# decode speed per core (dcq verify --threads 1 times every chunk decode in thread CPU time).
#
#   tools/bench_lossless.sh [DCQ_BINARY] [DATA_DIR] [WORK_DIR]
#   PARTS="folder" tools/bench_lossless.sh ...   # only some parts: gguf synth folder (default all)
#   synth: the stories110M-shape Q8_0/Q4_0 models of issue 3 (xz -9e on them takes minutes)
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
# One-core CPU seconds (user + sys) of a command whose output is discarded.
cpu() { local t; TIMEFORMAT='%3U %3S'; t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); echo "$t" | awk '{print $1 + $2}'; }
gbps() { python3 -c "print(f'{$1/max($2,1e-9)/1e9:.2f}')"; }

# ZipNN-style baseline for one GGUF, in the spirit of tools/zipnn_baseline.py (which reads
# safetensors): per tensor, float byte planes (F32: 4, F16/BF16: 2), each its own zstd -19 frame;
# a block-quantized tensor (no float planes) one zstd -19 frame; the header one more. The planes
# go to files in $2 so one zstd process compresses (and later decompresses) them all. Prints the
# compressed bytes.
zipnn_gguf() {
  rm -rf "$2"; mkdir -p "$2"
  python3 - "$1" "$2" <<'PY'
import os, struct, sys
blob = open(sys.argv[1], "rb").read()
out = sys.argv[2]
assert blob[:4] == b"GGUF", "not a GGUF"
pos = 8
n_t, n_kv = struct.unpack_from("<QQ", blob, pos); pos += 16
SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def string():
    global pos
    (n,) = struct.unpack_from("<Q", blob, pos); pos += 8 + n
    return blob[pos - n:pos]
def value(t):
    global pos
    if t in SCALAR:
        pos += SCALAR[t]; return blob[pos - SCALAR[t]:pos]
    if t == 8: return string()
    if t == 9:
        et, n = struct.unpack_from("<IQ", blob, pos); pos += 12
        for _ in range(n): value(et)
        return None
    raise SystemExit(f"unknown GGUF value type {t}")
align = 32
for _ in range(n_kv):
    k = string(); (t,) = struct.unpack_from("<I", blob, pos); pos += 4
    v = value(t)
    if k == b"general.alignment": align = struct.unpack("<I", v)[0]
tensors = []
for _ in range(n_t):
    string(); (nd,) = struct.unpack_from("<I", blob, pos); pos += 4 + 8 * nd
    tt, off = struct.unpack_from("<IQ", blob, pos); pos += 12
    tensors.append((off, tt))
base = (pos + align - 1) // align * align
tensors.sort()
open(os.path.join(out, "header"), "wb").write(blob[:base])
WIDTH = {0: 4, 1: 2, 30: 2}  # F32, F16, BF16
for i, (off, tt) in enumerate(tensors):
    end = tensors[i + 1][0] if i + 1 < len(tensors) else len(blob) - base
    data = blob[base + off:base + end]
    w = WIDTH.get(tt, 1)
    for k in range(w):
        open(os.path.join(out, f"t{i}.p{k}"), "wb").write(data[k::w])
PY
  zstd -q -19 --rm "$2"/* >/dev/null
  cat "$2"/*.zst | wc -c
}
json() { python3 -c "import json,sys; print(round(json.load(sys.stdin)$1, 2))"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; dcq $(git -C "$here" rev-parse --short HEAD)"
parts=${PARTS:-gguf synth folder}
has() { [[ " $parts " == *" $1 "* ]]; }

if has gguf; then
echo
echo "| file | bytes | xz -9e | zstd -19 | ZipNN-style | dcq | dcq decode GB/s/core |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in F32 F16 BF16 Q8_0 Q5_1 Q5_0 Q4_1 Q4_0 IQ4_NL Q4_K_M Q5_K_M Q3_K_M; do
  f=$data/models/stories260K/stories260K-$t.gguf
  n=$(stat -L -c %s "$f")
  x=$(xz -9e -T1 -c "$f" | wc -c)
  z=$(zstd -q -19 -c "$f" | wc -c)
  zn=$(zipnn_gguf "$f" "$work/zipnn")
  "$dcq" compress "$f" -o "$work/s-$t.dcq" --lossless --force -q
  d=$(stat -L -c %s "$work/s-$t.dcq")
  g=$("$dcq" verify "$work/s-$t.dcq" --threads 1 --json | json "['decode_gbps_per_core']")
  echo "| stories260K-$t | $n | $(ratio $n $x) | $(ratio $n $z) | $(ratio $n $zn) | **$(ratio $n $d)** | $g |"
done
fi

if has synth; then
# stories110M-shape synthetic models (issue 3's decode-speed target). Decode speed per core, one
# thread: dcq = dcq verify --threads 1 (decoded bytes / thread CPU time of the chunk decodes,
# both checksums included); xz / zstd = output bytes / CPU time (user + sys) of `xz -dc -T1` /
# `zstd -dc` writing to /dev/null; ZipNN-style = output bytes / CPU time of one `zstd -d` of all
# its frames (the byte-plane interleave not counted, so an upper bound). Three runs each: best,
# and spread = worst/best.
echo
echo "Synthetic N(0, 0.02) weights, \`dcq synth --preset stories110M\`; speeds GB/s of output per core, best of 3 (spread):"
echo
echo "| file | bytes | xz -9e | GB/s | zstd -19 | GB/s | ZipNN-style | GB/s | --min-decode-speed | dcq | GB/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
best3() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{max(v):.2f} ({max(v)/min(v):.2f})')" "$@"; }
for t in Q8_0 Q4_0; do
  f=$work/s110-$t.gguf
  [ -f "$f" ] || "$dcq" synth --preset stories110M --type $t -o "$f" --force -q >/dev/null
  n=$(stat -L -c %s "$f")
  # Read through stdin: zstd skips a symlinked input file. xz -9e takes minutes on these files:
  # an existing non-empty .xz in WORK_DIR is reused.
  [ -s "$work/s110-$t.xz" ] || xz -9e -T1 -c <"$f" >"$work/s110-$t.xz"
  zstd -q -19 -c <"$f" >"$work/s110-$t.zst"
  x=$(stat -L -c %s "$work/s110-$t.xz")
  z=$(stat -L -c %s "$work/s110-$t.zst")
  zn=$(zipnn_gguf "$f" "$work/zipnn-$t")
  xs=(); zs=(); ns=()
  for r in 1 2 3; do
    xs+=("$(gbps $n "$(cpu xz -dc -T1 "$work/s110-$t.xz")")")
    zs+=("$(gbps $n "$(cpu zstd -q -dc "$work/s110-$t.zst")")")
    ns+=("$(gbps $n "$(cpu sh -c "zstd -q -dc $work/zipnn-$t/*.zst")")")
  done
  for floor in default 1.0; do
    if [ $floor = default ]; then "$dcq" compress "$f" -o "$work/s110-$t.dcq" --lossless --force -q
    else "$dcq" compress "$f" -o "$work/s110-$t.dcq" --lossless --force -q --min-decode-speed $floor; fi
    d=$(stat -L -c %s "$work/s110-$t.dcq")
    gs=()
    for r in 1 2 3; do gs+=("$("$dcq" verify "$work/s110-$t.dcq" --threads 1 --json | json "['decode_gbps_per_core']")"); done
    echo "| s110-$t | $n | $(ratio $n $x) | $(best3 "${xs[@]}") | $(ratio $n $z) | $(best3 "${zs[@]}") | $(ratio $n $zn) | $(best3 "${ns[@]}") | $floor | **$(ratio $n $d)** | $(best3 "${gs[@]}") |"
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
  d=$(stat -L -c %s "$work/$m.dcq")
  an=$("$dcq" analyze "$work/$m.dcq" --repeat 1 --json)
  dtr=$(echo "$an" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['totals']['ratio_with_duplicates']:.3f}\")")
  dur=$(echo "$an" | python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['totals']['ratio']:.3f}\")")
  g=$("$dcq" verify "$work/$m.dcq" --threads 1 --json | json "['decode_gbps_per_core']")
  echo "| $m | $n | $(ratio $n $x) | $(ratio $n $z) | $(ratio $n ${zn%.*}) | **$(ratio $n $d)** | $ztr | **$dtr** | $zur | **$dur** | $g |"
done
fi
