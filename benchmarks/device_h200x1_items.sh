#!/usr/bin/env bash
# nvidia-h200, a calibration lease (issue 12, 2026-11-28 fifth session): no validation record here.
#  1. decode attention at every batch 1-96 for the presets' TP head pairs (bench_decode_grid.py --subset
#     items): the read-time factor at each count of work items;
#  2. the executor's small decode kernels by rows (bench_op_floor_rows.py): diagnostic.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/calib_p"; mkdir -p "$W"
LOG="$W/run_calib_p.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
step 330 python3 benchmarks/bench_decode_grid.py --subset items --budget-s 300 --out "$W/h200x1_decode_grid_items_raw_20261128.json"
step 150 python3 benchmarks/bench_op_floor_rows.py --out "$W/h200x1_op_floor_rows_20261128.json"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/calib_p.tgz" -C "$OUT" calib_p && rm -rf "$W"
ls "$OUT"
