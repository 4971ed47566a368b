#!/usr/bin/env bash
# Issue 12, the ring bias: the communication stream's priority, A/B, in one lease (N GPUs, length L).
# Traces of one ring layer (ring_decompose.py) showed the K/V exchange of a step issued beside a
# running attention kernel starting only in that kernel's last wave when the comm stream has the default
# priority: the next step then waits for the whole transfer.  Both priorities are measured here at shapes
# no calibration run used, one layer, with traces of the high-priority runs.
# Usage: N=4 L=88Ki bash benchmarks/device_comm_priority.sh   (N=2 L=44Ki on nvidia-h200-x2)
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
N=${N:-4}; L=${L:-88Ki}
LOG="$OUT/run_x${N}_comm_priority.log"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$LOG"
cat /proc/sys/kernel/random/boot_id | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node $N"
C="--hardware h200-sxm --topology nvswitch:$N --seq $L"
for PR in high normal; do
    R="$OUT/h200x${N}_real_prefill_prio_${PR}.jsonl"
    PROF=""; [ "$PR" = high ] && PROF="--profile-dir $OUT/traces"
    step 150 $TR -m real.run $C --comm-priority $PR --out "$R" --batch 1 --layers 1 --plan ring=$N --ring-variant 'zigzag;plain' $PROF
    step 120 $TR -m real.run $C --comm-priority $PR --out "$R" --batch 1 --layers 1 --plan "tp=$N;ulysses=$N" $PROF
    step 120 $TR -m real.run $C --comm-priority $PR --out "$R" --plan "pp=$N" --layers $N --batch 2 \
        --microbatches 2
done
tar czf "$OUT/traces_x${N}.tgz" -C "$OUT" traces && rm -r "$OUT/traces"  # the device tool returns few files
echo "=== done $(date -u +%T)" | tee -a "$LOG"
