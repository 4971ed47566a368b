#!/usr/bin/env bash
# nvidia-h200-x2 (issue 14): llama3-8b validation records, a lease of their own (no calibration run in it).
# P = 1 (GPU 0): benchmarks/device_h200x1_fp8.sh val (BF16 and FP8 prefill and graph decode, FP8 KV cache).
# P = 2, 4 layers of llama3-8b (GQA: 32 query heads, 8 KV heads), shapes no calibration measured:
#   prefill (eager) L = 40Ki, B = 1: ring=2 (zigzag), tp=2, ulysses=2; pp=2 with 2 micro-batches at B = 2,
#   L = 20Ki; each with --fp8 none and ffn;
#   decode (CUDA graph) B = 12, context 24Ki and 48Ki: tp=2, ring=2 pass-Q and all-gather merge.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
CUDA_VISIBLE_DEVICES=0 bash benchmarks/device_h200x1_fp8.sh val
LOG="$OUT/run_llama3_8b_x2.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
P="$OUT/h200x2_real_prefill_llama3_8b.jsonl"; D="$OUT/h200x2_real_decode_graph_llama3_8b.jsonl"
C="--hardware h200-sxm --topology nvswitch:2 --model llama3-8b --layers 4"
step 110 $TR -m real.run $C --out "$P" --batch 1 --seq 40Ki --plan 'ring=2;tp=2;ulysses=2' --fp8 'none;ffn'
step 60 $TR -m real.run $C --out "$P" --batch 2 --seq 20Ki --plan pp=2 --microbatches 2 --fp8 'none;ffn'
DEC="--phase decode --exec graph --batch 12 --context 24Ki;48Ki"
step 90 $TR -m real.run $C $DEC --out "$D" --plan tp=2
step 100 $TR -m real.run $C $DEC --out "$D" --plan ring=2 --decode-attn 'pass-q;allgather'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
