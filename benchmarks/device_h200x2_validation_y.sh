#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease of 2026-11-29 (sixth session, lease Y), no calibration in it, after every
# model change of the session and the review's calibration fixes: the served models at P = 2 in the plan
# families lease W did not cover, at shapes no calibration and no earlier record used: qwen2.5-72b (2 layers)
# TP = 2 graph decode and prefill; llama3-70b (2 layers) Ulysses = 2 and PP = 2 prefill, ring = 2 (zigzag)
# prefill at 84Ki, ring = 2 all-gather decode.  One file comes back: $OUT/validation_y.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_y"; mkdir -p "$W"
LOG="$W/run_validation_y.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-480}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
H2="--hardware h200-sxm --topology nvswitch:2"
L70="--model llama3-70b --layers 2"; Q72="--model qwen2.5-72b --layers 2"
step 80 $TR -m real.run $H2 $Q72 --phase decode --exec graph --batch '9;30' --context '30Ki;60Ki' --plan tp=2 \
    --out "$W/h200x2_real_decode_graph_qwen2_5_72b_y.jsonl"
step 70 $TR -m real.run $H2 $Q72 --batch 1 --seq 38Ki --plan tp=2 --out "$W/h200x2_real_prefill_qwen2_5_72b_y.jsonl"
step 70 $TR -m real.run $H2 $L70 --batch 1 --seq 40Ki --plan ulysses=2 --out "$W/h200x2_real_prefill_llama3_70b_y.jsonl"
step 70 $TR -m real.run $H2 $L70 --batch 1 --seq 22Ki --plan pp=2 --out "$W/h200x2_real_prefill_llama3_70b_y.jsonl"
step 90 $TR -m real.run $H2 $L70 --batch 1 --seq 84Ki --plan ring=2 --out "$W/h200x2_real_prefill_llama3_70b_y.jsonl"
step 70 $TR -m real.run $H2 $L70 --phase decode --exec graph --batch 16 --context 88Ki --plan ring=2 \
    --decode-attn allgather --out "$W/h200x2_real_decode_graph_llama3_70b_y.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_y.tgz" -C "$OUT" validation_y && rm -rf "$W"
ls "$OUT"
