#!/usr/bin/env bash
# nvidia-h200-x2 or -x4, a calibration lease (issue 12, 2026-11-28 fifth session): no validation record.
# The hosts' start skew of graph-decode steps at every group size the machine has (2, and 4 on x4), seed
# model at 1, 2, 4 and 8 layers, tp and ring pass-Q, B = 4 at 8Ki (no validation record's shape): the
# real.run records (checks skipped: only the timing and hosts fields are read) and
# benchmarks/start_skew_raw.py's raw file.  One file comes back: $OUT/skew.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/skew"; mkdir -p "$W"
LOG="$W/run_skew.log"
N=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
for P in 2 4; do
  [ "$P" -gt "$N" ] && continue
  for L in 1 2 4 8; do
    step 120 torchrun --standalone --nproc-per-node $P -m real.run --hardware h200-sxm --topology nvswitch:$P \
        --layers $L --phase decode --exec graph --batch 4 --context 8Ki --plan "tp=$P;ring=$P" --decode-attn pass-q \
        --reps 9 --no-check --out "$W/h200x${N}_start_skew_p${P}.jsonl"
  done
done
step 60 python3 benchmarks/start_skew_raw.py "$W/h200x${N}_start_skew_raw_20261128.json" "$W"/h200x${N}_start_skew_p*.jsonl
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/skew.tgz" -C "$OUT" skew && rm -rf "$W"
ls "$OUT"
