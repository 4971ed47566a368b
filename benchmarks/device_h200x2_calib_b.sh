#!/usr/bin/env bash
# nvidia-h200-x2, a calibration lease (issue 12/14, 2026-11-28 third session).  No validation record made
# here counts as unseen (the boot id ties every record of this lease to its calibration files).
# GPU 0 and GPU 1 first work side by side on single-GPU calibration, then both on P = 2 diagnostics:
#   GPU 0: the decode-attention grid's missing corners (1-2 query heads per GPU, batch 128, 512Ki keys,
#          and the first grid's L2-resident caches re-measured cold): bench_decode_grid.py --subset gaps;
#   GPU 1: the layer GEMMs at 8Ki-128Ki rows (real.microbench --suites gemm-rows) for the seed model and
#          llama3-8b; then traces of one llama3-8b graph decode step (BF16 and FP8 linear) at P = 1;
#   both:  the ring gate microbenchmark (benchmarks/device_h200x2_ring_gate.sh, if present); traces of one
#          seed layer at P = 2 (ring=2 zigzag, ulysses=2, tp=2 prefill at 64Ki; tp=2 and ring=2 pass-Q graph
#          decode at B = 16, 64Ki) for benchmarks/ring_decompose.py.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_calib_b.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
git rev-parse HEAD 2>/dev/null | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
(
  export CUDA_VISIBLE_DEVICES=0
  step 200 python3 benchmarks/bench_decode_grid.py --subset gaps --budget-s 150 --out "$OUT/h200x1_decode_grid_gaps_raw.json"
) &
(
  export CUDA_VISIBLE_DEVICES=1
  step 90 python3 -m real.microbench --suites gemm-rows --model seed-dense --out "$OUT/h200x1_gemm_rows_seed_raw.json"
  step 90 python3 -m real.microbench --suites gemm-rows --model llama3-8b --out "$OUT/h200x1_gemm_rows_llama3_8b_raw.json"
  T1="torchrun --standalone --nproc-per-node 1 --master-port 29611"
  step 90 $T1 -m real.run --hardware h200-sxm --topology nvswitch:1 --plan tp=1 --model llama3-8b --layers 4 \
      --out "$OUT/diag_h200x1_decode_fp8_traced.jsonl" --phase decode --exec graph --batch 16 --context 32Ki \
      --fp8 'none;linear' --profile-dir "$OUT/traces"
) &
wait
TR="torchrun --standalone --nproc-per-node 2"
[ -f benchmarks/device_h200x2_ring_gate.sh ] && step 180 bash benchmarks/device_h200x2_ring_gate.sh
C2="--hardware h200-sxm --topology nvswitch:2 --layers 1"
step 120 $TR -m real.run $C2 --out "$OUT/diag_h200x2_prefill_traced.jsonl" --batch 1 --seq 64Ki \
    --plan 'ring=2;ulysses=2;tp=2' --profile-dir "$OUT/traces"
step 120 $TR -m real.run $C2 --out "$OUT/diag_h200x2_decode_traced.jsonl" --phase decode --exec graph --batch 16 \
    --context 64Ki --plan 'tp=2;ring=2' --decode-attn pass-q --profile-dir "$OUT/traces"
tar czf "$OUT/traces_calib_b.tgz" -C "$OUT" traces && rm -r "$OUT/traces"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
