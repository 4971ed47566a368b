#!/usr/bin/env bash
# nvidia-h200, a diagnosis lease (2026-11-29, seventh session): no validation record here (--no-check).
# Lease Z's qwen2.5-7b graph-decode steps (28 layers) ran 3.5-5.8% under the model; the traced 4-layer steps
# of another lease (benchmarks/results/decode_trace_q7_20261129/) 1.2-2.5% under it.  The same GPU here times
# both layer counts at both shapes, twice, alternately: does the lean grow with the step's length (28 layers
# stream ~46 GB a step), or was it lease Z's GPU?
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_q7l"; mkdir -p "$W"
LOG="$W/run_diag_q7l.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
  cat /proc/sys/kernel/random/boot_id; } 2>&1 | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --phase decode --exec graph --no-check"
Q7="--model validation/models/qwen2.5-7b.toml"
for round in 1 2; do
  for layers in 28 4; do
    step 60 $T1 -m real.run $C $Q7 --layers $layers --batch 44 --context 12Ki \
        --out "$W/diag_h200x1_decode_layers_qwen2_5_7b.jsonl"
    step 60 $T1 -m real.run $C $Q7 --layers $layers --batch 20 --context 56Ki \
        --out "$W/diag_h200x1_decode_layers_qwen2_5_7b.jsonl"
  done
done
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_q7l.tgz" -C "$OUT" diag_q7l && rm -rf "$W"
ls "$OUT"
