#!/usr/bin/env bash
# nvidia-h200-x4, a validation lease of 2026-11-28 (fifth session), no calibration in it, after the decode
# items grid and the floors by rows (commit 0af17f9): P = 4 graph decode and prefill at shapes no
# calibration and no earlier record used (batches 7, 13, 30; contexts 46Ki, 94Ki; prefill 94Ki).
# One file comes back: $OUT/validation_o.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_o"; mkdir -p "$W"
LOG="$W/run_validation_o.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR4="torchrun --standalone --nproc-per-node 4"
H4="--hardware h200-sxm --topology nvswitch:4"
L8="--model llama3-8b --layers 4"
step 200 $TR4 -m real.run $H4 --layers 2 --out "$W/h200x4_real_decode_graph_o.jsonl" --phase decode \
    --exec graph --batch '7;13' --context '46Ki;94Ki' --plan 'tp=4;ring=4' --decode-attn 'pass-q;allgather'
step 150 $TR4 -m real.run $H4 $L8 --out "$W/h200x4_real_decode_graph_llama3_8b_o.jsonl" --phase decode \
    --exec graph --batch '13;30' --context 94Ki --plan 'tp=4;ring=4' --decode-attn 'pass-q;allgather'
step 150 $TR4 -m real.run $H4 --layers 2 --out "$W/h200x4_real_prefill_o.jsonl" --batch 1 --seq 94Ki \
    --plan 'ring=4;ulysses=4;tp=4;tp=2,ring=2'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_o.tgz" -C "$OUT" validation_o && rm -rf "$W"
ls "$OUT"
