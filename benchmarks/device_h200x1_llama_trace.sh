#!/usr/bin/env bash
# nvidia-h200, a calibration/diagnosis lease (issue 12/14, 2026-11-28 fourth session).  No validation record
# made here counts as unseen: traces of one single-GPU prefill pass of llama3-8b and of the seed model at
# one shape no validation record uses (B = 1, L = 28Ki, 2 layers; eager, as the prefill records run), for
# benchmarks/ring_decompose.py (op class by op class against the model): where llama3-8b's prefill time
# goes that the model does not see (its unseen single-GPU prefill records run 2-6% slower than predicted,
# the seed's 1-2%).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_llama_trace.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
T1="torchrun --standalone --nproc-per-node 1"
C1="--hardware h200-sxm --topology nvswitch:1 --plan tp=1 --layers 2 --batch 1 --seq 28Ki"
step 150 $T1 -m real.run $C1 --model llama3-8b --out "$OUT/diag_h200x1_prefill_llama3_8b_traced.jsonl" \
    --profile-dir "$OUT/traces"
step 150 $T1 -m real.run $C1 --model seed-dense --out "$OUT/diag_h200x1_prefill_seed_traced.jsonl" \
    --profile-dir "$OUT/traces"
step 150 $T1 -m real.run $C1 --model llama3-8b --fp8 ffn --out "$OUT/diag_h200x1_prefill_llama3_8b_fp8_traced.jsonl" \
    --profile-dir "$OUT/traces"
tar czf "$OUT/llama_trace.tgz" -C "$OUT" traces $(cd "$OUT" && ls *.jsonl *.log) && rm -r "$OUT/traces"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
