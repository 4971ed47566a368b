#!/usr/bin/env bash
# nvidia-h200-x2: Chrome traces (torch.profiler, kernels inside the CUDA graph included) of one replayed
# decode step per configuration, for the B = 1 steps the model misses most.  Outputs under $OUT/prof.
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
DEC="--hardware h200-sxm --phase decode --layers 2 --exec graph --batch 1 --reps 5 --warmup 2 --no-check"
torchrun --standalone --nproc-per-node 2 -m real.run $DEC --topology nvswitch:2 --plan tp=2 --context '16Ki;256Ki' --out $OUT/prof.jsonl --profile-dir $OUT/prof 2>&1 | grep real.run
torchrun --standalone --nproc-per-node 2 -m real.run $DEC --topology nvswitch:2 --plan ring=2 --decode-attn 'allgather;pass-kv' --context 16Ki --out $OUT/prof.jsonl --profile-dir $OUT/prof 2>&1 | grep real.run
CUDA_VISIBLE_DEVICES=0 torchrun --standalone --nproc-per-node 1 -m real.run $DEC --topology nvswitch:1 --plan tp=1 --context '16Ki;256Ki' --out $OUT/prof.jsonl --profile-dir $OUT/prof 2>&1 | grep real.run
ls -la $OUT/prof
