#!/usr/bin/env bash
# nvidia-h200-x4, a validation lease of 2026-11-28 (fifth session), no calibration in it, after the hosts'
# start skew entered the '-graph' profile (measured in calibration calls of their own): graph decode at
# shapes no calibration and no earlier record used (batches 5, 19; contexts 50Ki, 110Ki), P = 4, P = 2
# (GPUs 0-1) and P = 1 (GPU 0), seed model and llama3-8b.  One file comes back: $OUT/validation_q.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_q"; mkdir -p "$W"
LOG="$W/run_validation_q.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
L8="--model llama3-8b --layers 4"
step 200 torchrun --standalone --nproc-per-node 4 -m real.run --hardware h200-sxm --topology nvswitch:4 --layers 2 \
    --out "$W/h200x4_real_decode_graph_q.jsonl" --phase decode --exec graph --batch '5;19' --context '50Ki;110Ki' \
    --plan 'tp=4;ring=4' --decode-attn 'pass-q;allgather'
step 150 torchrun --standalone --nproc-per-node 4 -m real.run --hardware h200-sxm --topology nvswitch:4 $L8 \
    --out "$W/h200x4_real_decode_graph_llama3_8b_q.jsonl" --phase decode --exec graph --batch 19 --context 110Ki \
    --plan 'tp=4;ring=4' --decode-attn pass-q
export CUDA_VISIBLE_DEVICES=0,1
step 150 torchrun --standalone --nproc-per-node 2 -m real.run --hardware h200-sxm --topology nvswitch:2 --layers 2 \
    --out "$W/h200x2_real_decode_graph_q.jsonl" --phase decode --exec graph --batch '5;19' --context 50Ki \
    --plan 'tp=2;ring=2' --decode-attn pass-q
export CUDA_VISIBLE_DEVICES=0
step 120 torchrun --standalone --nproc-per-node 1 -m real.run --hardware h200-sxm --topology nvswitch:1 $L8 \
    --plan tp=1 --out "$W/h200x1_real_decode_graph_llama3_8b_q.jsonl" --phase decode --exec graph --batch '5;19' \
    --context 50Ki
unset CUDA_VISIBLE_DEVICES
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_q.tgz" -C "$OUT" validation_q && rm -rf "$W"
ls "$OUT"
