#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease of 2026-11-28 (sixth session, lease W), no calibration in it, after every
# model change of the session (the weight-streaming curve to 4 GB; a GEMM's memory time as its weight at the
# streamed bandwidth plus the rest; decode attention's query-head FLOPs overlapping its reads): shapes no
# calibration and no earlier record used.  P = 1 (GPU 0 alone): llama3-70b and qwen2.5-72b (2 layers) graph
# decode.  P = 2: llama3-70b (2 layers) TP = 2 and ring = 2 pass-Q graph decode and TP = 2 / ring = 2 prefill,
# seed-dense graph decode, llama3-8b Ulysses prefill.  One file comes back: $OUT/validation_w.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_w"; mkdir -p "$W"
LOG="$W/run_validation_w.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-480}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
T1="torchrun --standalone --nproc-per-node 1"
H1="--hardware h200-sxm --topology nvswitch:1"
H2="--hardware h200-sxm --topology nvswitch:2"
L70="--model llama3-70b --layers 2"; Q72="--model qwen2.5-72b --layers 2"
export CUDA_VISIBLE_DEVICES=0
step 80 $T1 -m real.run $H1 $L70 --plan tp=1 --phase decode --exec graph --batch '11;44' --context '28Ki;120Ki' \
    --out "$W/h200x1_real_decode_graph_llama3_70b_w.jsonl"
step 60 $T1 -m real.run $H1 $Q72 --plan tp=1 --phase decode --exec graph --batch 36 --context 52Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_72b_w.jsonl"
unset CUDA_VISIBLE_DEVICES
step 90 $TR -m real.run $H2 $L70 --phase decode --exec graph --batch '20;48' --context '34Ki;72Ki' --plan tp=2 \
    --out "$W/h200x2_real_decode_graph_llama3_70b_w.jsonl"
step 60 $TR -m real.run $H2 $L70 --phase decode --exec graph --batch 20 --context 72Ki --plan ring=2 \
    --decode-attn pass-q --out "$W/h200x2_real_decode_graph_llama3_70b_w.jsonl"
step 80 $TR -m real.run $H2 $L70 --batch 1 --seq 26Ki --plan tp=2 --out "$W/h200x2_real_prefill_llama3_70b_w.jsonl"
step 80 $TR -m real.run $H2 $L70 --batch 1 --seq 52Ki --plan ring=2 --out "$W/h200x2_real_prefill_llama3_70b_w.jsonl"
step 70 $TR -m real.run $H2 --layers 2 --phase decode --exec graph --batch 13 --context 50Ki \
    --plan 'tp=2;ring=2' --decode-attn pass-q --out "$W/h200x2_real_decode_graph_w.jsonl"
step 70 $TR -m real.run $H2 --model llama3-8b --layers 4 --batch 1 --seq 58Ki --plan ulysses=2 \
    --out "$W/h200x2_real_prefill_llama3_8b_w.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_w.tgz" -C "$OUT" validation_w && rm -rf "$W"
ls "$OUT"
