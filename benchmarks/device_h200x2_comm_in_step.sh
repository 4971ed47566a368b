#!/usr/bin/env bash
# nvidia-h200-x2, a calibration lease (issue 12, 2026-11-28 fourth session): no validation record here.
# A collective's cost inside a forward pass against back to back (benchmarks/bench_comm_in_step.py).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/calib_k"; mkdir -p "$W"
LOG="$W/run_calib_k.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
echo "=== $(date -u +%T)" | tee -a "$LOG"
timeout 200 torchrun --standalone --nproc-per-node 2 benchmarks/bench_comm_in_step.py \
    --out "$W/h200x2_comm_in_step_raw_20261128k.json" 2>&1 | grep -v -E "Warning|warn\(|^W1|OMP_NUM" | tee -a "$LOG"
echo "=== rc=${PIPESTATUS[0]} $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/calib_k.tgz" -C "$OUT" calib_k && rm -rf "$W"
ls "$OUT"
