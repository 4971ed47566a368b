#!/usr/bin/env bash
# nvidia-h200, a diagnosis lease (2026-11-29, sixth session): no validation record here (--no-check).
# llama3-405b's P = 1 graph-decode replay ran 11% longer than the same step's profiled pass (lease T,
# benchmarks/results/decode_trace_p1_20261128/): is it the GPU's power limit under ~3.6 TB/s of sustained
# streaming?  Each step replayed 3000 times (~10 s) while nvidia-smi logs SM and memory clocks, power and
# the active clock-event reasons every 100 ms; llama3-70b (2.2 TB/s, replayed at its profiled time) beside.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_x"; mkdir -p "$W"
LOG="$W/run_diag_x.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; } 2>&1 | tee -a "$LOG"
T1="torchrun --standalone --nproc-per-node 1"
C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --phase decode --exec graph --no-check --reps 3000 --warmup 20"
for name in l405 l70; do
  case $name in
    l405) M="--model llama3-405b --layers 1 --batch 12 --context 20Ki";;
    l70) M="--model llama3-70b --layers 2 --batch 10 --context 44Ki";;
  esac
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,temperature.memory,clocks_event_reasons.active \
      --format=csv -lms 100 > "$W/smi_$name.csv" 2>&1 &
  SMI=$!
  echo "=== $(date -u +%T) $name" | tee -a "$LOG"
  timeout 120 $T1 -m real.run $C $M --out "$W/diag_h200x1_sustained_$name.jsonl" 2>&1 \
      | grep -v -E "Warning|warn\(|^W1|OMP_NUM" | tee -a "$LOG"
  kill $SMI 2>/dev/null
  sleep 3
done
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_x.tgz" -C "$OUT" diag_x && rm -rf "$W"
ls "$OUT"
