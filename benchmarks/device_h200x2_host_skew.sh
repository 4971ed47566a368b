#!/usr/bin/env bash
# nvidia-h200-x2, a diagnosis lease (issue 12, 2026-11-28 fourth session): no validation record here.
# Graph decode steps at P = 2 at shapes no record uses, with real.run's new per-pass host diagnostics
# (the hosts' start skew and enqueue time, record field "hosts"), under both timing protocols, and the
# same steps at P = 1: does the measured step minus the model follow the hosts' skew?
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/diag_n"; mkdir -p "$W"
LOG="$W/run_diag_n.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
H2="--hardware h200-sxm --topology nvswitch:2"
for t in barrier aligned; do
  step 150 $TR -m real.run $H2 --layers 2 --out "$W/diag_h200x2_decode_hosts_$t.jsonl" --phase decode --exec graph \
      --batch '8;32' --context '20Ki;52Ki' --plan 'tp=2;ring=2' --decode-attn pass-q --timing $t --no-check
  step 120 $TR -m real.run $H2 --model llama3-8b --layers 4 --out "$W/diag_h200x2_decode_hosts_llama3_8b_$t.jsonl" \
      --phase decode --exec graph --batch '8;32' --context 52Ki --plan 'tp=2;ring=2' --decode-attn pass-q \
      --timing $t --no-check
done
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/diag_n.tgz" -C "$OUT" diag_n && rm -rf "$W"
ls "$OUT"
