#!/usr/bin/env bash
# Loader benchmark (docs/loader.md, "Measurements 2026-11-29"; the lead merges them into
# docs/benchmarks.md): tokens/s and peak RSS against the memory budget on the stories110M-shape
# synth Q8_0 and Q4_0 (lossless .dcq, and the plan's 60 % repack whose streamed tensors are raw and
# served zero-copy), the copy path and prefetch at 60 %, and the simulated slow storage: the GGUF's
# bytes (every tensor raw, `dcq plan --repack --all-raw`) against the lossless .dcq and a
# double-compressed (ecsq) .dcq, for stories260K (trained) and the 110M synth (random weights).
# Usage: tools/bench_loader.sh BUILD_DIR WORK_DIR [s4|s5|s6|s7|s8|s9]   (WORK_DIR receives the models, ~1.5 GB;
# s4/s5/s6/s7/s8/s9: the session-4/5/6/7/8/9 runs on the files made by a run without them)
set -euo pipefail
build=$(cd "${1:?build dir}" && pwd); work=${2:?work dir}
dcq="$build/tools/dcq/dcq"
data=${DCQ_TEST_DATA:-$(dirname "$0")/../../shared/data}; data=$(cd "$data" && pwd)
mkdir -p "$work"; cd "$work"
lscpu | grep 'Model name'; nproc; uptime
# Slow storage at 60 % (sessions 6 and 7): the lossless Q4_0 .dcq against the GGUF's bytes through
# the same loader (`--all-raw`), at 100 and 400 MB/s; JSON to PREFIX-throttle-RATE-FILE.json.
slow_storage() {
  "$dcq" plan s110-q4.dcq --mem-budget 60% --repack s110-q4-allraw.dcq --all-raw --force -q > /dev/null
  for mbs in 100 400; do
    for f in s110-q4.dcq s110-q4-allraw.dcq; do
      "$dcq" bench memory "$f" --budgets 60% --repeats 2 --tokens 16 --threads 2 --read-throttle $mbs --json \
        > "$1-throttle-$mbs-$f.json"
    done
  done
}
if [ "${3:-}" = s9 ]; then
  # Session 9 (docs/loader.md, "GGUF input"): slow storage with the GGUF file itself, which now runs
  # through the same loader (bare raw chunks in place), against the lossless .dcq and the
  # same-quality ECSQ 7 .dcq (stories260K), and the 110M Q4_0 GGUF against its lossless .dcq; each
  # model at one absolute budget below its size, so that reads happen on every token.
  cp -f "$data/models/stories260K/stories260K-Q8_0.gguf" s260-q8.gguf
  [ -f s260-q8.dcq ] || "$dcq" compress --lossless s260-q8.gguf -o s260-q8.dcq -q
  [ -f calib.txt ] || head -c 80000 "$data/text/tinystories_val.txt" > calib.txt
  [ -f s260-ecsq7.dcq ] || "$dcq" compress "$data/models/stories260K/stories260K-F32.gguf" -o s260-ecsq7.dcq \
    --quant ecsq --target-bpw 7 --calib calib.txt --calib-tokens 4096 --threads 2 --no-baselines -q
  for mbs in 10 30 100 400; do
    for f in s260-q8.gguf s260-q8.dcq s260-ecsq7.dcq; do
      "$dcq" bench memory "$f" --budgets 160K --tokens 128 --repeats 3 --threads 2 --read-throttle $mbs --json \
        > "s9-throttle-$mbs-$f.json"
    done
  done
  for mbs in 100 400; do
    for f in s110-q4.gguf s110-q4.dcq; do
      "$dcq" bench memory "$f" --budgets 36M --tokens 8 --repeats 2 --threads 2 --read-throttle $mbs --json \
        > "s9-throttle-$mbs-$f.json"
    done
  done
  ls -l s260-q8.gguf s260-q8.dcq s260-ecsq7.dcq s110-q4.gguf s110-q4.dcq
  uptime
  exit 0
fi
if [ "${3:-}" = s8 ]; then
  # Session 8 (docs/loader.md, "Measurements, session 8"): each budget's own repack (views back
  # to back, raw embedding rows), 8 rounds of `bench memory --paired` at 64 tokens: the separate
  # runs (peak RSS, per-round ratios) and the paired in-process ratio with its resident control;
  # then the 60 % repack across all budgets (plot).
  for n in q4 q8; do
    for p in 80 60 40 20; do
      "$dcq" plan "s110-$n.dcq" --mem-budget $p% --threads 2 --repack "s8-$n-k$p.dcq" --force -q > /dev/null
      "$dcq" bench memory "s8-$n-k$p.dcq" --budgets $p% --repeats 8 --tokens 64 --threads 2 --paired --json \
        > "s8-$n-k$p.json"
    done
    "$dcq" bench memory "s8-$n-k60.dcq" --budgets 100%,80%,60%,40%,20% --repeats 5 --tokens 64 --threads 2 \
      --paired --json --svg "s8-$n-k60.svg" > "s8-$n-k60-all.json"
  done
  uptime
  exit 0
fi
if [ "${3:-}" = s7 ]; then
  # Session 7 (docs/loader.md, "Measurements, session 7"): each budget's own repack (the plan now
  # keeps room for batched flushes and uses 2 MiB views down to 40 %), 9 interleaved rounds of
  # `bench memory` at 64 tokens; the 60 % repack across all budgets (plot); unmap calls per token.
  for n in q4 q8; do
    for p in 80 60 40 20; do
      "$dcq" plan "s110-$n.dcq" --mem-budget $p% --threads 2 --repack "s7-$n-k$p.dcq" --force -q > /dev/null
      "$dcq" plan "s7-$n-k$p.dcq" --mem-budget $p% --threads 2 --json > "s7-$n-plan$p.json"
      "$dcq" bench memory "s7-$n-k$p.dcq" --budgets $p% --repeats 9 --tokens 64 --threads 2 --json > "s7-$n-k$p.json"
      for t in 16 80; do
        "$dcq" run "s7-$n-k$p.dcq" --mem-budget $p% -p "Once upon a time" -n $t --temp 0 --threads 2 --json -q \
          > "s7-$n-unmaps$p-$t.json"
      done
    done
    "$dcq" bench memory "s7-$n-k60.dcq" --budgets 100%,80%,60%,40%,20% --repeats 5 --tokens 64 --threads 2 \
      --json --svg "s7-$n-k60.svg" > "s7-$n-k60-all.json"
  done
  slow_storage s7
  uptime
  exit 0
fi
if [ "${3:-}" = s6 ]; then
  # Session 6 (docs/loader.md, "Measurements, session 6"): row_groups repacks per budget with 2 MiB
  # views, 5 rounds of `bench memory` each; then 8 interleaved rounds (resident, then two repacks of
  # the 60 % plan, OLD60 and the current one) at 64 tokens; the blocks kept mapped
  # (DCQ_KEEP_MAPPED=1, over budget: what giving blocks back costs); slow storage at 60 %.
  for n in q4 q8; do
    for p in 80 60 40 20; do
      "$dcq" plan "s110-$n.dcq" --mem-budget $p% --threads 2 --repack "s110-$n-k$p.dcq" --force -q > /dev/null
    done
    "$dcq" bench memory "s110-$n-k60.dcq" --budgets 100%,80%,60%,40%,20% --repeats 5 --tokens 32 --threads 2 \
      --json --svg "s6-$n-k60.svg" > "s6-$n-k60.json"
    for p in 80 40 20; do
      "$dcq" bench memory "s110-$n-k$p.dcq" --budgets $p% --repeats 5 --tokens 32 --threads 2 --json > "s6-$n-k$p.json"
    done
    for k in 0 1; do
      DCQ_KEEP_MAPPED=$k "$dcq" bench memory "s110-$n-k60.dcq" --budgets 60% --repeats 5 --tokens 32 --threads 2 \
        --json > "s6-$n-keep$k.json"
    done
  done
  g() { "$dcq" run "$@" -p "Once upon a time" -n 64 --temp 0 --threads 2 --json -q |
    python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["gen_tokens_per_s"])'; }
  for n in q4 q8; do
    [ -f "s110-$n-old60.dcq" ] || continue  # OLD60: a 60 % repack made by an earlier dcq, if kept
    for i in 1 2 3 4 5 6 7 8; do
      r=$(g "s110-$n-k60.dcq"); o=$(g "s110-$n-old60.dcq" --mem-budget 60%); k=$(g "s110-$n-k60.dcq" --mem-budget 60%)
      python3 -c "print('$n round $i resident $r old %.2f new %.2f' % ($o / $r, $k / $r))"
    done
  done | tee s6-ab.txt
  slow_storage s6
  uptime
  exit 0
fi
if [ "${3:-}" = s5 ]; then
  # Session 5 (docs/loader.md, "Measurements, session 5"): the 60 % target on the r60 files, 5
  # rounds; per round and file back to back: resident, 60 % with streamed raw tensors as views of
  # the mapping (DCQ_STREAM_COPY=0; the default without prefetch), 60 % pread into reused buffers
  # (DCQ_STREAM_COPY=1; the default with prefetch), both also with prefetch depth 4. Columns: tok/s, peak RSS MiB, page faults, task-clock ms (perf stat).
  one() { perf stat -e page-faults,task-clock -x, -o s5-perf.txt "$dcq" run "$@" -p "Once upon a time" -n 32 \
      --temp 0 --json -q --threads 2 > s5-run.json
    python3 -c 'import json,sys; j=json.load(open("s5-run.json")); p=[l.split(",")[0] for l in open("s5-perf.txt") if "," in l]
print("%.2f" % j["gen_tokens_per_s"], j["peak_rss_bytes"] // 1048576, p[0], p[1].split(".")[0], " ".join(map(str, j["tokens"][-2:])))'; }
  for i in 1 2 3 4 5; do
    for f in s110-q4-r60.dcq s110-q8-r60.dcq; do
      echo "$f $i res $(one $f)"
      echo "$f $i map $(DCQ_STREAM_COPY=0 one $f --mem-budget 60%)"
      echo "$f $i copy $(DCQ_STREAM_COPY=1 one $f --mem-budget 60%)"
      echo "$f $i map-pf4 $(DCQ_STREAM_COPY=0 one $f --mem-budget 60% --prefetch --prefetch-depth 4)"
      echo "$f $i copy-pf4 $(one $f --mem-budget 60% --prefetch --prefetch-depth 4)"
    done
  done | tee s5-pairs.txt
  uptime
  exit 0
fi
if [ "${3:-}" = s4 ]; then
  # Session 4 (docs/loader.md, "Measurements, session 4"): the files as above must exist (run the
  # script once without `s4`). Every `bench memory` interleaves resident and budget runs per round.
  B=100%,80%,60%,40%,20%
  for n in q8 q4; do
    for f in "s110-$n.dcq" "s110-$n-r60.dcq"; do
      for pf in "" "--prefetch"; do
        "$dcq" bench memory "$f" --budgets $B --tokens 32 --repeats 3 --threads 2 $pf --json \
          --svg "s4-$f${pf:+-pf}.svg" > "s4-$f${pf:+-pf}.json"
      done
    done
  done
  # 60 %, 5 rounds: resident, budget, prefetch depth 2 and 4 back to back (ratios per round).
  one() { "$dcq" run "$@" -p "Once upon a time" -n 32 --temp 0 --json -q --threads 2 |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.2f" % j["gen_tokens_per_s"], j["peak_rss_bytes"] // 1048576)'; }
  for i in 1 2 3 4 5; do
    for f in s110-q8-r60.dcq s110-q4-r60.dcq s110-q8.dcq s110-q4.dcq; do
      echo "$f $i res $(one $f)"; echo "$f $i b60 $(one $f --mem-budget 60%)"
      echo "$f $i pf2 $(one $f --mem-budget 60% --prefetch)"
      echo "$f $i pf4 $(one $f --mem-budget 60% --prefetch --prefetch-depth 4)"
    done
  done | tee s4-pairs.txt
  for mbs in 10 30 100 400; do
    for f in s260-q8-allraw.dcq s260-q8.dcq s260-ecsq7.dcq; do
      "$dcq" bench memory "$f" --budgets 160K --tokens 128 --repeats 3 --threads 2 --read-throttle $mbs --json \
        > "s4-throttle-$mbs-$f.json"
    done
  done
  for mbs in 100 400; do
    for f in s110-q4-allraw.dcq s110-q4.dcq s110-ecsq4.dcq; do
      "$dcq" bench memory "$f" --budgets 36M --tokens 8 --repeats 3 --threads 2 --read-throttle $mbs --json \
        > "s4-throttle-$mbs-$f.json"
    done
  done
  uptime
  exit 0
fi
[ -f s110-f32.gguf ] || "$dcq" synth --preset stories110M --type F32 -o s110-f32.gguf -q
for t in q8:Q8_0 q4:Q4_0; do
  n=${t%%:*}; ty=${t##*:}
  [ -f "s110-$n.gguf" ] || "$dcq" convert s110-f32.gguf --type "$ty" --pure -o "s110-$n.gguf" -q
  [ -f "s110-$n.dcq" ] || "$dcq" compress --lossless "s110-$n.gguf" -o "s110-$n.dcq" -q
  # The plan's repack for a 60 % budget: streamed tensors raw, one chunk each (zero-copy).
  "$dcq" plan "s110-$n.dcq" --mem-budget 60% --threads 2 --repack "s110-$n-r60.dcq" --force -q > /dev/null
  # Every tensor raw in its row chunks: the GGUF's bytes through the same loader.
  "$dcq" plan "s110-$n.dcq" --mem-budget 60% --repack "s110-$n-allraw.dcq" --all-raw --force -q > /dev/null
  for f in "s110-$n.dcq" "s110-$n-r60.dcq"; do
    "$dcq" bench memory "$f" --budgets 100%,75%,60%,50%,25% --tokens 32 --repeats 3 --threads 2 --json > "bench-$f.json"
  done
  # 60 %: the copy path (no zero-copy) and the prefetch thread, for comparison.
  DCQ_ZERO_COPY=0 "$dcq" bench memory "s110-$n-r60.dcq" --budgets 60% --tokens 32 --repeats 3 --threads 2 --json \
    > "copy-s110-$n-r60.dcq.json"
  for f in "s110-$n.dcq" "s110-$n-r60.dcq"; do
    "$dcq" bench memory "$f" --budgets 60% --tokens 32 --repeats 3 --threads 2 --prefetch --json > "prefetch-$f.json"
  done
done

# Slow storage. stories260K (trained): Q8_0 GGUF bytes vs its lossless .dcq vs ECSQ 7 bits.
cp -f "$data/models/stories260K/stories260K-Q8_0.gguf" s260-q8.gguf
head -c 80000 "$data/text/tinystories_val.txt" > calib.txt
"$dcq" compress --lossless s260-q8.gguf -o s260-q8.dcq --force -q
"$dcq" plan s260-q8.dcq --mem-budget 50% --repack s260-q8-allraw.dcq --all-raw --force -q > /dev/null
[ -f s260-ecsq7.dcq ] || "$dcq" compress "$data/models/stories260K/stories260K-F32.gguf" -o s260-ecsq7.dcq \
  --quant ecsq --target-bpw 7 --calib calib.txt --calib-tokens 4096 --threads 2 --no-baselines -q
# 110M synth (random weights): Q4_0 GGUF bytes vs lossless .dcq vs ECSQ 4 bits (no calibration).
[ -f s110-ecsq4.dcq ] || "$dcq" compress s110-f32.gguf -o s110-ecsq4.dcq --quant ecsq --target-bpw 4 --threads 2 \
  --no-baselines -q
# One absolute budget per model, below its size, so that reads happen on every token.
for mbs in 100 400; do
  for f in s260-q8-allraw.dcq s260-q8.dcq s260-ecsq7.dcq; do
    "$dcq" bench memory "$f" --budgets 160K --tokens 128 --repeats 3 --threads 2 --read-throttle $mbs --json \
      > "throttle-$mbs-$f.json"
  done
  for f in s110-q4-allraw.dcq s110-q4.dcq s110-ecsq4.dcq; do
    "$dcq" bench memory "$f" --budgets 36M --tokens 8 --repeats 2 --threads 2 --read-throttle $mbs --json \
      > "throttle-$mbs-$f.json"
  done
done
ls -l s110-q4.gguf s110-q4*.dcq s110-ecsq4.dcq s260-q8.gguf s260*.dcq s110-q8.gguf s110-q8*.dcq
uptime
