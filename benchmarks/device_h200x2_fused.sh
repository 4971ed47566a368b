#!/usr/bin/env bash
# nvidia-h200-x2 (issue 12: "Measured ideal kernels", "A fast executor"): the executor's fused mode
# (real.run --exec-mode fused, real/fused.py), in a lease of its own (no calibration run in it).
#
#   bash benchmarks/device_h200x2_fused.sh                 # every part, in this order, within BUDGET
#   PARTS="decode graphprefill" bash benchmarks/device_h200x2_fused.sh   # some parts (e.g. a second call)
#
# Parts:
#   bench        benchmarks/bench_ring_vs_cp.py, 48Ki, 96Ki, 128Ki each measured twice in one process
#                (--repeat 2), executor modes eager and fused, cuDNN: ring attention at P = 2 vs the best torch
#                context_parallel variant (both rotate methods, both SDPA backends) and vs the same calls on
#                one GPU (issue 12's targets: >= 1.10x and >= 95% in fused mode)
#   prefill      P = 2 fused records, eager issue: seed-dense and llama3-8b, 4 layers, L = 44Ki, B = 1,
#                plans ring=2 (zigzag), tp=2, ulysses=2, pp=2
#   p1           P = 1 fused records from CUDA graphs, side by side: prefill on GPU 0 (seed 2 layers 76Ki
#                B=1, llama 4 layers 20Ki B=3), decode on GPU 1 (both models, 4 layers, B = 6, context 44Ki and 20Ki)
#   decode       P = 2 fused graph decode: tp=2 and ring=2 pass-Q, both models, 4 layers, B = 6, context 44Ki
#   graphprefill P = 2 fused prefill from a CUDA graph (prefill was never captured on the device before):
#                seed-dense 2 layers, L = 76Ki, B = 1, ring=2 and tp=2
#   trace        one profiled pass per rank of the fused ring=2 prefill (seed 4 layers, 44Ki): Chrome traces
# Every record's shapes are outside every calibration run of h200-sxm (attention lengths per rank 44Ki,
# 22Ki, 11Ki, 76Ki, 38Ki, 19Ki, 20Ki; decode 44Ki, 22Ki, 20Ki; GEMM rows not powers of 4: `ringsim validate`
# counts them unseen) and each is checked at its full length (--check-seq 0) against the FP32 reference.
# `ringsim validate` holds them against the ideal profile h200-sxm (group "ideal profile (h200-sxm) vs fused
# executor records").  torch.compile compiles each fused function once per shape at the first pass
# (outside timing) and caches the kernels on disk: later parts with the same shapes compile faster.
# Within a step the plans are the outer loop (ring first), so that a cut step keeps both models of the first.
# Budget: BUDGET (default 290 s) for all parts together; each step runs under min(its limit, what is left)
# and is skipped with less than 20 s left; records are flushed one by one, so a cut step keeps those done.
# Out: $OUT/fused_h200x2.tgz (records *.jsonl, ring_vs_cp_fused.json, traces/, run_fused.log).
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT/fused"
PARTS=${PARTS:-bench prefill p1 decode graphprefill trace}
R="$OUT/fused"; LOG="$R/run_fused.log"
{ date -u; echo "parts: $PARTS"; git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  cat /proc/sys/kernel/random/boot_id
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"; } 2>&1 | tee -a "$LOG"
BUDGET=${BUDGET:-290}
step() { local t=$1; shift; local left=$((BUDGET - SECONDS)); [ "$left" -lt "$t" ] && t=$left
  if [ "$t" -lt 20 ]; then echo "=== $(date -u +%T) SKIPPED (budget spent): $*" | tee -a "$LOG"; return; fi
  echo "=== $(date -u +%T) [limit ${t}s] $*" | tee -a "$LOG"; timeout "$t" "$@" 2>&1 | grep -v -E "Warning|warn\(|^  warnings|^W1|\*\*\*\*|OMP_NUM|_warn_once" | tee -a "$LOG"; echo "=== rc=${PIPESTATUS[0]}" | tee -a "$LOG"; }
has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
TR="torchrun --standalone --nproc-per-node 2"
TR1="torchrun --standalone --nproc-per-node 1"
M="--exec-mode fused --check-seq 0 --reps 5 --warmup 1 --timeout-s 150"
C2="--hardware h200-sxm --topology nvswitch:2 $M"
C1="--hardware h200-sxm --topology nvswitch:1 $M"
BOTH="--model seed-dense;llama3-8b --layers 4"
SEED="--model seed-dense --layers 4"; SEED2="--model seed-dense --layers 2"; LL="--model llama3-8b --layers 4"

if has bench; then
  step 95 $TR benchmarks/bench_ring_vs_cp.py --seq '48Ki;96Ki;128Ki' --exec-mode 'eager;fused' --kernels cudnn \
      --reps 6 --warmup 2 --repeat 2 --out "$R/ring_vs_cp_fused.json"
fi
if has prefill; then
  step 130 $TR -m real.run $C2 --plan 'ring=2;tp=2;ulysses=2;pp=2' $BOTH --batch 1 --seq 44Ki \
      --out "$R/h200x2_real_prefill_fused.jsonl"
fi
if has p1; then
  P1="$R/h200x1_real_prefill_graph_fused.jsonl"; D1="$R/h200x1_real_decode_graph_fused.jsonl"
  (CUDA_VISIBLE_DEVICES=0 step 45 $TR1 -m real.run $C1 --exec graph --out "$P1" --plan tp=1 $SEED2 --batch 1 \
      --seq 76Ki; CUDA_VISIBLE_DEVICES=0 step 35 $TR1 -m real.run $C1 --exec graph --out "$P1" --plan tp=1 $LL \
      --batch 3 --seq 20Ki) &
  (CUDA_VISIBLE_DEVICES=1 step 80 $TR1 -m real.run $C1 --exec graph --phase decode --out "$D1" --plan tp=1 \
      $BOTH --batch 6 --context '44Ki;20Ki') &
  wait
fi
if has decode; then
  step 75 $TR -m real.run $C2 --exec graph --phase decode --plan 'ring=2;tp=2' --decode-attn pass-q $BOTH \
      --batch 6 --context 44Ki --out "$R/h200x2_real_decode_graph_fused.jsonl"
fi
if has graphprefill; then
  step 50 $TR -m real.run $C2 --exec graph $SEED2 --out "$R/h200x2_real_prefill_graph_fused.jsonl" --batch 1 \
      --seq 76Ki --plan 'ring=2;tp=2'
fi
if has trace; then
  step 40 $TR -m real.run $C2 $SEED --out "$R/h200x2_real_prefill_fused_traced.jsonl" --batch 1 --seq 44Ki \
      --plan ring=2 --no-check --profile-dir "$R/traces"
fi
echo "=== done $(date -u +%T) after ${SECONDS}s" | tee -a "$LOG"
tar czf "$OUT/fused_h200x2.tgz" -C "$OUT" fused && rm -r "$OUT/fused"  # one tarball: records, bench, traces, log
ls -la "$OUT"
