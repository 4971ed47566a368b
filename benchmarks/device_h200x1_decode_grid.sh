#!/usr/bin/env bash
# nvidia-h200 (issue 12): decode attention across query heads per GPU {4..64} x KV heads per GPU {1..32}
# x batch {1..64} x context per GPU {2Ki..256Ki} (plus held-out points between them), flash and cuDNN as
# the executor calls them (real/kernels.py, GQA expanded), each replayed from a CUDA graph.  A calibration
# supplement: fitted with `ringsim calibrate --from-raw <run> --from-raw <this> ...`.  About 3 minutes.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_decode_grid.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
step 330 python3 benchmarks/bench_decode_grid.py --out "$OUT/h200x1_decode_grid_raw.json"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
