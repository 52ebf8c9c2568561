#!/usr/bin/env bash
# Codec benchmark (docs/bench_codec.md): per-codec size and one-core decode speed on 256 KiB
# chunks of Q8_0/Q4_0 codes (dcq bench codec), then end to end on the stories110M-shape synth:
# ratio against xz -9e and zstd -19 of the same file (same run) and dcq verify --threads 1.
#
#   tools/bench_codec.sh [DCQ_BINARY] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dcq=${1:-$here/build/tools/dcq/dcq}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
ratio() { python3 -c "print(f'{$1/$2:.4f}')"; }
gbps() { "$dcq" verify "$1" --threads 1 --json | python3 -c "import json,sys; print(round(json.load(sys.stdin)['decode_gbps_per_core'], 2))"; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); dcq $(git -C "$here" rev-parse --short HEAD)"
for t in Q8_0 Q4_0; do
  f=$work/s110-$t.gguf
  [ -f "$f" ] || "$dcq" synth --preset stories110M --type $t -o "$f" --force -q >/dev/null
  for r in 1 2 3; do
    echo; echo "## dcq bench codec $t, run $r"
    "$dcq" bench codec "$f" --repeats 20
  done
done
echo
echo "| file | bytes | xz -9e | zstd -19 | --min-decode-speed | dcq | verify GB/s/core (3 runs) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in Q8_0 Q4_0; do
  f=$work/s110-$t.gguf
  n=$(stat -c %s "$f")
  x=$(xz -9e -T1 -c "$f" | wc -c)
  z=$(zstd -q -19 -c "$f" | wc -c)
  for floor in 1.0 1.5; do
    "$dcq" compress "$f" -o "$work/s110-$t.dcq" --lossless --force -q --min-decode-speed $floor
    d=$(stat -c %s "$work/s110-$t.dcq")
    g="$(gbps "$work/s110-$t.dcq") $(gbps "$work/s110-$t.dcq") $(gbps "$work/s110-$t.dcq")"
    echo "| s110-$t | $n | $(ratio $n $x) | $(ratio $n $z) | $floor | **$(ratio $n $d)** | $g |"
  done
done
