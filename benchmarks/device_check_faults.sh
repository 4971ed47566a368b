#!/usr/bin/env bash
# nvidia-h200-x2 (issues 12 and 17): the per-layer attention check in BF16 at the GPU check length (8Ki),
# clean and with each fault of real.selftest.FAULTS injected (RINGSIM_REAL_FAULT): the clean records must
# pass, the faulty ones fail by >= 10x the tolerance.  Records under $OUT/check_faults.jsonl.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"; REC="$OUT/check_faults.jsonl"; LOG="$OUT/check_faults.log"
TR="torchrun --standalone --nproc-per-node 2"
C="--hardware h200-sxm --topology nvswitch:2 --model llama3-8b --layers 2 --seq 8Ki --reps 5 --warmup 1 --out $REC"
step() { echo "=== $*" | tee -a "$LOG"; timeout 240 env "$@" 2>&1 | grep -E "real.run|rror" | tee -a "$LOG"; }
step RINGSIM_REAL_FAULT= $TR -m real.run $C --plan ring=2 --ring-variant 'zigzag;plain;striped'
step RINGSIM_REAL_FAULT=drop-ring-block $TR -m real.run $C --plan ring=2 --ring-variant 'zigzag;plain;striped'
step RINGSIM_REAL_FAULT=lse-mean $TR -m real.run $C --plan ring=2 --ring-variant 'zigzag;plain;striped'
step RINGSIM_REAL_FAULT= $TR -m real.run $C --plan pp=2 --microbatches 2 --batch 2
step RINGSIM_REAL_FAULT= $TR -m real.run $C --plan "ulysses=2;tp=2" --batch 2
step RINGSIM_REAL_FAULT=drop-microbatch $TR -m real.run $C --plan pp=2 --microbatches 2 --batch 2
step RINGSIM_REAL_FAULT=swap-ulysses $TR -m real.run $C --plan ulysses=2 --batch 2
python3 - "$REC" <<'P' | tee -a "$LOG"
import json, sys
for ln in open(sys.argv[1]):
    r = json.loads(ln); c = r.get("check") or {}
    print(r["status"], " ".join(r["args"][r["args"].index("--plan"):]), "resid %.3g attn_max %.3g tol %g" % (c.get("rel_err", -1), c.get("attn_rel_err_max", -1), c.get("tol", -1)), c.get("attn_rel_err"))
P
