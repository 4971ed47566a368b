#!/usr/bin/env bash
# nvidia-h200, a validation lease of 2026-11-29 (seventh session, lease Z), no calibration in it: a model
# of no preset, written from its published config as a user would (validation/models/qwen2.5-7b.toml:
# d_model 3584, d_ff 18944, 28 query heads over 4 KV heads, widths no calibration measured), all 28 layers
# at P = 1: graph decode ('-graph' profile) at batch x context pairs no record used, eager prefill
# ('-eager') at 12Ki, 40Ki, 96Ki and B = 2 at 24Ki.
#   bash benchmarks/device_h200x1_validation_z.sh      -> $OUT/validation_z.tgz (records, log)
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_z"; mkdir -p "$W"
LOG="$W/run_validation_z.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; git rev-parse HEAD 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-480}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
H1="--hardware h200-sxm --topology nvswitch:1 --plan tp=1"
Q7="--model validation/models/qwen2.5-7b.toml"
step 80 $T1 -m real.run $H1 $Q7 --phase decode --exec graph --batch 6 --context 120Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_7b_z.jsonl"
step 80 $T1 -m real.run $H1 $Q7 --phase decode --exec graph --batch 20 --context 56Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_7b_z.jsonl"
step 80 $T1 -m real.run $H1 $Q7 --phase decode --exec graph --batch 44 --context 12Ki \
    --out "$W/h200x1_real_decode_graph_qwen2_5_7b_z.jsonl"
step 120 $T1 -m real.run $H1 $Q7 --batch 1 --seq '12Ki;40Ki;96Ki' --out "$W/h200x1_real_prefill_qwen2_5_7b_z.jsonl"
step 80 $T1 -m real.run $H1 $Q7 --batch 2 --seq 24Ki --out "$W/h200x1_real_prefill_qwen2_5_7b_z.jsonl"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_z.tgz" -C "$OUT" validation_z && rm -rf "$W"
ls "$OUT"
