#!/usr/bin/env bash
# nvidia-h200, a validation lease of 2026-11-28 (sixth session), no calibration in it: the served models the
# committed records never measured (issue 12's "trust beyond the corner"; issue 14's presets), at P = 1 with
# their layer count cut so that the weights fit one GPU: llama3-70b and qwen2.5-72b (2 layers, QKV bias on
# qwen) and llama3-405b (1 layer).  Their GEMM shapes (d_model 8192/16384, d_ff 28672/29568/53248) and head
# pairs (64/8, 128/8 query/KV heads) are outside every calibration run; lengths, batches and contexts too
# (prefill 18Ki, 20Ki, 22Ki, 50Ki, 54Ki; decode contexts 26Ki, 30Ki, 38Ki, 58Ki, 70Ki; batches 5, 6, 9, 13,
# 19, 33, 40: `ringsim validate` counts them unseen).  Graph decode (the '-graph' profile), eager prefill
# (the '-eager' profile), and the fused executor against the ideal profile (one prefill, one decode).
#   bash benchmarks/device_h200x1_validation_s.sh      -> $OUT/validation_s.tgz (records, log)
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_s"; mkdir -p "$W"
LOG="$W/run_validation_s.log"
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
step 90 $T1 -m real.run $H1 $L70 --phase decode --exec graph --batch '6;19;40' --context '30Ki;70Ki' \
    --out "$W/h200x1_real_decode_graph_llama3_70b_s.jsonl"
step 90 $T1 -m real.run $H1 $Q72 --phase decode --exec graph --batch '5;13;33' --context '26Ki;58Ki' \
    --out "$W/h200x1_real_decode_graph_qwen2_5_72b_s.jsonl"
step 60 $T1 -m real.run $H1 $L405 --phase decode --exec graph --batch '9;19' --context 38Ki \
    --out "$W/h200x1_real_decode_graph_llama3_405b_s.jsonl"
step 60 $T1 -m real.run $H1 $L70 --fp8 ffn --phase decode --exec graph --batch 19 --context 70Ki \
    --out "$W/h200x1_real_decode_graph_llama3_70b_fp8_s.jsonl"
step 90 $T1 -m real.run $H1 $L70 --batch 1 --seq '20Ki;54Ki' --out "$W/h200x1_real_prefill_llama3_70b_s.jsonl"
step 90 $T1 -m real.run $H1 $Q72 --batch 1 --seq '22Ki;50Ki' --out "$W/h200x1_real_prefill_qwen2_5_72b_s.jsonl"
step 60 $T1 -m real.run $H1 $L405 --batch 1 --seq 18Ki --out "$W/h200x1_real_prefill_llama3_405b_s.jsonl"
step 60 $T1 -m real.run $H1 $L70 --batch 2 --seq 12Ki --out "$W/h200x1_real_prefill_llama3_70b_s.jsonl"
F="--exec-mode fused --check-seq 0 --reps 5 --warmup 1 --timeout-s 150"
step 90 $T1 -m real.run $H1 $L70 $F --exec graph --batch 1 --seq 22Ki \
    --out "$W/h200x1_real_prefill_graph_fused_llama3_70b_s.jsonl"
step 90 $T1 -m real.run $H1 $L70 $F --exec graph --phase decode --batch 6 --context 26Ki \
    --out "$W/h200x1_real_decode_graph_fused_llama3_70b_s.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_s.tgz" -C "$OUT" validation_s && rm -rf "$W"
ls "$OUT"
