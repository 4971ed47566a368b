#!/usr/bin/env bash
# nvidia-h200-x2, the second validation lease of 2026-11-28 (third session), no calibration in it: the
# fused executor (benchmarks/device_h200x2_fused.sh: validation records at P = 1 and 2, bench_ring_vs_cp
# twice per length) and partial prefill with the chunked pipeline (benchmarks/device_h200x2_partial_prefill.sh).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
cat /proc/sys/kernel/random/boot_id | tee -a "$OUT/run_validation_d.log"
git rev-parse HEAD 2>/dev/null | tee -a "$OUT/run_validation_d.log"
BUDGET=${BUDGET:-290} OUT="$OUT" bash benchmarks/device_h200x2_fused.sh 2>&1 | tail -60
OUT="$OUT" bash benchmarks/device_h200x2_partial_prefill.sh 2>&1 | grep -E "real.run|===" | tail -60
echo "=== done $(date -u +%T)" | tee -a "$OUT/run_validation_d.log"
