#!/usr/bin/env bash
# nvidia-h200-x2 (issue 12): a second set of validation records at shapes no calibration run measured
# (attention lengths per rank and GEMM rows outside every calibration file of the h200-sxm profiles),
# in a lease of its own (records carry the machine's boot id), judged against profiles fitted before it.
# Prefill eager: L = 72Ki and 36Ki, 150,000; B = 1-3; 2-3 layers.  Decode graph: B = 12, 24; context 40Ki, 120Ki.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_unseen2.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
P="$OUT/h200x2_real_prefill_unseen2.jsonl"; D="$OUT/h200x2_real_decode_graph_unseen2.jsonl"
C2="--hardware h200-sxm --topology nvswitch:2"
C1="--hardware h200-sxm --topology nvswitch:1"
step 150 $TR -m real.run $C2 --out "$P" --batch 1 --plan ring=2 --ring-variant 'zigzag;plain;striped' --seq 72Ki --layers 3
step 100 $TR -m real.run $C2 --out "$P" --batch 1 --plan 'tp=2;ulysses=2' --seq 72Ki --layers 3
step 80 $TR -m real.run $C2 --out "$P" --batch 3 --plan pp=2 --microbatches 3 --seq 36Ki --layers 2
step 80 $TR -m real.run $C2 --out "$P" --batch 1 --plan 'ring=2;tp=2' --seq 150000 --layers 2
CUDA_VISIBLE_DEVICES=0 step 80 torchrun --standalone --nproc-per-node 1 -m real.run $C1 --out "$P" --plan tp=1 \
    --batch 2 --seq 72Ki --layers 2
DEC="--phase decode --layers 2 --exec graph"
step 100 $TR -m real.run $C2 $DEC --out "$D" --batch '12;24' --context '40Ki;120Ki' --plan tp=2
step 160 $TR -m real.run $C2 $DEC --out "$D" --batch '12;24' --context '40Ki;120Ki' --plan ring=2 \
    --decode-attn 'pass-kv;pass-q;allgather'
CUDA_VISIBLE_DEVICES=0 step 80 torchrun --standalone --nproc-per-node 1 -m real.run $C1 $DEC --out "$D" --plan tp=1 \
    --batch '12;24' --context '40Ki;120Ki'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
