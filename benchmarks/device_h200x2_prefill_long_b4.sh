#!/usr/bin/env bash
# nvidia-h200-x2 (issue 5): prefill at B = 4 for the longest lengths (128Ki, 256Ki; 1 layer) for ring
# zigzag, tp=2 and ulysses=2, and one GPU at 128Ki.  Outputs under $OUT.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
REC="$OUT/h200x2_real_prefill_long.jsonl"; LOG="$OUT/run_prefill_long.log"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
step 300 torchrun --standalone --nproc-per-node 2 -m real.run --hardware h200-sxm --topology nvswitch:2 --out "$REC" \
    --batch 4 --plan 'ring=2;tp=2;ulysses=2' --seq '128Ki;256Ki' --layers 1
CUDA_VISIBLE_DEVICES=0 step 120 torchrun --standalone --nproc-per-node 1 -m real.run --hardware h200-sxm \
    --topology nvswitch:1 --out "$REC" --plan tp=1 --batch 4 --seq 128Ki --layers 1
echo "=== done $(date -u +%T)" | tee -a "$LOG"
