#!/usr/bin/env bash
# nvidia-h100-x1 (issue 5, the H100 profile held against H100 measurements at P = 1): calibration (eager
# and CUDA-graph suites; one GPU, so no communication), then real.run on the same lease: prefill (eager,
# device-bound) B 1 and 4, 16Ki-128Ki, 1 and 4 layers; decode replayed from CUDA graphs, B 1, 16, 64,
# context 16Ki-256Ki, 2 layers.  Outputs under $OUT.
set -u
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_h100.log"; REC="$OUT/h100x1_real.jsonl"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 1"
step 300 $TR -m ringsim calibrate --base h100-sxm-published --name h100-sxm --out "$OUT/h100-sxm.toml" \
    --raw-out "$OUT/h100x1_raw.json"
C="--hardware h100-sxm --topology nvswitch:1 --plan tp=1 --out $REC"
step 200 $TR -m real.run $C --batch '1;4' --seq '16Ki;64Ki;128Ki' --layers '1;4'
step 150 $TR -m real.run $C --phase decode --exec graph --layers 2 --batch '1;16;64' --context '16Ki;64Ki;256Ki'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
