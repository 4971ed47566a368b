#!/usr/bin/env bash
# nvidia-h200, a validation lease of 2026-11-29 (eighth session, lease AA), no calibration in it: a second
# model of no preset, written from its published config as a user would (validation/models/qwen2.5-32b.toml:
# d_model 5120, d_ff 27648, 40 query heads over 8 KV heads; widths no calibration measured), 16 of its 64
# layers at P = 1 (one H200 holds the BF16 executor and the check's FP32 reference): graph decode
# ('-graph' profile) at batch x context pairs no record used, eager prefill ('-eager') at 18Ki, 44Ki and
# B = 2 at 26Ki.
#   bash benchmarks/device_h200x1_validation_aa.sh      -> $OUT/validation_aa.tgz (records, log)
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_aa"; mkdir -p "$W"
LOG="$W/run_validation_aa.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; git rev-parse HEAD 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-480}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
H1="--hardware h200-sxm --topology nvswitch:1 --plan tp=1"
Q32="--model validation/models/qwen2.5-32b.toml --layers 16"
step 80 $T1 -m real.run $H1 $Q32 --phase decode --exec graph --batch 10 --context 72Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_32b_aa.jsonl"
step 80 $T1 -m real.run $H1 $Q32 --phase decode --exec graph --batch 28 --context 20Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_32b_aa.jsonl"
step 80 $T1 -m real.run $H1 $Q32 --phase decode --exec graph --batch 52 --context 9Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_32b_aa.jsonl"
step 150 $T1 -m real.run $H1 $Q32 --batch 1 --seq '18Ki;44Ki' --out "$W/h200x1_real_prefill_qwen2_5_32b_aa.jsonl"
step 90 $T1 -m real.run $H1 $Q32 --batch 2 --seq 26Ki --out "$W/h200x1_real_prefill_qwen2_5_32b_aa.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_aa.tgz" -C "$OUT" validation_aa && rm -rf "$W"
ls "$OUT"
