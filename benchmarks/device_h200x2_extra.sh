#!/usr/bin/env bash
# Second device call on nvidia-h200-x2: profiler traces (op tags as ranges), pp with micro-batches,
# ulysses, striped ring.  Outputs under $OUT.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT/prof"
REC="$OUT/h200x2_real_extra.jsonl"; LOG="$OUT/run_extra.log"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
COMMON="--hardware h200-sxm --topology nvswitch:2 --out $REC"
step 60 $TR -m real.run $COMMON --batch 1 --plan ring=2 --ring-variant zigzag --seq 16Ki --layers 1 --profile-dir "$OUT/prof"
step 90 $TR -m real.run $COMMON --plan pp=2 --batch 4 --microbatches '1;2;4' --seq 16Ki --layers 4
step 90 $TR -m real.run $COMMON --batch 1 --plan ulysses=2 --seq '16Ki;64Ki' --layers '1;4'
step 90 $TR -m real.run $COMMON --batch 1 --plan ring=2 --ring-variant striped --seq '16Ki;64Ki' --layers '1;4'
ls -la "$OUT/prof" | tee -a "$LOG"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
