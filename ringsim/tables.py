"""Human-readable rendering of a prediction / simulation result (the JSON stays the contract)."""

from __future__ import annotations

from costmodel.units import fmt_bytes, fmt_count, fmt_seconds


def _kernel(s: dict) -> str:
    used = s.get("attn_kernels_used")
    return s["attn_kernel"] + (f" ({'+'.join(used)})" if used and s["attn_kernel"] == "auto" else "")


def _rows(r: dict) -> list[tuple[str, str]]:
    s = r["specs"]
    wl, plan = s["workload"], s["plan"]
    mem = r["memory_bytes_per_device"]
    comm = r["comm_bytes_per_device"]
    rows = [
        ("engine", r.get("engine", "analytic")),
        (
            "configuration",
            f"{s['hardware']} on {s['topology']['spec']}, {s['model']['name']} "
            f"({s['model']['layers']} layers"
            + (f", FP8 {s['model']['fp8']}" if s["model"].get("fp8", "none") != "none" else "")
            + (f", KV cache {s['model']['kv_dtype']}" if s["model"].get("kv_dtype", "bf16") != "bf16" else "")
            + f"), plan {plan.get('label') or plan['name']}",
        ),
        (
            "workload",
            f"{wl['phase']}, batch {wl['batch']}, "
            + (
                f"prompt {wl['seq_len']}"
                + (f" after {wl['cached_len']} cached" if wl.get("cached_len") else "")
                if wl["phase"] == "prefill"
                else f"context {wl['context_len'] or wl['seq_len']}"
            )
            + (", causal" if wl["causal"] else ", bidirectional")
            + f", attention kernel {_kernel(s)}",
        ),
        (
            "latency",
            fmt_seconds(r["latency_s"])
            + (
                f"  ({r['generation']['tokens']} decode steps)"
                if r.get("generation")
                else "  (one decode step)"
                if wl["phase"] == "decode"
                else "  (prefill of the batch)"
            ),
        ),
        ("TPS", f"{fmt_count(r['tps'])} tokens/s"),
    ]
    if s.get("overrides"):
        derived = "".join(f"; {d}" for d in s.get("overrides_derived", []))
        rows.append(("overrides", ", ".join(s["overrides"]) + derived))
    if r.get("tpot_s") is not None:
        rows.append(("TPOT", fmt_seconds(r["tpot_s"])))
    g = r.get("generation")
    if g:
        text = (
            f"{g['tokens']} tokens, context {g['context_first']} -> {g['context_last']}: total "
            f"{fmt_seconds(g['total_s'])} (latency above), mean TPOT {fmt_seconds(g['tpot_mean_s'])}, "
            f"steps {fmt_seconds(g['step_first_s'])} -> {fmt_seconds(g['step_last_s'])}; memory at "
            f"the last step; {g['how']}"
        )
        rows.append(("generation", text))
    rows += [
        (
            "roofline floor",
            f"{fmt_seconds(r['roofline_latency_s'])} ({r['roofline']['bound']}-bound at datasheet peaks)",
        ),
        ("bottleneck", r["bottleneck"]),
        ("FLOPs / device", fmt_count(r["flops_per_device"]) + "FLOP"),
        ("HBM traffic / device", fmt_bytes(r["hbm_bytes_per_device"])),
        ("sent / device", f"NVLink {fmt_bytes(comm['nvlink'])}, InfiniBand {fmt_bytes(comm['ib'])}"),
        *[("InfiniBand", line) for line in _ib_lines(s)],
        (
            "memory / device",
            f"{fmt_bytes(mem['total'])} of {fmt_bytes(r['capacity_bytes'])}: "
            + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in mem.items() if k != "total"),
        ),
        ("feasible", "yes" if r["feasible"] else "NO"),
        ("verdict", r["verdict"]),
        ("largest batch that fits", str(r["max_batch"])),
        ("largest length that fits", str(r["max_length"])),
    ]
    for k, v in r.get("time_breakdown_s", {}).items():
        rows.append((f"  time: {k.replace('_', ' ')}", fmt_seconds(v)))
    for k, v in r.get("sim", {}).items():
        if not isinstance(v, (dict, list)):
            rows.append((f"  sim: {k.replace('_', ' ')}", str(v)))
    return rows


def _ib_lines(s: dict) -> list[str]:
    """Which of the plan's collectives cross InfiniBand (costmodel.topology.ib_crossings)."""
    from costmodel.topology import ib_crossings, parse_topology

    try:
        topo = parse_topology(s["topology"]["spec"])
    except Exception:  # noqa: BLE001 - a results file from elsewhere: no line rather than a traceback
        return []
    return ib_crossings(topo, s["plan"])


def format_result(r: dict) -> str:
    rows = _rows(r)
    notes = r.get("outside_measurements")
    if notes is not None:  # ringsim predict / simulate: where the answer leaves the profile's measurements
        rows.append(
            (
                "outside measurements",
                f"{len(notes)} (the figures below are extrapolated or not measured)"
                if notes
                else "none: every figure this configuration reads lies in the profile's measured ranges",
            )
        )
        rows += [("", f"- {n}") for n in notes]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
