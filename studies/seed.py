"""The seed's experiment, checked with physics: predictions, ceilings and the claims table.

Everything here is computed from ``costmodel`` (the analytic model and the specs); the seed's
figures are read from ``seed_claims.toml`` (data with its citation, packaged beside this module),
never typed into code.  ``studies.reproduce`` writes the result as ``data/seed_report.json``, which
``plots.report`` renders and ``plots.files`` draws.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from costmodel import presets
from costmodel.analytic import evaluate
from costmodel.closedform import Setting
from costmodel.config import Config
from costmodel.errors import SpecError
from costmodel.plan import parse_plan
from costmodel.predict import predict, setting
from costmodel.specs import Phase, Workload
from costmodel.strategies import validate
from costmodel.topology import parse_topology

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CLAIMS_FILE = Path(__file__).parent / "seed_claims.toml"
METRICS = ("tps", "tpot_s", "activation_ratio")


def load_claims(path: str | Path | None = None) -> dict:
    """The seed's claims (strict: every claim needs id, metric, plan, value, unit, text)."""
    p = Path(path) if path else CLAIMS_FILE
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"claims file {str(p)!r} cannot be read: {e}") from None
    for key in ("source", "setup", "assumptions", "claim"):
        if key not in raw:
            raise SpecError(f"claims file {p}: missing key {key!r}")
    for c in raw["claim"]:
        missing = {"id", "metric", "plan", "value", "unit", "text"} - set(c)
        if missing:
            raise SpecError(f"claims file {p}: claim {c.get('id', '?')!r} misses {sorted(missing)}")
        if c["metric"] not in METRICS:
            raise SpecError(
                f"claims file {p}: claim {c['id']!r} metric {c['metric']!r} is not one of {METRICS}"
            )
    return raw


def make_config(
    *,
    hardware: str,
    topology: str,
    model: str,
    batch: int,
    seq: int,
    phase: str,
    plan: str,
    microbatches: int | None = None,
) -> Config:
    hw = presets.load_hardware(hardware)
    mdl = presets.load_model(model)
    wl = Workload(batch=batch, seq_len=seq, phase=phase, context_len=seq if phase == Phase.DECODE else 0)
    pl = parse_plan(plan, microbatches=microbatches)
    topo = parse_topology(topology)
    validate(pl, mdl, wl, topo)
    return Config(hardware=hw, topology=topo, model=mdl, workload=wl, plan=pl)


def _eval(cfg: Config, **over) -> dict:
    p, wl = cfg.plan, cfg.workload
    kw = {
        "batch": wl.batch,
        "seq": wl.seq_len,
        "tp": p.tp,
        "pp": p.pp,
        "ring": p.ring,
        "ulysses": p.ulysses,
        "microbatches": p.microbatches,
        "chunks": p.chunks,
        "context": wl.context,
    }
    kw.update(over)
    return evaluate(cfg.model, cfg.hardware, setting(cfg), **kw)


def best_microbatches(cfg: Config) -> int:
    """The micro-batch count (a divisor of the batch) that minimises latency; 1 without a pipeline."""
    return best_pipeline(cfg, chunked=False)[0]


def best_pipeline(cfg: Config, chunked: bool = True) -> tuple[int, int]:
    """(micro-batches, chunks) that minimise latency: micro-batches a divisor of the batch, chunks (prefill
    through a TP x PP pipeline: chunked prefill) 1, 2, 4, ..., 32 dividing the prompt; (1, 1) without a
    pipeline.  Every candidate is checked with the plan's rules (``strategies.validate``)."""
    if cfg.plan.pp == 1:
        return 1, 1
    B, wl = cfg.workload.batch, cfg.workload
    cands = []
    chunk_opts = [1]
    if chunked and wl.phase == Phase.PREFILL and cfg.plan.ring == 1 and cfg.plan.ulysses == 1:
        chunk_opts += [n for n in (2, 4, 8, 16, 32) if wl.seq_len % n == 0]
    for m in (m for m in range(1, B + 1) if B % m == 0):
        for n in chunk_opts:
            try:
                validate(cfg.plan.replace(microbatches=m, chunks=n), cfg.model, wl, cfg.topology)
            except SpecError:
                continue
            cands.append((m, n))
    ms = np.array([c[0] for c in cands])
    ns = np.array([c[1] for c in cands])
    lat = _eval(cfg, microbatches=ms, chunks=ns)["latency_s"]
    m, n = cands[int(np.argmin(lat))]
    return int(m), int(n)


FAIREST = "(fairest)"
STRAW_MAN = "(comparison: m=1, the old straw man)"


def plan_variants(setup: dict) -> list[tuple[str, str, str | int | None]]:
    """(label, plan, pipeline) of the seed's two plans: ring; the baseline at its fairest (the micro-batch
    and chunk counts that minimise its latency, Megatron scatter sends, the profile's fastest kernel per
    call); and, only as a labelled comparison, the old straw man (one micro-batch)."""
    return [
        (setup["ring_plan"], setup["ring_plan"], None),
        (f"{setup['baseline_plan']} {FAIREST}", setup["baseline_plan"], "best"),
        (f"{setup['baseline_plan']} {STRAW_MAN}", setup["baseline_plan"], 1),
    ]


def predictions(setup: dict) -> list[dict]:
    """predict() for every topology x plan x phase of the seed configuration (kernel ``auto``: the
    profile's fastest attention kernel call by call; pipeline sends ``scatter``, Megatron's)."""
    rows = []
    for topo in setup["topologies"]:
        for label, plan, m in plan_variants(setup):
            for phase in (Phase.PREFILL.value, Phase.DECODE.value):
                cfg = make_config(
                    hardware=setup["hardware"],
                    topology=topo,
                    model=setup["model"],
                    batch=setup["batch"],
                    seq=setup["seq"],
                    phase=phase,
                    plan=plan,
                    microbatches=m if isinstance(m, int) else None,
                )
                if m == "best":
                    mb, n = best_pipeline(cfg)
                    cfg = replace(cfg, plan=cfg.plan.replace(microbatches=mb, chunks=n))
                r = predict(cfg)
                rows.append(
                    {
                        "topology": topo,
                        "plan_label": label,
                        "plan": plan,
                        "plan_name": cfg.plan.label(phase),
                        "microbatches": cfg.plan.microbatches,
                        "chunks": cfg.plan.chunks,
                        "pp_send": cfg.plan.pp_send.value,
                        "attn_kernel": cfg.kernel,
                        "kernels_used": "+".join(r["specs"]["attn_kernels_used"]),
                        "comparison": m == 1,
                        "phase": phase,
                        "result": r,
                    }
                )
    return rows


# ----------------------------------------------------------------------------------------------
# plan-independent physical ceilings
# ----------------------------------------------------------------------------------------------
def prefill_tps_ceiling(model, hw, *, batch, seq, gpus, peak_scale=1.0):
    """B*L / (all FLOPs of the prefill / (P x datasheet peak)): no plan on P GPUs can beat it."""
    st = Setting(phase=Phase.PREFILL)
    total = evaluate(model, hw, st, batch=batch, seq=seq)["total_flops"]
    return np.asarray(batch, float) * np.asarray(seq, float) * gpus * hw.peak_flops * peak_scale / total


def decode_step_floor(model, hw, *, batch, context, gpus, bytes_scale=1.0):
    """(all weights + all KV cache) / (P x HBM bandwidth): every byte is read once per step by some GPU."""
    w = model.params() * model.dtype_bytes
    kv = np.asarray(batch, float) * np.asarray(context, float) * model.kv_bytes_per_token()
    return (w + kv) * bytes_scale / (gpus * hw.hbm_bw_Bps)


def min_memory_per_device(model, *, batch, context, gpus):
    """(weights + KV cache) / P: what each device holds at least, whatever the plan."""
    return (model.params() * model.dtype_bytes + batch * context * model.kv_bytes_per_token()) / gpus


def ceilings(setup: dict) -> dict:
    hw = presets.load_hardware(setup["hardware"])
    model = presets.load_model(setup["model"])
    B, L, P = setup["batch"], setup["seq"], setup["gpus"]
    floor = float(decode_step_floor(model, hw, batch=B, context=L, gpus=P))
    return {
        "hardware": hw.name,
        "peak_flops": hw.peak_flops,
        "hbm_bw_Bps": hw.hbm_bw_Bps,
        "capacity_bytes": hw.hbm_capacity_bytes,
        "prefill_total_flops": float(evaluate(model, hw, Setting(), batch=B, seq=L)["total_flops"]),
        "prefill_tps_ceiling": float(prefill_tps_ceiling(model, hw, batch=B, seq=L, gpus=P)),
        "decode_tpot_floor_s": floor,
        "decode_tps_ceiling": B / floor,
        "weights_bytes": float(model.params() * model.dtype_bytes),
        "kv_cache_bytes": float(B * L * model.kv_bytes_per_token()),
        "min_memory_per_device_bytes": float(min_memory_per_device(model, batch=B, context=L, gpus=P)),
        "definitions": {
            "prefill_tps_ceiling": "B*L / (total prefill FLOPs / (P x datasheet BF16 peak))",
            "decode_tpot_floor_s": "(all weights + all KV-cache bytes) / (P x datasheet HBM bandwidth)",
            "min_memory_per_device_bytes": "(all weights + all KV-cache bytes) / P",
        },
    }
