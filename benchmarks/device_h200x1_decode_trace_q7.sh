#!/usr/bin/env bash
# nvidia-h200, a diagnosis lease (2026-11-29, seventh session): no validation record here (--no-check).
# Lease Z's qwen2.5-7b graph-decode steps (a model of no preset, validation/models/qwen2.5-7b.toml) ran
# 3.5-5.8% faster than the model while its prefill matched (+0.3..+2.0%): traces of one step at B = 44 x
# 12Ki and B = 20 x 56Ki (4 layers, the same per-layer shapes) for benchmarks/ring_decompose.py, kernel class
# by kernel class against the model: one class (attention with 7 query heads per KV head?) or all of them.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_q7"; mkdir -p "$W"
LOG="$W/run_diag_q7.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; } 2>&1 | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --phase decode --exec graph --no-check"
Q7="--model validation/models/qwen2.5-7b.toml --layers 4"
step 90 $T1 -m real.run $C $Q7 --batch 44 --context 12Ki \
    --out "$W/diag_h200x1_decode_traced_qwen2_5_7b.jsonl" --profile-dir "$W/traces/q7_b44"
step 90 $T1 -m real.run $C $Q7 --batch 20 --context 56Ki \
    --out "$W/diag_h200x1_decode_traced_qwen2_5_7b.jsonl" --profile-dir "$W/traces/q7_b20"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_q7.tgz" -C "$OUT" diag_q7 && rm -rf "$W"
ls "$OUT"
