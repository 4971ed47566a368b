#!/usr/bin/env bash
# nvidia-h200-x2 (issue 13): partial prefill (prefix cache) and the chunked pipeline, measured: about 2.5 min
# (about 4 s a configuration, as benchmarks/results/llama3_8b_gqa_expand_20261128; the steps are capped at
# 150 + 45 + 50 s).
# P = 2, ring=2 (zigzag), B = 1: C cached tokens (0, 16Ki, 48Ki) before L new ones (4Ki, 16Ki), the ring
#   circulating K/V (pass-kv: each rank's cached shard travels with its new K/V) or the new queries
#   (pass-q: partial outputs return by an all-to-all); seed-dense (32 KV heads) and llama3-8b (GQA, 8 KV
#   heads), 2 layers each: one torchrun, 24 records.
# P = 1 (GPU 0): single with the same C x L, seed-dense 2 layers (the attention over C + L keys).
# P = 2, pp=2 with --chunks 4, B = 1, L = 32Ki and 64Ki, seed-dense 4 layers (chunked-prefill pipeline).
# Every record (JSONL, as real.run writes it: specs, latency, check against the FP32 reference at
# min(L, 4Ki) new tokens with the whole cache, provenance) lands under $OUT; one tarball of them at the end.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run_partial_prefill_x2.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR2="torchrun --standalone --nproc-per-node 2"
TR1="torchrun --standalone --nproc-per-node 1"
PP="$OUT/h200x2_real_partial_prefill.jsonl"
CH="$OUT/h200x2_real_chunked_pp.jsonl"
M="--check-seq 4Ki --batch 1 --seq 4Ki;16Ki --cached 0;16Ki;48Ki"
step 150 $TR2 -m real.run --hardware h200-sxm --topology nvswitch:2 --model 'seed-dense;llama3-8b' --layers 2 \
  --out "$PP" $M --plan ring=2 --ring-variant zigzag --prefill-attn 'pass-kv;pass-q'
step 45 env CUDA_VISIBLE_DEVICES=0 $TR1 -m real.run --hardware h200-sxm --topology nvswitch:1 --model seed-dense \
  --layers 2 --out "$PP" $M --plan tp=1
step 50 $TR2 -m real.run --hardware h200-sxm --topology nvswitch:2 --model seed-dense --layers 4 \
  --out "$CH" --check-seq 4Ki --batch 1 --seq '32Ki;64Ki' --plan pp=2 --chunks 4
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar -czf "$OUT/partial_prefill_x2.tar.gz" -C "$OUT" "$(basename "$PP")" "$(basename "$CH")" "$(basename "$LOG")" 2>>"$LOG" || true
