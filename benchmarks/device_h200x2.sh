#!/usr/bin/env bash
# One device call on nvidia-h200-x2: ring-vs-CP benchmark, then real.run records (ring zigzag/plain,
# tp, pp, decode variants at P=2; a single-GPU reference).  Outputs under $OUT.
# Usage (on the device machine, repository root): RINGSIM_GIT_REV=<sha> bash benchmarks/device_h200x2.sh
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT/prof"
REC="$OUT/h200x2_real.jsonl"; LOG="$OUT/run.log"
env | grep -E '^(NCCL_|TORCH_SYMM|NVSHMEM_)' | sort | tee -a "$LOG"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())" | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
COMMON="--hardware h200-sxm --topology nvswitch:2 --batch 1 --out $REC"
SEQS='16Ki;32Ki;64Ki;128Ki'
step 200 $TR benchmarks/bench_ring_vs_cp.py --seq '64Ki;128Ki' --out "$OUT/ring_vs_cp_h200x2.json"
step 60 $TR -m real.run $COMMON --plan ring=2 --ring-variant zigzag --seq 16Ki --layers 1 --profile-dir "$OUT/prof"
step 150 $TR -m real.run $COMMON --plan ring=2 --ring-variant 'zigzag;plain' --seq "$SEQS" --layers '1;4'
step 150 $TR -m real.run $COMMON --plan tp=2 --seq "$SEQS" --layers '1;4'
step 150 $TR -m real.run $COMMON --plan pp=2 --seq "$SEQS" --layers '2;4'
CUDA_VISIBLE_DEVICES=0 step 150 torchrun --standalone --nproc-per-node 1 -m real.run --hardware h200-sxm \
    --topology nvswitch:1 --batch 1 --out $REC --plan tp=1 --seq "$SEQS" --layers '1;4'
step 100 $TR -m real.run --hardware h200-sxm --topology nvswitch:2 --out $REC --phase decode --batch 8 --layers 4 \
    --context '32Ki;128Ki' --plan 'ring=2' --decode-attn 'pass-kv;pass-q;allgather'
step 60 $TR -m real.run --hardware h200-sxm --topology nvswitch:2 --out $REC --phase decode --batch 8 --layers 4 \
    --context '32Ki;128Ki' --plan 'tp=2'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
