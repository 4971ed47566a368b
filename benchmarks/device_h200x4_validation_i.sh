#!/usr/bin/env bash
# nvidia-h200-x4, a validation lease of 2026-11-28 (fourth session), no calibration in it: P = 4 records at
# shapes no calibration and no earlier record used, for llama3-8b (4 layers; none at P = 4 before) and the
# seed model (2 layers): prefill 76Ki and 116Ki (ring=4 zigzag and striped, ulysses=4, tp=4, tp=2 x ring=2),
# graph decode B = 18 and 44 at 88Ki (tp=4; ring=4 pass-Q and all-gather).  One file comes back:
# $OUT/validation_i.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_i"; mkdir -p "$W"
LOG="$W/run_validation_i.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR4="torchrun --standalone --nproc-per-node 4"
H4="--hardware h200-sxm --topology nvswitch:4"
L8="--model llama3-8b --layers 4"
step 150 $TR4 -m real.run $H4 $L8 --out "$W/h200x4_real_prefill_llama3_8b_i.jsonl" --batch 1 --seq '76Ki;116Ki' \
    --plan 'ring=4;tp=2,ring=2'
step 120 $TR4 -m real.run $H4 $L8 --out "$W/h200x4_real_prefill_llama3_8b_i.jsonl" --batch 1 --seq '76Ki;116Ki' \
    --plan 'ulysses=4;tp=4'
step 120 $TR4 -m real.run $H4 --layers 2 --out "$W/h200x4_real_prefill_i.jsonl" --batch 1 --seq '76Ki;116Ki' \
    --plan 'ring=4' --ring-variant striped
step 120 $TR4 -m real.run $H4 $L8 --out "$W/h200x4_real_decode_graph_llama3_8b_i.jsonl" --phase decode \
    --exec graph --batch '18;44' --context 88Ki --plan 'tp=4;ring=4' --decode-attn 'pass-q;allgather'
step 120 $TR4 -m real.run $H4 --layers 2 --out "$W/h200x4_real_decode_graph_i.jsonl" --phase decode \
    --exec graph --batch '18;44' --context 88Ki --plan 'tp=4;ring=4' --decode-attn 'pass-q;allgather'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_i.tgz" -C "$OUT" validation_i && rm -rf "$W"
ls "$OUT"
