"""The claims table: each seed figure beside the prediction, the physical ceiling, a verdict and what
would have to change for it to hold.  Every number is computed here from ``costmodel``."""

from __future__ import annotations

import math

import numpy as np

from costmodel import presets
from costmodel.specs import Phase
from costmodel.strategies import length_multiple
from costmodel.units import fmt_bytes, fmt_count, fmt_seconds

from .seed import _eval, decode_step_floor, make_config, prefill_tps_ceiling


def _pick(preds: list[dict], plan: str, phase: str) -> list[dict]:
    """Prediction rows of a claim's plan and phase (the baseline at its fairest: never the straw man)."""
    rows = [r for r in preds if r["plan"] == plan and r["phase"] == phase and not r.get("comparison")]
    return rows


def _cfg(setup, row, **over):
    kw = {
        "hardware": setup["hardware"],
        "topology": row["topology"],
        "model": setup["model"],
        "batch": setup["batch"],
        "seq": setup["seq"],
        "phase": row["phase"],
        "plan": row["plan"],
        "microbatches": row["microbatches"],
    }
    kw.update(over)
    return make_config(**kw)


def _eval_best_m(cfg, bgrid) -> dict:
    """Evaluate at each batch with its best micro-batch count (a divisor of it; 1 without a pipeline)."""
    if cfg.plan.pp == 1:
        return _eval(cfg, batch=bgrid, microbatches=1)
    bs, ms = zip(
        *[(b, m) for b in bgrid for m in range(1, b + 1) if b % m == 0 and (m & (m - 1) == 0 or m == b)]
    )
    bs, ms = np.array(bs), np.array(ms)
    o = _eval(cfg, batch=bs, microbatches=ms)
    keep = np.array([i for b in bgrid for i in [np.flatnonzero(bs == b)[np.argmin(o["latency_s"][bs == b])]]])
    return {k: np.asarray(v)[keep] for k, v in o.items()}


def _largest(grid, ok) -> int:
    idx = np.nonzero(ok)[0]
    return int(grid[idx.max()]) if idx.size else 0


def _ratio_text(a: float, b: float) -> str:
    return f"{a / b:.3g}x" if b else "n/a"


def tps_claim(setup, assume, claim, preds, ceil) -> dict:
    rows = _pick(preds, claim["plan"], Phase.PREFILL)
    best = max(rows, key=lambda r: r["result"]["tps"])
    cfg = _cfg(setup, best)
    model, hw = cfg.model, cfg.hardware
    B, L, P, v = setup["batch"], setup["seq"], setup["gpus"], claim["value"]
    ceiling = ceil["prefill_tps_ceiling"]
    plan_roof = B * L / best["result"]["roofline_latency_s"]
    change = []
    # batch: the per-token ceiling does not depend on B; what the model gives at batches that fit
    c1 = float(prefill_tps_ceiling(model, hw, batch=1, seq=L, gpus=P))
    bgrid = np.arange(1, max(B, 1024) + 1)
    o = _eval_best_m(cfg, bgrid)
    fit = o["feasible"]
    if fit.any():
        i = int(np.argmax(np.where(fit, o["tps"], -1)))
        bb = f"the model's best at a batch that fits is {fmt_count(o['tps'][i])} tokens/s (B={bgrid[i]})"
    else:
        bb = "no batch fits in memory at this length"
    change.append(f"batch: cannot help, the ceiling is {fmt_count(c1)} tokens/s at B=1 too; {bb}")
    # length: where the ceiling / the model reach the claim
    mult = length_multiple(cfg.plan, "prefill")
    lgrid = mult * np.unique(np.round(np.geomspace(1024, L, 200) / mult).astype(int))
    l_ceil = _largest(lgrid, prefill_tps_ceiling(model, hw, batch=B, seq=lgrid, gpus=P) >= v)
    ol = _eval(cfg, seq=lgrid, context=lgrid)
    l_model = _largest(lgrid, ol["tps"] >= v)
    l_fit = _largest(lgrid, ol["feasible"])
    change.append(
        f"length: the ceiling reaches it only for L <= {l_ceil:,}; "
        f"the model (on {best['topology']}) "
        + (f"for L <= {l_model:,}" if l_model else f"for no L in 1Ki..{L:,}")
        + f"; B={B} fits only for L <= {l_fit:,}"
    )
    fp8 = ceiling * assume["fp8_peak_over_bf16"]
    change.append(
        f"precision: FP8 (x{assume['fp8_peak_over_bf16']:g} peak) lifts the ceiling to "
        f"{fmt_count(fp8)} tokens/s: "
        + ("enough in principle" if fp8 >= v else f"still {v / fp8:.2f}x short")
    )
    need = math.ceil(v / (ceiling / P))
    h200 = presets.load_hardware("h200-sxm")
    c200 = float(prefill_tps_ceiling(model, h200, batch=B, seq=L, gpus=P))
    change.append(
        f"hardware: at least {need} H100s at datasheet peak (not {P}); 16 H200 give "
        f"{fmt_count(c200)} tokens/s (same tensor cores)"
    )
    return {
        "ceiling": ceiling,
        "plan_roofline": plan_roof,
        "best_topology": best["topology"],
        "change": change,
    }


def tpot_claim(setup, assume, claim, preds, ceil) -> dict:
    rows = _pick(preds, claim["plan"], Phase.DECODE)
    best = min(rows, key=lambda r: r["result"]["tpot_s"])
    cfg = _cfg(setup, best)
    model, hw = cfg.model, cfg.hardware
    B, L, P, v = setup["batch"], setup["seq"], setup["gpus"], claim["value"]
    floor = ceil["decode_tpot_floor_s"]
    w, kvt = model.params() * model.dtype_bytes, model.kv_bytes_per_token()
    change = []
    b_floor = max(int((v * P * hw.hbm_bw_Bps - w) // (L * kvt)), 0)
    bgrid = np.arange(1, B + 1)
    ob = _eval_best_m(cfg, bgrid)
    b_model = _largest(bgrid, ob["tpot_s"] <= v)
    change.append(
        f"batch: the floor allows it for B <= {b_floor} at L={L:,}; the model "
        + (f"for B <= {b_model}" if b_model else "for no batch, not even B=1")
    )
    c_floor = max(int((v * P * hw.hbm_bw_Bps - w) // (B * kvt)), 0)
    sp = cfg.plan.sp
    cgrid = sp * np.unique(np.maximum(np.round(np.geomspace(16, L, 200) / sp), 1).astype(int))
    oc = _eval(cfg, seq=cgrid, context=cgrid)
    c_model = _largest(cgrid, oc["tpot_s"] <= v)
    change.append(
        f"length: the floor allows it for context <= {c_floor:,} at B={B}; the model "
        + (f"for context <= {c_model:,}" if c_model else f"for no context in 16..{L:,}")
    )
    f8 = floor / 2
    change.append(
        f"precision: FP8 weights and KV cache halve the floor to {fmt_seconds(f8)}: "
        + ("enough" if f8 <= v else f"still {f8 / v:.1f}x too slow")
    )
    h200 = presets.load_hardware("h200-sxm")
    f200 = float(decode_step_floor(model, h200, batch=B, context=L, gpus=P))
    need = math.ceil((w + B * L * kvt) / (v * hw.hbm_bw_Bps))
    change.append(
        f"hardware: 16 H200 floor {fmt_seconds(f200)}; the claim needs >= {need:,} H100s' HBM bandwidth"
    )
    per_tok = {r["topology"]: r["result"]["tpot_s"] / B for r in rows}
    alt = "; ".join(f"{t}: {fmt_seconds(x)} ({_ratio_text(x, v)} the claim)" for t, x in per_tok.items())
    change.append(
        f"definition: if TPOT meant step time / B (1 / decode TPS of the batch), "
        f"the model gives {alt}; floor {fmt_seconds(floor / B)}"
    )
    return {
        "ceiling": floor,
        "plan_roofline": best["result"]["roofline_latency_s"],
        "best_topology": best["topology"],
        "change": change,
        "per_token_of_batch": per_tok,
    }


def activation_claim(setup, assume, claim, preds, ceil) -> dict:
    ring = [r for r in preds if r["plan"] == setup["ring_plan"] and r["phase"] == Phase.PREFILL]
    base = [
        r
        for r in preds
        if r["plan"] == setup["baseline_plan"] and r["phase"] == Phase.PREFILL and r.get("comparison")
    ]
    a_ring = ring[0]["result"]["memory_bytes_per_device"]["activations"]
    a_base = base[0]["result"]["memory_bytes_per_device"]["activations"]
    single = _eval(
        make_config(
            hardware=setup["hardware"],
            topology="nvswitch:1",
            model=setup["model"],
            batch=setup["batch"],
            seq=setup["seq"],
            phase=Phase.PREFILL,
            plan="tp=1",
        )
    )
    a_one = float(single["mem_activations_bytes"])
    change = [
        (
            f"definition: against one GPU holding the whole sequence the reduction is "
            f"{a_one / a_ring:.3g}x; against tp=8,pp=2 (m=1) it is {a_base / a_ring:.3g}x "
            f"({fmt_bytes(a_base)} vs {fmt_bytes(a_ring)} per device)"
        )
    ]
    return {
        "ceiling": None,
        "plan_roofline": None,
        "best_topology": None,
        "change": change,
        "predicted_by_topology": {r["topology"]: a_base / a_ring for r in ring},
        "vs_single_gpu": a_one / a_ring,
    }


def claims_table(claims: dict, preds: list[dict], ceil: dict) -> list[dict]:
    setup, assume = claims["setup"], claims["assumptions"]
    out = []
    tpot = {c["plan"]: c["value"] for c in claims["claim"] if c["metric"] == "tpot_s"}
    for c in claims["claim"]:
        metric = c["metric"]
        if metric == "activation_ratio":
            info = activation_claim(setup, assume, c, preds, ceil)
            predicted = info.pop("predicted_by_topology")
            feasible = {}
        else:
            phase = Phase.PREFILL if metric == "tps" else Phase.DECODE
            rows = _pick(preds, c["plan"], phase)
            predicted = {r["topology"]: r["result"][metric] for r in rows}
            feasible = {
                r["topology"]: (r["result"]["feasible"], r["result"]["memory_bytes_per_device"]["total"])
                for r in rows
            }
            info = (tps_claim if metric == "tps" else tpot_claim)(setup, assume, c, preds, ceil)
            if metric == "tps" and c["plan"] in tpot:
                n = c["value"] * tpot[c["plan"]]
                info["change"].append(
                    f"definition: claimed TPS x claimed TPOT = {n:,.0f} tokens per output-token "
                    f"time, but a decode step of B={setup['batch']} yields {setup['batch']}: "
                    f"the two claims cannot describe the same run under one definition; "
                    f"1 / claimed TPOT = {fmt_count(1 / tpot[c['plan']])} tokens/s; the model's "
                    f"decode TPS of the batch (B / step): "
                    + ", ".join(
                        f"{r['topology']} {fmt_count(r['result']['tps'])}"
                        for r in _pick(preds, c["plan"], Phase.DECODE)
                    )
                )
        out.append(
            {
                "id": c["id"],
                "text": c["text"],
                "metric": metric,
                "plan": c["plan"],
                "claim": c["value"],
                "unit": c["unit"],
                "predicted": predicted,
                "feasible": feasible,
                "verdict": verdict(
                    metric,
                    c["value"],
                    predicted,
                    info.get("ceiling"),
                    feasible,
                    ceil,
                    assume["consistent_within"],
                ),
                **info,
            }
        )
    return out


def verdict(metric, value, predicted, ceiling, feasible, ceil, tol) -> str:
    best = (max if metric in ("tps", "activation_ratio") else min)(predicted.values())
    parts = []
    if metric == "tps" and value > ceiling:
        parts.append(
            f"NOT ATTAINABLE: {value / ceiling:.2f}x above the compute ceiling of any plan on "
            f"{fmt_count(ceiling)} tokens/s"
        )
    elif metric == "tpot_s" and value < ceiling:
        parts.append(
            f"NOT ATTAINABLE: {ceiling / value:.0f}x below the HBM floor of any plan "
            f"({fmt_seconds(ceiling)} to read weights + KV cache once)"
        )
    elif abs(best / value - 1) <= tol:
        parts.append(f"consistent with the model (within {tol:.0%})")
    else:
        parts.append(f"attainable in principle; the model predicts {_ratio_text(best, value)} the claim")
    if feasible and not any(f for f, _ in feasible.values()):
        need = max(t for _, t in feasible.values())
        parts.append(
            f"and the configuration does not fit: {fmt_bytes(need)} per device vs "
            f"{fmt_bytes(ceil['capacity_bytes'])} (no plan can: >= "
            f"{fmt_bytes(ceil['min_memory_per_device_bytes'])} of weights + KV cache each)"
        )
    return "; ".join(parts)
