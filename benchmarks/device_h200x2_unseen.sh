#!/usr/bin/env bash
# nvidia-h200-x2 (issues 11 and 12): the refactored executor (typed ops, one geometry) on GPUs, and
# validation records at shapes no calibration run used: L = 40Ki, 96Ki, 200,000; B = 2, 3, 8, 32;
# 2-3 layers; decode contexts 48Ki and 160Ki.  Prefill eager, decode replayed from CUDA graphs.
# No calibration runs in this lease: the records are judged against calibration run 6 (earlier lease).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_unseen.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version())" | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
P="$OUT/h200x2_real_prefill_unseen.jsonl"; D="$OUT/h200x2_real_decode_graph_unseen.jsonl"
C2="--hardware h200-sxm --topology nvswitch:2"
C1="--hardware h200-sxm --topology nvswitch:1"
step 150 $TR -m real.run $C2 --out "$P" --batch 2 --plan ring=2 --ring-variant 'zigzag;plain;striped' --seq '40Ki;96Ki' --layers 2
step 100 $TR -m real.run $C2 --out "$P" --batch 2 --plan 'tp=2;ulysses=2' --seq '40Ki;96Ki' --layers 3
step 60 $TR -m real.run $C2 --out "$P" --batch 2 --plan pp=2 --microbatches 2 --seq 96Ki --layers 2
step 60 $TR -m real.run $C2 --out "$P" --batch 1 --plan 'ring=2;tp=2' --seq 200000 --layers 2
CUDA_VISIBLE_DEVICES=0 step 80 torchrun --standalone --nproc-per-node 1 -m real.run $C1 --out "$P" --plan tp=1 \
    --batch 3 --seq '40Ki;96Ki' --layers 2
DEC="--phase decode --layers 2 --exec graph"
step 120 $TR -m real.run $C2 $DEC --out "$D" --batch '8;32' --context '48Ki;160Ki' --plan tp=2
step 200 $TR -m real.run $C2 $DEC --out "$D" --batch '8;32' --context '48Ki;160Ki' --plan ring=2 \
    --decode-attn 'pass-kv;pass-q;allgather'
CUDA_VISIBLE_DEVICES=0 step 80 torchrun --standalone --nproc-per-node 1 -m real.run $C1 $DEC --out "$D" --plan tp=1 \
    --batch '8;32' --context '48Ki;160Ki'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
