#!/usr/bin/env bash
# nvidia-h200-x2, a diagnosis lease (issue 12, 2026-11-28 fourth session): no validation record here.
# Traces of the P = 2 graph-decode steps that run 4% over the model with their hosts in step (seed, 2 layers,
# B = 32, 52Ki; tp=2 and ring=2 pass-Q), for benchmarks/ring_decompose.py (kernel class by kernel class).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_o"; mkdir -p "$W"
LOG="$W/run_diag_o.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
echo "=== $(date -u +%T)" | tee -a "$LOG"
timeout 200 torchrun --standalone --nproc-per-node 2 -m real.run --hardware h200-sxm --topology nvswitch:2 \
    --layers 2 --out "$W/diag_h200x2_decode_traced_o.jsonl" --phase decode --exec graph --batch 32 \
    --context 52Ki --plan 'tp=2;ring=2' --decode-attn pass-q --no-check --profile-dir "$W/traces" 2>&1 \
    | grep -v -E "Warning|warn\(|^W1|OMP_NUM" | tee -a "$LOG"
echo "=== rc=${PIPESTATUS[0]} $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_o.tgz" -C "$OUT" diag_o && rm -rf "$W"
ls "$OUT"
