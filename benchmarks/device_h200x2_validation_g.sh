#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease of 2026-11-28 (fourth session), no calibration in it: records at shapes
# no calibration file and no earlier record used (batches 10, 14, 28, 36; contexts 28Ki, 56Ki, 72Ki, 80Ki;
# prefill lengths 30Ki, 52Ki, 60Ki, 92Ki), P = 1 (GPU 0 alone) and P = 2, seed model and llama3-8b, prefill
# (eager) and graph decode, BF16 and (llama3-8b) FP8 MLP.  Only one file comes back: $OUT/validation_g.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_g"; mkdir -p "$W"
LOG="$W/run_validation_g.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
T1="torchrun --standalone --nproc-per-node 1"
L8="--model llama3-8b --layers 4"
H1="--hardware h200-sxm --topology nvswitch:1"
H2="--hardware h200-sxm --topology nvswitch:2"
# P = 1 (GPU 0 alone)
export CUDA_VISIBLE_DEVICES=0
step 120 $T1 -m real.run $H1 $L8 --plan tp=1 --out "$W/h200x1_real_decode_graph_llama3_8b_g.jsonl" --phase decode \
    --exec graph --batch '10;28' --context '28Ki;56Ki' --fp8 'none;ffn'
step 90 $T1 -m real.run $H1 --layers 2 --plan tp=1 --out "$W/h200x1_real_decode_graph_g.jsonl" --phase decode \
    --exec graph --batch '14;36' --context '72Ki'
step 120 $T1 -m real.run $H1 $L8 --plan tp=1 --out "$W/h200x1_real_prefill_llama3_8b_g.jsonl" --batch 1 --seq '30Ki;60Ki'
unset CUDA_VISIBLE_DEVICES
# P = 2
step 120 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_decode_graph_g.jsonl" --phase decode --exec graph \
    --batch '14;28' --context '56Ki;80Ki' --plan tp=2
step 150 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_decode_graph_g.jsonl" --phase decode --exec graph \
    --batch '14;28' --context '56Ki;80Ki' --plan ring=2 --decode-attn 'pass-q;pass-kv;allgather'
step 120 $TR -m real.run $H2 $L8 --out "$W/h200x2_real_decode_graph_llama3_8b_g.jsonl" --phase decode --exec graph \
    --batch '14;36' --context 60Ki --plan 'tp=2;ring=2' --decode-attn pass-q
step 150 $TR -m real.run $H2 $L8 --out "$W/h200x2_real_prefill_llama3_8b_g.jsonl" --batch 1 --seq '30Ki;60Ki' \
    --plan 'ring=2;ulysses=2;tp=2'
step 150 $TR -m real.run $H2 --layers 2 --out "$W/h200x2_real_prefill_g.jsonl" --batch 1 --seq '52Ki;92Ki' \
    --plan 'ring=2;ulysses=2' --ring-variant 'zigzag;striped'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_g.tgz" -C "$OUT" validation_g && rm -rf "$W"
ls "$OUT"
