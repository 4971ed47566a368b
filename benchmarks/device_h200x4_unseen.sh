#!/usr/bin/env bash
# nvidia-h200-x4 (issue 12: P = 4, where the ring bias was reported to grow): validation records at
# shapes no calibration run measured, in a lease of its own, judged against the h200-sxm profiles
# (communication calibrated at 2 GPUs; groups of 4 use the published per-hop latency).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_x4.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
nvidia-smi topo -m | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 4"
P="$OUT/h200x4_real_prefill_unseen.jsonl"; D="$OUT/h200x4_real_decode_graph_unseen.jsonl"
C4="--hardware h200-sxm --topology nvswitch:4"
step 150 $TR -m real.run $C4 --out "$P" --batch 1 --plan ring=4 --ring-variant 'zigzag;plain;striped' --seq 72Ki --layers 2
step 120 $TR -m real.run $C4 --out "$P" --batch 1 --plan 'tp=4;ulysses=4;tp=2,ring=2' --seq 72Ki --layers 2
step 80 $TR -m real.run $C4 --out "$P" --batch 2 --plan tp=2,pp=2 --microbatches 2 --seq 36Ki --layers 2
DEC="--phase decode --layers 2 --exec graph"
step 150 $TR -m real.run $C4 $DEC --out "$D" --batch 12 --context '40Ki;120Ki' --plan 'tp=4;ring=4' \
    --decode-attn 'pass-q;allgather'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
