#!/usr/bin/env bash
# Issue 12, the ring bias: a K/V transfer that becomes ready while an attention kernel holds every SM
# starts only in that kernel's last wave (traces: benchmarks/ring_decompose.py).  Splitting each attention
# call into kernels over groups of KV heads (--attn-split) gives the transfer a kernel boundary to start
# at.  A/B in one lease: split 1, 2, 4 for ring (zigzag, plain) and ulysses; traces of split 4.
# Usage: N=4 L=88Ki bash benchmarks/device_attn_split.sh
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
N=${N:-4}; L=${L:-88Ki}
LOG="$OUT/run_x${N}_attn_split.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node $N"
C="--hardware h200-sxm --topology nvswitch:$N --seq $L --batch 1 --layers 1"
for S in 4 1 2; do
    R="$OUT/h200x${N}_real_prefill_split${S}.jsonl"
    PROF=""; [ "$S" = 4 ] && PROF="--profile-dir $OUT/traces"
    step 150 $TR -m real.run $C --attn-split $S --out "$R" --plan ring=$N --ring-variant 'zigzag;plain' $PROF
    step 100 $TR -m real.run $C --attn-split $S --out "$R" --plan "ulysses=$N"
done
tar czf "$OUT/traces_split_x${N}.tgz" -C "$OUT" traces && rm -r "$OUT/traces"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
