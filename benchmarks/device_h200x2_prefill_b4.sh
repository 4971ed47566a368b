#!/usr/bin/env bash
# nvidia-h200-x2 (issue 5, more prefill data): B = 4 for ring (zigzag, plain), tp, ulysses and one GPU at
# 16Ki and 64Ki, 1 and 4 layers; L = 256Ki at B = 1; pp=2 with micro-batches = B = 4 at 64Ki.  Eager
# executor (device-bound at these sizes).  Outputs under $OUT.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
REC="$OUT/h200x2_real_prefill.jsonl"; LOG="$OUT/run_prefill.log"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
C2="--hardware h200-sxm --topology nvswitch:2 --out $REC"
C1="--hardware h200-sxm --topology nvswitch:1 --out $REC"
step 120 $TR -m real.run $C2 --batch 4 --plan ring=2 --ring-variant 'zigzag;plain' --seq '16Ki;64Ki' --layers '1;4'
step 90 $TR -m real.run $C2 --batch 4 --plan tp=2 --seq '16Ki;64Ki' --layers '1;4'
step 90 $TR -m real.run $C2 --batch 4 --plan ulysses=2 --seq '16Ki;64Ki' --layers '1;4'
step 60 $TR -m real.run $C2 --batch 4 --plan pp=2 --microbatches 4 --seq 64Ki --layers 4
step 150 $TR -m real.run $C2 --batch 1 --plan ring=2 --ring-variant 'zigzag;plain' --seq 256Ki --layers 1
step 60 $TR -m real.run $C2 --batch 1 --plan ring=2 --ring-variant zigzag --seq 256Ki --layers 4
step 90 $TR -m real.run $C2 --batch 1 --plan 'tp=2;ulysses=2' --seq 256Ki --layers 1
CUDA_VISIBLE_DEVICES=0 step 120 torchrun --standalone --nproc-per-node 1 -m real.run $C1 --plan tp=1 --batch 4 \
    --seq '16Ki;64Ki' --layers '1;4'
CUDA_VISIBLE_DEVICES=0 step 90 torchrun --standalone --nproc-per-node 1 -m real.run $C1 --plan tp=1 --batch 1 \
    --seq 256Ki --layers 1
echo "=== done $(date -u +%T)" | tee -a "$LOG"
