#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease of 2026-11-28 (fifth session), no calibration in it, after every model
# change of the session (items grid, floors by rows, the hosts' start skew): graph decode and prefill at
# shapes no calibration and no earlier record used (batches 15, 23; contexts 42Ki, 78Ki; prefill 42Ki,
# 78Ki), P = 1 (GPU 0 alone) and P = 2, seed model and llama3-8b (BF16 and FP8 MLP).
# One file comes back: $OUT/validation_r.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_r"; mkdir -p "$W"
LOG="$W/run_validation_r.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
T1="torchrun --standalone --nproc-per-node 1"
L8="--model llama3-8b --layers 4"
H1="--hardware h200-sxm --topology nvswitch:1"
H2="--hardware h200-sxm --topology nvswitch:2"
export CUDA_VISIBLE_DEVICES=0
step 150 $T1 -m real.run $H1 $L8 --plan tp=1 --out "$W/h200x1_real_decode_graph_llama3_8b_r.jsonl" --phase decode \
    --exec graph --batch '15;23' --context '42Ki;78Ki'
step 120 $T1 -m real.run $H1 $L8 --fp8 ffn --plan tp=1 --out "$W/h200x1_real_decode_graph_llama3_8b_fp8_r.jsonl" \
    --phase decode --exec graph --batch '15;23' --context 78Ki
step 150 $T1 -m real.run $H1 --layers 2 --plan tp=1 --out "$W/h200x1_real_decode_graph_r.jsonl" --phase decode \
    --exec graph --batch '15;23' --context '42Ki;78Ki'
unset CUDA_VISIBLE_DEVICES
step 240 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_decode_graph_r.jsonl" --phase decode --exec graph \
    --batch '15;23' --context '42Ki;78Ki' --plan 'tp=2;ring=2' --decode-attn 'pass-q;allgather'
step 150 $TR -m real.run $H2 $L8 --out "$W/h200x2_real_decode_graph_llama3_8b_r.jsonl" --phase decode --exec graph \
    --batch '15;23' --context 78Ki --plan 'tp=2;ring=2' --decode-attn 'pass-q'
step 150 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_prefill_r.jsonl" --batch 1 --seq '42Ki;78Ki' \
    --plan 'ring=2;ulysses=2'
step 120 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_prefill_r.jsonl" --batch 1 --seq 78Ki \
    --plan ring=2 --ring-variant striped
step 150 $TR -m real.run $H2 $L8 --out "$W/h200x2_real_prefill_llama3_8b_r.jsonl" --batch 1 --seq 78Ki \
    --plan 'ring=2;ulysses=2'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_r.tgz" -C "$OUT" validation_r && rm -rf "$W"
ls "$OUT"
