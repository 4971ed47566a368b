#!/usr/bin/env bash
# nvidia-h200, a diagnosis lease (2026-11-28, sixth session): no validation record here (--no-check).
# Lease S's unseen P = 1 graph-decode steps of llama3-70b and qwen2.5-72b ran 3-9% under the model
# (pessimistic) and llama3-405b's 3.5-5.5% over it; the seed's P = 1 steps lean +3%.  Traces of one step each
# at shapes no validation record uses (llama3-70b B = 10 at 44Ki and B = 28 at 90Ki, llama3-405b B = 12 at
# 20Ki, seed-dense B = 12 at 44Ki), for benchmarks/ring_decompose.py (kernel class by kernel class against
# the model): which ops the model misses, or whether the whole step runs faster (the GPU).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_t"; mkdir -p "$W"
LOG="$W/run_diag_t.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; } 2>&1 | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --phase decode --exec graph --no-check"
step 90 $T1 -m real.run $C --model llama3-70b --layers 2 --batch 10 --context 44Ki \
    --out "$W/diag_h200x1_decode_traced_llama3_70b_t.jsonl" --profile-dir "$W/traces/l70_b10"
step 90 $T1 -m real.run $C --model llama3-70b --layers 2 --batch 28 --context 90Ki \
    --out "$W/diag_h200x1_decode_traced_llama3_70b_t.jsonl" --profile-dir "$W/traces/l70_b28"
step 90 $T1 -m real.run $C --model llama3-405b --layers 1 --batch 12 --context 20Ki \
    --out "$W/diag_h200x1_decode_traced_llama3_405b_t.jsonl" --profile-dir "$W/traces/l405_b12"
step 90 $T1 -m real.run $C --model seed-dense --layers 2 --batch 12 --context 44Ki \
    --out "$W/diag_h200x1_decode_traced_seed_t.jsonl" --profile-dir "$W/traces/seed_b12"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_t.tgz" -C "$OUT" diag_t && rm -rf "$W"
ls "$OUT"
