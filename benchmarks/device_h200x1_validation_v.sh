#!/usr/bin/env bash
# nvidia-h200, a validation lease of 2026-11-28 (sixth session, lease V), no calibration in it, after every
# model change of the session (the weight-streaming curve to 4 GB, a GEMM's memory time as its weight at the
# streamed bandwidth plus the rest): the served models again at P = 1, layers cut to fit one GPU, at shapes
# no calibration and no earlier record used (decode contexts 20Ki, 24Ki, 40Ki, 84Ki, 100Ki; batches 3, 5,
# 8, 14, 24, 27, 52; prefill 10Ki, 30Ki, 36Ki, 44Ki): llama3-70b and qwen2.5-72b (2 layers), llama3-405b
# (1 layer); graph decode ('-graph' profile), eager prefill ('-eager'), the fused executor (ideal profile).
#   bash benchmarks/device_h200x1_validation_v.sh      -> $OUT/validation_v.tgz (records, log)
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_v"; mkdir -p "$W"
LOG="$W/run_validation_v.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-540}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
H1="--hardware h200-sxm --topology nvswitch:1 --plan tp=1"
L70="--model llama3-70b --layers 2"; Q72="--model qwen2.5-72b --layers 2"; L405="--model llama3-405b --layers 1"
step 90 $T1 -m real.run $H1 $L70 --phase decode --exec graph --batch '3;24;52' --context '20Ki;100Ki' \
    --out "$W/h200x1_real_decode_graph_llama3_70b_v.jsonl"
step 90 $T1 -m real.run $H1 $Q72 --phase decode --exec graph --batch '8;27' --context '40Ki;84Ki' \
    --out "$W/h200x1_real_decode_graph_qwen2_5_72b_v.jsonl"
step 60 $T1 -m real.run $H1 $L405 --phase decode --exec graph --batch '5;14' --context 24Ki \
    --out "$W/h200x1_real_decode_graph_llama3_405b_v.jsonl"
step 60 $T1 -m real.run $H1 $L70 --fp8 linear --phase decode --exec graph --batch 24 --context 40Ki \
    --out "$W/h200x1_real_decode_graph_llama3_70b_fp8_v.jsonl"
step 90 $T1 -m real.run $H1 $L70 --batch 1 --seq '30Ki;44Ki' --out "$W/h200x1_real_prefill_llama3_70b_v.jsonl"
step 90 $T1 -m real.run $H1 $Q72 --batch 1 --seq 36Ki --out "$W/h200x1_real_prefill_qwen2_5_72b_v.jsonl"
step 60 $T1 -m real.run $H1 $L405 --batch 1 --seq 10Ki --out "$W/h200x1_real_prefill_llama3_405b_v.jsonl"
F="--exec-mode fused --check-seq 0 --reps 5 --warmup 1 --timeout-s 150"
step 90 $T1 -m real.run $H1 $Q72 $F --exec graph --batch 1 --seq 30Ki \
    --out "$W/h200x1_real_prefill_graph_fused_qwen2_5_72b_v.jsonl"
step 90 $T1 -m real.run $H1 $Q72 $F --exec graph --phase decode --batch 14 --context 20Ki \
    --out "$W/h200x1_real_decode_graph_fused_qwen2_5_72b_v.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_v.tgz" -C "$OUT" validation_v && rm -rf "$W"
ls "$OUT"
