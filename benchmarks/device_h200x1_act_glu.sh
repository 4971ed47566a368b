#!/usr/bin/env bash
# nvidia-h200, a calibration lease (issue 12/14, 2026-11-28 fourth session): no validation record here.
#  1. the executor's SwiGLU against its GELU (benchmarks/bench_act_glu.py) -> glu_act_traffic, floor ratio;
#  2. cuDNN's and flash's launch grids for decode calls (benchmarks/bench_decode_kernel_grid.py): diagnostic.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/calib_h"; mkdir -p "$W"
LOG="$W/run_calib_h.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
step 120 python3 benchmarks/bench_act_glu.py --out "$W/h200x1_act_glu_raw_20261128.json"
step 200 python3 benchmarks/bench_decode_kernel_grid.py --out "$W/h200x1_decode_kernel_grid_20261128.json"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/calib_h.tgz" -C "$OUT" calib_h && rm -rf "$W"
ls "$OUT"
