#!/usr/bin/env bash
# nvidia-h200-x2: bench_replay_timing.py for the decode steps the model misses most (B=1).
export PYTHONPATH=. PYTHONUNBUFFERED=1
D="--hardware h200-sxm --phase decode --layers 2 --batch 1"
torchrun --standalone --nproc-per-node 2 benchmarks/bench_replay_timing.py $D --topology nvswitch:2 --plan ring=2 \
    --decode-attn 'pass-kv;allgather' --context '16Ki;256Ki' 2>&1 | grep '^{'
torchrun --standalone --nproc-per-node 2 benchmarks/bench_replay_timing.py $D --topology nvswitch:2 --plan tp=2 \
    --context '16Ki;256Ki' 2>&1 | grep '^{'
CUDA_VISIBLE_DEVICES=0 torchrun --standalone --nproc-per-node 1 benchmarks/bench_replay_timing.py $D --topology nvswitch:1 \
    --plan tp=1 --context '16Ki;256Ki' 2>&1 | grep '^{'
