set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_calib_c.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
( export CUDA_VISIBLE_DEVICES=0; timeout 150 python3 benchmarks/bench_gemm_duty.py --out "$OUT/h200x1_gemm_duty_raw.json" 2>&1 | tee -a "$LOG" )
OUT="$OUT" bash benchmarks/device_h200x2_ring_gate.sh 2>&1 | tail -40
echo "=== done $(date -u +%T)" | tee -a "$LOG"
