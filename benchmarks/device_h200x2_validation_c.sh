#!/usr/bin/env bash
# nvidia-h200-x2, a validation lease (2026-11-28, third session): records at shapes no calibration run
# measured (attention lengths, ring blocks, cache shards and GEMM rows checked against the profile's raw
# files by validation.compare.seen_by_calibration), in a device call with no calibration in it.
#   P = 1 (side by side, one GPU each): llama3-8b at full depth (32 layers, LM head) prefill 10Ki and
#     graph decode B = 20 at 20Ki; the seed model (16 layers) prefill 44Ki and graph decode B = 6 at 40Ki.
#   P = 2: seed model, 2 layers: ring=2 zigzag/plain/striped, ulysses=2, tp=2 prefill at 44Ki and 84Ki,
#     pp=2 (2 micro-batches, B = 2) at 44Ki; graph decode B = 6 and 20 at 40Ki and 100Ki for tp=2 and
#     ring=2 (pass-Q, all-gather, pass-KV; B = 20); llama3-8b (4 layers, LM head) prefill 52Ki ring/tp/ulysses and
#     graph decode B = 20 at 40Ki tp=2 / ring=2 pass-Q; the decode step timed both ways (--timing
#     barrier beside the default aligned) for the protocol's effect; the GPU run of the fault battery.
#   The fused executor, partial prefill and chunked pipeline: device_h200x2_validation_d.sh (a second call).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_validation_c.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
git rev-parse HEAD 2>/dev/null | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
(
  export CUDA_VISIBLE_DEVICES=0
  C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --model llama3-8b"
  step 150 $T1 --master-port 29621 -m real.run $C --out "$OUT/h200x1_real_prefill_llama3_8b_full_c.jsonl" --batch 1 --seq 10Ki
  step 150 $T1 --master-port 29621 -m real.run $C --out "$OUT/h200x1_real_decode_graph_llama3_8b_full_c.jsonl" \
      --phase decode --exec graph --batch 20 --context 20Ki
) &
(
  export CUDA_VISIBLE_DEVICES=1
  C="--hardware h200-sxm --topology nvswitch:1 --plan tp=1"
  step 150 $T1 --master-port 29622 -m real.run $C --out "$OUT/h200x1_real_prefill_c.jsonl" --batch 1 --seq 44Ki
  step 150 $T1 --master-port 29622 -m real.run $C --out "$OUT/h200x1_real_decode_graph_c.jsonl" --phase decode \
      --exec graph --batch 6 --context 40Ki
) &
wait
TR="torchrun --standalone --nproc-per-node 2"
C2="--hardware h200-sxm --topology nvswitch:2 --layers 2"
P="$OUT/h200x2_real_prefill_c.jsonl"; D="$OUT/h200x2_real_decode_graph_c.jsonl"
step 200 $TR -m real.run $C2 --out "$P" --batch 1 --seq '44Ki;84Ki' --plan ring=2 --ring-variant 'zigzag;plain;striped'
step 150 $TR -m real.run $C2 --out "$P" --batch 1 --seq '44Ki;84Ki' --plan 'ulysses=2;tp=2'
step 90 $TR -m real.run $C2 --out "$P" --batch 2 --seq 44Ki --plan pp=2 --microbatches 2
step 150 $TR -m real.run $C2 --out "$D" --phase decode --exec graph --batch '6;20' --context '40Ki;100Ki' --plan tp=2
step 200 $TR -m real.run $C2 --out "$D" --phase decode --exec graph --batch 20 --context '40Ki;100Ki' --plan ring=2 \
    --decode-attn 'pass-q;allgather;pass-kv'
step 120 $TR -m real.run $C2 --out "$OUT/h200x2_real_decode_graph_barrier_c.jsonl" --timing barrier --phase decode \
    --exec graph --batch '6;20' --context 40Ki --plan 'tp=2;ring=2' --decode-attn pass-q
L8="--hardware h200-sxm --topology nvswitch:2 --model llama3-8b --layers 4"
step 150 $TR -m real.run $L8 --out "$OUT/h200x2_real_prefill_llama3_8b_c.jsonl" --batch 1 --seq 52Ki --plan 'ring=2;tp=2;ulysses=2'
step 120 $TR -m real.run $L8 --out "$OUT/h200x2_real_decode_graph_llama3_8b_c.jsonl" --phase decode --exec graph \
    --batch 20 --context 40Ki --plan 'tp=2;ring=2' --decode-attn pass-q
OUT="$OUT" bash benchmarks/device_check_faults.sh >/dev/null 2>&1; tail -20 "$OUT/check_faults.log" | tee -a "$LOG"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
