#!/usr/bin/env bash
# nvidia-h200, a calibration lease of its own (2026-11-28, sixth session): no validation record here.
# Few-row GEMMs of 1-4.8 GB weights (benchmarks/bench_gemm_stream.py --big; shapes of no preset's layer or
# LM head), graph-timed as the layer GEMMs were, and the same calls issued eagerly (a diagnostic: does a
# graph capture change cuBLAS's choice, e.g. split-K?).  Lease S's llama3-405b decode steps stream a 4.2 GB
# LM head and 1.7-3.5 GB MLP weights; the profile's curve ended at 940 MB (held flat beyond).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/calib_u"; mkdir -p "$W"
LOG="$W/run_calib_u.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; } 2>&1 | tee -a "$LOG"
echo "=== $(date -u +%T)" | tee -a "$LOG"
timeout 300 python3 benchmarks/bench_gemm_stream.py --big --out "$W/h200x1_gemm_stream_big_raw_20261128.json" 2>&1 \
    | grep -v -E "Warning|warn\(|^W1|OMP_NUM" | tee -a "$LOG"
echo "=== rc=${PIPESTATUS[0]} $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/calib_u.tgz" -C "$OUT" calib_u && rm -rf "$W"
ls "$OUT"
