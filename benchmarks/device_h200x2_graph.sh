#!/usr/bin/env bash
# One device call on nvidia-h200-x2 (issue 5, decode under CUDA graphs): calibration (eager and graph
# suites) in the same lease as the measurements, then decode steps replayed from CUDA graphs for tp=2,
# ring=2 with every decode variant (P=2) and the single-GPU step (P=1).  Outputs under $OUT.
# Usage (repository root on the device machine): SMOKE=1 for a short check of the code paths first.
set -u
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
OUT=${OUT:-out}; mkdir -p "$OUT"
LOG="$OUT/run.log"
env | grep -E '^(NCCL_|TORCH_SYMM|NVSHMEM_)' | sort | tee -a "$LOG"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version(), 'gpus', torch.cuda.device_count())" | tee -a "$LOG"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; timeout "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
DEC="--hardware h200-sxm --phase decode --layers 2 --exec graph"
if [ "${SMOKE:-0}" = 1 ]; then
  step 200 $TR -m ringsim calibrate --quick --suite graph --base h200-sxm-published --name smoke \
      --out "$OUT/smoke.toml" --raw-out "$OUT/smoke_raw.json"
  echo "=== done $(date -u +%T)" | tee -a "$LOG"
  grep -q "^=== rc=0" "$LOG" || exit 1
  [ "${PART:-all}" = smoke ] && exit 0
fi
if [ "${PART:-all}" != decode ]; then
step 400 $TR -m ringsim calibrate --base h200-sxm-published --name h200-sxm --out "$OUT/h200-sxm.toml" \
    --raw-out "$OUT/h200x2_raw.json"
fi
[ "${PART:-all}" = calibrate ] && { echo "=== done $(date -u +%T)" | tee -a "$LOG"; exit 0; }
REC="$OUT/h200x2_real_decode_graph.jsonl"
step 200 $TR -m real.run $DEC --topology nvswitch:2 --batch '1;16;64' --context '16Ki;64Ki;256Ki' --plan tp=2 --out "$REC"
step 300 $TR -m real.run $DEC --topology nvswitch:2 --batch '1;16;64' --context '16Ki;64Ki;256Ki' --plan ring=2 \
    --decode-attn 'pass-kv;pass-q;allgather' --out "$REC"
CUDA_VISIBLE_DEVICES=0 step 150 torchrun --standalone --nproc-per-node 1 -m real.run $DEC --topology nvswitch:1 \
    --batch '1;16;64' --context '16Ki;64Ki;256Ki' --plan tp=1 --out "$REC"
echo "=== done $(date -u +%T)" | tee -a "$LOG"
