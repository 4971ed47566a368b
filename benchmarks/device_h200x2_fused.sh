#!/usr/bin/env bash
# nvidia-h200-x2 (issue 12: "Measured ideal kernels", "A fast executor"): the executor's fused mode
# (real.run --exec-mode fused, real/fused.py), in a lease of its own (no calibration run in it).
# (a) validation records of the fused executor, which `ringsim validate` holds against the ideal profile
#     h200-sxm (group "ideal profile (h200-sxm) vs fused executor"), at shapes no calibration run measured
#     (attention lengths per rank 52Ki/26Ki/13Ki, 44Ki/22Ki/11Ki, 76Ki/38Ki/19Ki, 20Ki; decode 44Ki/22Ki, 20Ki;
#     GEMM rows not powers of 4), each checked at its full length (--check-seq 0) against the FP32 reference:
#     P = 2 prefill (eager issue): seed-dense 2 layers L = 52Ki B = 1 and llama3-8b 4 layers L = 44Ki B = 1,
#       plans ring=2 (zigzag), tp=2, ulysses=2, pp=2 (one micro-batch);
#     P = 1 (GPU 0 and GPU 1 side by side): single prefill from a CUDA graph (seed 76Ki B=1, llama 20Ki B=3)
#       and single graph decode (both models, 4 layers, B = 6, context 44Ki and 20Ki);
#     P = 2 graph decode: tp=2, ring=2 pass-Q, both models, 4 layers, B = 6, context 44Ki;
#     P = 2 prefill from a CUDA graph: ring=2 and tp=2, seed 76Ki B=1 (its own step: a first on the device).
# (b) benchmarks/bench_ring_vs_cp.py, 48Ki, 96Ki, 128Ki each measured twice in one process, eager and fused
#     executor modes: ring attention vs torch context_parallel and vs the same calls on one GPU (run first).
# Budget: BUDGET = 290 s for all steps (each step: its own limit, cut to what is left; skipped under 20 s),
# then the tarball.  Expected: bench ~80 s, each real.run step 30-50 s (torch.compile at the first pass
# of each shape, outside timing).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT/fused"
R="$OUT/fused"; LOG="$R/run_fused.log"
{ date -u; git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  cat /proc/sys/kernel/random/boot_id
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-290}  # seconds for every step together (the lease's 5 minutes, less the tarball)
# a step runs under min(its own limit, what is left of BUDGET); one with less than 20 s left is skipped
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
TR="torchrun --standalone --nproc-per-node 2"
TR1="torchrun --standalone --nproc-per-node 1"
P="$R/h200x2_real_prefill_fused.jsonl"; D="$R/h200x2_real_decode_graph_fused.jsonl"
M="--exec-mode fused --check-seq 0 --reps 5 --warmup 1 --timeout-s 150"
C2="--hardware h200-sxm --topology nvswitch:2 $M"
C1="--hardware h200-sxm --topology nvswitch:1 $M"
SEED="--model seed-dense --layers 2"; LL="--model llama3-8b --layers 4"
BENCH="benchmarks/bench_ring_vs_cp.py --seq 48Ki;96Ki;128Ki --exec-mode eager;fused --reps 6 --warmup 2"

# (b) the bench, every length measured twice in one process (--repeat 2)
step 95 $TR $BENCH --repeat 2 --out "$R/ring_vs_cp_fused.json"
# (a) P = 2 prefill, eager issue, fused kernels (a trace of the ring's fused layer for the decomposition)
step 55 $TR -m real.run $C2 $SEED --out "$P" --batch 1 --seq 52Ki --plan 'ring=2;tp=2;ulysses=2;pp=2' \
    --profile-dir "$R/traces"
step 55 $TR -m real.run $C2 $LL --out "$P" --batch 1 --seq 44Ki --plan 'ring=2;tp=2;ulysses=2;pp=2'
# P = 1 on each GPU side by side: prefill from a CUDA graph on GPU 0, graph decode on GPU 1
P1="$R/h200x1_real_prefill_graph_fused.jsonl"; D1="$R/h200x1_real_decode_graph_fused.jsonl"
(CUDA_VISIBLE_DEVICES=0 step 40 $TR1 -m real.run $C1 --exec graph --out "$P1" --plan tp=1 $SEED --batch 1 \
    --seq 76Ki; CUDA_VISIBLE_DEVICES=0 step 30 $TR1 -m real.run $C1 --exec graph --out "$P1" --plan tp=1 $LL \
    --batch 3 --seq 20Ki) &
(CUDA_VISIBLE_DEVICES=1 step 70 $TR1 -m real.run $C1 --exec graph --phase decode --out "$D1" --plan tp=1 \
    --model 'seed-dense;llama3-8b' --layers 4 --batch 6 --context '44Ki;20Ki') &
wait
# P = 2 graph decode: both models, tp=2 and ring=2 pass-Q
step 55 $TR -m real.run $C2 --exec graph --phase decode --out "$D" --model 'seed-dense;llama3-8b' --layers 4 \
    --batch 6 --context 44Ki --plan 'tp=2;ring=2' --decode-attn pass-q
# P = 2 prefill from a CUDA graph (never run before on the device: last, in its own step)
PG="$R/h200x2_real_prefill_graph_fused.jsonl"
step 40 $TR -m real.run $C2 --exec graph $SEED --out "$PG" --batch 1 --seq 76Ki --plan 'ring=2;tp=2'
echo "=== done $(date -u +%T)" | tee -a "$LOG"
tar czf "$OUT/fused_h200x2.tgz" -C "$OUT" fused && rm -r "$OUT/fused"  # one tarball: records, bench, traces, log
ls -la "$OUT"
