#!/usr/bin/env python3
"""ZipNN-style lossless baseline for safetensors checkpoints (benchmarks only).

ZipNN (Hershcovitch et al., 2024) compresses floating-point weights by separating the exponent
byte from the mantissa byte(s) and entropy coding each byte plane on its own. This script does
the same per tensor with the zstd CLI (`zstd -19`): BF16/F16 -> 2 planes (byte 1 = sign and
exponent bits, byte 0 = mantissa), F32 -> 4 planes (byte 3 = sign and exponent, bytes 2, 1, 0).
Everything that is not tensor data (the safetensors header, and every other file of a folder)
is compressed with zstd -19 as one stream per file.

  tools/zipnn_baseline.py PATH [PATH ...]      # .safetensors files or folders

Prints one JSON object: total bytes, total compressed bytes, and the same restricted to the
tensor bytes, per dtype.
"""
import json
import os
import struct
import subprocess
import sys

ELEM = {"BF16": 2, "F16": 2, "F32": 4}


def zstd_size(data: bytes) -> int:
    if not data:
        return 0
    out = subprocess.run(["zstd", "-q", "-19", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return len(out)


def planes(data: bytes, width: int):
    # Byte plane k holds byte k of every element (little-endian): plane width-1 is sign+exponent.
    return [data[k::width] for k in range(width)]


def safetensors_file(path: str, acc: dict):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    covered = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        data = blob[base + b:base + e]
        covered.append((base + b, base + e))
        width = ELEM.get(t["dtype"])
        if width is None:
            size = zstd_size(data)
        else:
            size = sum(zstd_size(p) for p in planes(data, width))
        # The same figures over distinct tensors only (a tied lm_head copies the embedding):
        # ZipNN itself does not deduplicate, so this is the fair set to compare coders on.
        key = hash(data)
        if key not in acc["_seen"]:
            acc["_seen"].add(key)
            acc["tensor_unique_bytes"] += len(data)
            acc["tensor_unique_zipnn_bytes"] += size
        d = acc["by_dtype"].setdefault(t["dtype"], {"bytes": 0, "zipnn_bytes": 0})
        d["bytes"] += len(data)
        d["zipnn_bytes"] += size
        acc["tensor_bytes"] += len(data)
        acc["tensor_zipnn_bytes"] += size
    # Non-tensor bytes of the file (header, gaps) as one zstd stream.
    covered.sort()
    rest, pos = bytearray(), 0
    for b, e in covered:
        rest += blob[pos:b]
        pos = max(pos, e)
    rest += blob[pos:]
    acc["bytes"] += len(blob)
    acc["zipnn_bytes"] += zstd_size(bytes(rest))


def main():
    acc = {"bytes": 0, "zipnn_bytes": 0, "tensor_bytes": 0, "tensor_zipnn_bytes": 0, "by_dtype": {},
           "tensor_unique_bytes": 0, "tensor_unique_zipnn_bytes": 0, "_seen": set()}
    for p in sys.argv[1:]:
        files = [os.path.join(p, f) for f in sorted(os.listdir(p))] if os.path.isdir(p) else [p]
        for f in files:
            if not os.path.isfile(f):
                continue
            if f.endswith(".safetensors"):
                safetensors_file(f, acc)
            else:
                data = open(f, "rb").read()
                acc["bytes"] += len(data)
                acc["zipnn_bytes"] += zstd_size(data)
    acc["zipnn_bytes"] += acc["tensor_zipnn_bytes"]
    del acc["_seen"]
    acc["tensor_unique_ratio"] = (acc["tensor_unique_bytes"] / acc["tensor_unique_zipnn_bytes"]
                                  if acc["tensor_unique_zipnn_bytes"] else 0)
    acc["ratio"] = acc["bytes"] / acc["zipnn_bytes"] if acc["zipnn_bytes"] else 0
    acc["tensor_ratio"] = acc["tensor_bytes"] / acc["tensor_zipnn_bytes"] if acc["tensor_zipnn_bytes"] else 0
    for d in acc["by_dtype"].values():
        d["ratio"] = d["bytes"] / d["zipnn_bytes"] if d["zipnn_bytes"] else 0
    print(json.dumps(acc))


if __name__ == "__main__":
    main()
