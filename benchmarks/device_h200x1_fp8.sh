#!/usr/bin/env bash
# nvidia-h200 (one GPU; issue 14, FP8): the fp8 calibration suite (torch._scaled_mm FP8 GEMMs at llama3-8b's
# layer shapes, tp = 1 and 2 shards, 1-128Ki rows, and the activation quantise), then FP8/BF16 executor
# validation runs at P = 1 on the same lease, llama3-8b with 4 layers:
#   prefill (eager): B = 1 at L = 20Ki and 40Ki, B = 2 at L = 36Ki; --fp8 none, ffn, linear;
#   decode (CUDA graph): B = 12 and 24 at context 24Ki and 48Ki; --fp8 none, ffn, linear.
# Last, FP8 KV cache (exploratory: the executor dequantises K/V in a separate pass before attention, the cost
# model assumes a kernel that dequantises as it loads): decode B = 24 at 24Ki and 48Ki, --fp8 none and linear.
# Shapes no calibration of h200-sxm measured (validation.compare.seen_by_calibration): GEMM rows 20Ki,
# 40Ki, 72Ki, 12, 24 (the BF16 curve's are 1, 4, ..., 65536; real.microbench FP8_TOKENS adds 2 and
# 131072); attention lengths 20Ki, 40Ki, 36Ki (prefill) and 24Ki, 48Ki (decode).  Outputs under $OUT: the raw JSON (fit it with
#   ringsim calibrate --from-raw <the h200-sxm raw files> --from-raw h200x1_fp8_raw.json ...)
# and the JSONL records; well under 4 minutes on one H200.
# Argument: all (default) | cal (the fp8 suite only) | val (the real.run records only).  `ringsim validate`
# counts a record as unseen only when no calibration run of its profile shares its lease (machine boot), so
# for unseen FP8 records run `cal` and `val` in two leases (the machine given back in between).
set -u
PART=${1:-all}
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_fp8.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
if [ "$PART" != val ]; then
step 100 python3 -m real.microbench --suites fp8 --model llama3-8b --out "$OUT/h200x1_fp8_raw.json"
fi
if [ "$PART" != cal ]; then
TR="torchrun --standalone --nproc-per-node 1"
P="$OUT/h200x1_real_prefill_fp8.jsonl"; D="$OUT/h200x1_real_decode_graph_fp8.jsonl"
C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --model llama3-8b --layers 4"
F="--fp8 none;ffn;linear"
step 70 $TR -m real.run $C $F --out "$P" --batch 1 --seq '20Ki;40Ki'
step 50 $TR -m real.run $C $F --out "$P" --batch 2 --seq 36Ki
step 90 $TR -m real.run $C $F --out "$D" --phase decode --exec graph --batch '12;24' --context '24Ki;48Ki'
K="$OUT/h200x1_real_decode_graph_kvfp8.jsonl"
step 45 $TR -m real.run $C --out "$K" --phase decode --exec graph --batch 24 --context '24Ki;48Ki' --kv-dtype fp8 \
    --fp8 'none;linear'
fi
echo "=== done $(date -u +%T)" | tee -a "$LOG"
