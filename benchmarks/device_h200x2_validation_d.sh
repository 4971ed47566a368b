#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease of 2026-11-28 (third session), no calibration in it.  Only one file
# comes back: $OUT/validation_d.tgz.
#  1. the fused executor (benchmarks/device_h200x2_fused.sh: records at P = 1 and 2, bench_ring_vs_cp);
#  2. the P = 2 records of device_h200x2_validation_c.sh whose files the device tool did not return
#     (seed prefill, llama3-8b graph decode), and its graph decode steps again with the aligned start
#     fixed (the GPU spins while the host enqueues the pass), beside --timing barrier.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; W="$OUT/validation_d"; mkdir -p "$W"
LOG="$W/run_validation_d.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
git rev-parse HEAD 2>/dev/null | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
BUDGET=${BUDGET:-280} OUT="$W" bash benchmarks/device_h200x2_fused.sh 2>&1 | grep -E "real.run|=== |ratio|least" | tail -40
TR="torchrun --standalone --nproc-per-node 2"
C2="--hardware h200-sxm --topology nvswitch:2 --layers 2"
P="$W/h200x2_real_prefill_d.jsonl"; D="$W/h200x2_real_decode_graph_d.jsonl"
step 100 $TR -m real.run $C2 --out "$P" --batch 1 --seq '44Ki;84Ki' --plan ring=2 --ring-variant 'zigzag;plain;striped'
step 80 $TR -m real.run $C2 --out "$P" --batch 1 --seq '44Ki;84Ki' --plan 'ulysses=2;tp=2'
step 60 $TR -m real.run $C2 --out "$P" --batch 2 --seq 44Ki --plan pp=2 --microbatches 2
step 80 $TR -m real.run $C2 --out "$D" --phase decode --exec graph --batch '6;20' --context '40Ki;100Ki' --plan tp=2
step 100 $TR -m real.run $C2 --out "$D" --phase decode --exec graph --batch 20 --context '40Ki;100Ki' --plan ring=2 \
    --decode-attn 'pass-q;allgather;pass-kv'
step 80 $TR -m real.run $C2 --out "$W/h200x2_real_decode_graph_barrier_d.jsonl" --timing barrier --phase decode \
    --exec graph --batch '6;20' --context 40Ki --plan 'tp=2;ring=2' --decode-attn pass-q
step 80 $TR -m real.run --hardware h200-sxm --topology nvswitch:2 --model llama3-8b --layers 4 \
    --out "$W/h200x2_real_decode_graph_llama3_8b_d.jsonl" --phase decode --exec graph --batch 20 --context 40Ki \
    --plan 'tp=2;ring=2' --decode-attn pass-q
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/validation_d.tgz" -C "$OUT" validation_d && rm -rf "$W" "$OUT"/*.tgz.tmp
ls "$OUT"
