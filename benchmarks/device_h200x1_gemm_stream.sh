#!/usr/bin/env bash
# nvidia-h200, a calibration lease (issue 12/14, 2026-11-28 fourth session): no validation record here.
# GEMMs of few rows with their weights rotated out of L2 (benchmarks/bench_gemm_stream.py).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/calib_l"; mkdir -p "$W"
LOG="$W/run_calib_l.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
echo "=== $(date -u +%T)" | tee -a "$LOG"
timeout 400 python3 benchmarks/bench_gemm_stream.py --out "$W/h200x1_gemm_stream_raw_20261128.json" 2>&1 \
    | grep -v -E "Warning|warn\(|^W1|OMP_NUM" | tee -a "$LOG"
echo "=== rc=${PIPESTATUS[0]} $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/calib_l.tgz" -C "$OUT" calib_l && rm -rf "$W"
ls "$OUT"
