#!/usr/bin/env bash
# nvidia-h200-x2 (issue 12): attention calibration supplement at shapes no validation record uses
# (square calls at 12Ki, 24Ki, 56Ki, 80Ki and 112Ki, B = 1, 2 and 4; 7 repetitions), and the slowdown of
# attention beside the ring's K/V exchange at ring-local lengths 12Ki and 28Ki (B = 1 and 2).
# A lease of its own: no validation record is measured here.  Outputs under $OUT.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_supplement.log"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee -a "$LOG"
CUDA_VISIBLE_DEVICES=0 timeout 300 python3 benchmarks/bench_attention_long.py --lengths 12288,24576,57344,81920,114688 \
    --batches 1,2,4 --reps 7 --out "$OUT/h200x1_attention_batch_raw.json" 2>&1 | grep -v -i warn | tee -a "$LOG"
timeout 200 torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_causes.py --lengths 12288,28672 \
    --batches 1,2 --kernels cudnn,flash --out "$OUT/h200x2_ring_causes_disjoint.json" 2>&1 \
    | grep -v -E "Warning|warn\(|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
