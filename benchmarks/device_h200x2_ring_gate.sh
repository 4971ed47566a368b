#!/usr/bin/env bash
# nvidia-h200-x2 (issue 12): the kernel-boundary gate of a transfer beside an SM-filling kernel, as physics.
# benchmarks/bench_ring_gate.py: cuDNN/flash attention, a large GEMM and an elementwise add on the compute
# stream, the ring's K/V send/recv (and an all-to-all) posted on a second stream at 0.25/0.6 of the
# kernel's time (or before it), both ranks or one (peer), attention split into 1/2/4 kernels; CUPTI kernel
# timestamps per repetition.  Ring-local lengths/batches no validation record uses.  About 1-2 minutes.
# Output: $OUT/h200x2_ring_gate_raw.json (raw, with provenance; fitted by `ringsim calibrate --from-raw`)
# and $OUT/run_ring_gate.log.  Then (GEMM_ROWS=0 skips it, ~30 s, one GPU): the layer GEMMs at 8Ki-128Ki
# rows (`python3 -m real.microbench --suites gemm-rows`) -> $OUT/h200x1_gemm_rows_raw.json; their clock under
# load is `benchmarks/bench_gemm_duty.py`'s question.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_ring_gate.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|USDT" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
step 300 torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_gate.py --out "$OUT/h200x2_ring_gate_raw.json" ${GATE_ARGS:-}
[ "${GEMM_ROWS:-1}" = 0 ] || step 150 python3 -m real.microbench --suites gemm-rows --model seed-dense \
    --out "$OUT/h200x1_gemm_rows_raw.json"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
