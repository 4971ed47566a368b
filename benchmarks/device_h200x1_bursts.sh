#!/usr/bin/env bash
# nvidia-h200, a calibration lease (2026-11-29, seventh session): no validation record here.  Compute-bound
# kernels in busy periods separated by idle ones (benchmarks/bench_gemm_bursts.py): the pipeline duty
# effect (a stage idle part of the pass runs its GEMMs faster), by busy-period length and duty, with
# nvidia-smi logging SM clock, power and the clock-event reasons every 50 ms beside it.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/bursts"; mkdir -p "$W"
LOG="$W/run_bursts.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; git rev-parse HEAD 2>/dev/null; } 2>&1 | tee -a "$LOG"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 50 > "$W/smi_bursts.csv" 2>&1 &
SMI=$!
echo "=== $(date -u +%T) bench_gemm_bursts" | tee -a "$LOG"
timeout 420 python3 benchmarks/bench_gemm_bursts.py --out "$W/h200x1_gemm_bursts_raw.json" 2>&1 | tee -a "$LOG"
kill $SMI 2>/dev/null
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/bursts.tgz" -C "$OUT" bursts && rm -rf "$W"
ls -la "$OUT"
