#!/usr/bin/env bash
# nvidia-h200-x4 (issue 12: the ring bias at P = 4): where a ring layer's time goes, op by op.
# Traces (one warmed-up profiled pass per rank) of ring=4 (zigzag, plain) and tp=4 at one layer, the
# records they belong to, and the attention-beside-exchange measurement with four ranks exchanging
# (bench_ring_causes at ring-local lengths 12Ki and 28Ki, as the P = 2 calibration file).  Diagnostic:
# judged by benchmarks/ring_decompose.py; the records are validation records of their own lease.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_x4_ring_bias.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 4"
P="$OUT/${RECORDS:-h200x4_real_prefill_ringbias}.jsonl"
C4="--hardware h200-sxm --topology nvswitch:4"
step 150 $TR -m real.run $C4 --out "$P" --batch 1 --plan ring=4 --ring-variant 'zigzag;plain' --seq 96Ki --layers 1 \
    --profile-dir "$OUT/traces"
step 100 $TR -m real.run $C4 --out "$P" --batch 1 --plan 'tp=4;ulysses=4' --seq 96Ki --layers 1 --profile-dir "$OUT/traces"
[ "${TRACES_ONLY:-0}" = 1 ] || step 150 $TR benchmarks/bench_ring_causes.py --lengths 12288,28672 --batches 1 --kernels cudnn,flash --reps 7 \
    --out "$OUT/h200x4_ring_causes.json"
tar czf "$OUT/traces.tgz" -C "$OUT" traces && rm -r "$OUT/traces"  # the device tool returns few files
echo "=== done $(date -u +%T)" | tee -a "$LOG"
