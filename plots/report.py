"""REPORT.md: the seed report's tables and figures as GitHub-readable Markdown (relative links)."""

from __future__ import annotations

from costmodel.units import fmt_bytes, fmt_count, fmt_length, fmt_seconds


def _fmt(metric: str, v) -> str:
    if v is None:
        return "n/a"
    if metric == "tps":
        return f"{fmt_count(v)} tokens/s"
    if metric == "tpot_s":
        return fmt_seconds(v)
    return f"{v:.3g}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[str(c).replace("|", "\\|").replace("\n", "<br>") for c in r] for r in rows]
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(r) + " |" for r in esc]
    )


def claims_markdown(doc: dict, with_change: bool = True) -> str:
    """The claims table: claim, predictions per topology, physical ceiling, verdict, and (the report's
    long form) what would have to change; ``with_change=False`` is the short form for the README."""
    topos = list(dict.fromkeys(t for c in doc["claims"] for t in c["predicted"]))
    rows = []
    for c in doc["claims"]:
        ceil = _fmt(c["metric"], c["ceiling"]) if c["ceiling"] is not None else "n/a"
        row = [c["text"]] + [_fmt(c["metric"], c["predicted"].get(t)) for t in topos] + [ceil, c["verdict"]]
        rows.append(row + (["<br>".join("• " + x for x in c["change"])] if with_change else []))
    header = (
        ["seed claim"]
        + [f"model, {t}" for t in topos]
        + ["physical ceiling (TPS) / floor (TPOT), any plan", "verdict"]
    )
    return _table(header + (["what would have to change"] if with_change else []), rows)


def verdict_markdown(doc: dict) -> str:
    """The short verdict table (for the README)."""
    return claims_markdown(doc, with_change=False)


def predictions_markdown(doc: dict) -> str:
    rows = []
    for p in doc["predictions"]:
        r = p["result"]
        rows.append(
            [
                p["topology"],
                f"{p.get('plan_label', p['plan_name'])}: `{p['plan_name']}`",
                p.get("kernels_used", "—"),
                p["phase"],
                fmt_seconds(r["latency_s"]),
                f"{fmt_count(r['tps'])}",
                fmt_seconds(r["tpot_s"]) if r["tpot_s"] is not None else "—",
                f"{fmt_seconds(r['roofline_latency_s'])} ({r['roofline']['bound']})",
                r["bottleneck"],
                f"{fmt_bytes(r['memory_bytes_per_device']['total'])} / {fmt_bytes(r['capacity_bytes'])}",
                "yes" if r["feasible"] else "**no**",
                str(r["max_batch"]),
                f"{r['max_length']:,}",
            ]
        )
    return _table(
        [
            "topology",
            "plan",
            "kernel",
            "phase",
            "latency",
            "TPS (tokens/s)",
            "TPOT",
            "roofline floor (bound)",
            "bottleneck",
            "memory / device",
            "fits",
            "largest B that fits",
            "largest L that fits",
        ],
        rows,
    )


def memory_markdown(doc: dict) -> str:
    rows = []
    seen = set()
    for p in doc["predictions"]:
        key = (p["plan_name"], p["phase"])
        if key in seen:  # memory does not depend on the topology
            continue
        seen.add(key)
        m = p["result"]["memory_bytes_per_device"]
        rows.append(
            [p["plan_name"], p["phase"]]
            + [
                fmt_bytes(m[k])
                for k in ("weights", "kv_cache", "activations", "comm_buffers", "workspace", "total")
            ]
            + [f"{m['total'] / p['result']['capacity_bytes']:.2f}x"]
        )
    return _table(
        [
            "plan",
            "phase",
            "weights",
            "KV cache",
            "activations",
            "comm buffers",
            "workspace",
            "total",
            "of HBM",
        ],
        rows,
    )


def comm_roofline_markdown(doc: dict) -> str:
    rows = []
    for p in doc["predictions"]:
        r = p["result"]
        c, rf = r["comm_bytes_per_device"], r["roofline"]
        rows.append(
            [
                p["topology"],
                p["plan_name"],
                p["phase"],
                fmt_bytes(c["nvlink"]),
                fmt_bytes(c["ib"]),
                fmt_seconds(rf["compute_s"]),
                fmt_seconds(rf["hbm_s"]),
                fmt_seconds(rf["nvlink_s"]),
                fmt_seconds(rf["ib_s"]),
                rf["bound"],
            ]
        )
    return _table(
        [
            "topology",
            "plan",
            "phase",
            "sent on NVLink",
            "sent on InfiniBand",
            "compute ceiling",
            "HBM ceiling",
            "NVLink ceiling",
            "IB ceiling",
            "bound",
        ],
        rows,
    )


def crossover_markdown(rows: list[dict]) -> str:
    """The crossover table, over the lengths where both plans fit: where ring starts to win and by how much;
    'never' and 'always' say over which lengths, and 'never' how close ring came."""
    out = []
    for r in rows:
        st = r.get("status") or (
            "never" if r["crossover_L"] is None else "always" if r["ring_wins_from_start"] else "from"
        )
        if st == "no common fit":
            x = (
                "no length where both fit (ring fits up to "
                + (fmt_length(r["ring_fits_to"]) if r.get("ring_fits_to") else "none")
                + ", the other up to "
                + (fmt_length(r["other_fits_to"]) if r.get("other_fits_to") else "none")
                + ")"
            )
        elif st == "never":
            best = r.get("speedup_best")
            x = f"never from {fmt_length(r['L_min'])} to {fmt_length(r['L_max'])}" + (
                f" (at best {best:.2f}x, at {fmt_length(r['L_speedup_best'])})" if best else ""
            )
        elif st == "always":
            x = f"always: from {fmt_length(r['L_min'])} (the shortest swept) to {fmt_length(r['L_max'])}"
        else:
            x = f"{fmt_length(r['crossover_L'])}"
        sp = r.get("speedup_at_L_max")
        out.append(
            [
                r["topology"],
                r["phase"],
                str(r["P"]),
                r["ring_plan"],
                r["other_plan"],
                x,
                "n/a" if sp is None else f"{sp:.2f}x at {fmt_length(r['L_max'])}",
            ]
        )
    return _table(
        [
            "topology",
            "phase",
            "P",
            "ring plan",
            "compared with",
            "ring faster from L = (where both fit)",
            "ring speed-up at the longest L where both fit",
        ],
        out,
    )


def img(path: str, alt: str) -> str:
    return f"![{alt}]({path})"


def validation_markdown(summary: dict) -> str:
    """The ``ringsim validate`` summary as a table: median and max |error| per group and engine."""
    rows = [
        "| group / engine | n | median abs error | max abs error | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for k, d in summary.items():
        tgt = ", ".join(f"{n} <= {v:.0%}" for n, v in d["targets"].items())
        rows.append(
            f"| {k} | {d['n']} | {d['median_abs_err']:.1%} | {d['max_abs_err']:.1%} | {tgt} | "
            f"{'yes' if d['meets_targets'] else 'NO'} |"
        )
    return "\n".join(rows)


def render(
    doc: dict,
    *,
    explore_md: str,
    questions_md: list[str],
    verdicts_md: str,
    figures: dict,
    skipped: dict,
    runtime_s: float,
    command: str,
    validation_summary: dict | None = None,
) -> str:
    s, ce = doc["specs"], doc["ceilings"]
    defs = doc["predictions"][0]["result"]["definitions"]
    lines = [
        "# The seed experiment, checked with physics",
        "",
        f"`{command}` — analytic model (`costmodel`), {s['gpus']}x {s['hardware']}, model {s['model']}, "
        f"B = {s['batch']}, L = {s['seq']:,}; ran in {runtime_s:.1f} s. "
        f"Seed claims from `{s['claims_source']}`. "
        "Every number below is computed by the model from the files in `data/`; every figure is drawn from "
        "one of those files (`ringsim plot data/FILE` re-makes it).",
        "",
        "## Verdict: the seed's claims beside the model and the physical ceiling",
        "",
        claims_markdown(doc),
        "",
        img(figures["claims"], "seed claims vs model and physical ceiling"),
        "",
        "Physical ceilings, whatever the plan, on datasheet peaks:",
        "",
        f"* prefill TPS ceiling = {ce['definitions']['prefill_tps_ceiling']} = "
        f"**{fmt_count(ce['prefill_tps_ceiling'])} tokens/s** "
        f"({fmt_count(ce['prefill_total_flops'])}FLOP in all)",
        f"* decode TPOT floor = {ce['definitions']['decode_tpot_floor_s']} = "
        f"**{fmt_seconds(ce['decode_tpot_floor_s'])}** (weights {fmt_bytes(ce['weights_bytes'])}, KV cache "
        f"{fmt_bytes(ce['kv_cache_bytes'])}); decode TPS ceiling = B / floor = "
        f"{fmt_count(ce['decode_tps_ceiling'])} tokens/s",
        f"* memory: every plan holds at least {ce['definitions']['min_memory_per_device_bytes']} = "
        f"**{fmt_bytes(ce['min_memory_per_device_bytes'])} per device** against "
        f"{fmt_bytes(ce['capacity_bytes'])} of HBM",
        "",
        "## Predictions for the seed configuration",
        "",
        "Definitions used:",
        "",
    ]
    lines += [f"* `{k}`: {v}" for k, v in defs.items()]
    lines += [
        "",
        "The baseline `tp=8,pp=2` is shown at its fairest: the micro-batch and chunk counts (chunked "
        "prefill) that minimise its latency, Megatron pipeline sends (each TP rank sends its 1/tp slice), "
        "the profile's fastest attention kernel call by call; the claims are judged against it. The old "
        "straw man, one micro-batch, is kept only as a labelled comparison. Ring runs the zigzag layout in "
        "prefill and the all-gather merge in decode, with the same kernels. The `kernel` column names "
        "the attention kernel(s) each plan was assumed to run.",
        "",
        predictions_markdown(doc),
        "",
        "### Memory per device",
        "",
        memory_markdown(doc),
        "",
        "### Communication per device and roofline ceilings",
        "",
        "Ceilings are this plan's bytes or FLOPs over the datasheet rate; "
        "the roofline floor is their maximum.",
        "",
        comm_roofline_markdown(doc),
        "",
    ]
    lines += [
        "## Which plan wins, memory included",
        "",
        "The seed's experiment file (`studies/experiments/seed.toml`) through `ringsim explore`: every "
        "placeable plan of every family (ring, Ulysses, TP, PP, TP x PP, hybrids, chunked pipelines; "
        "every ring "
        "layout and decode merge; the fastest kernel per call; Megatron pipeline sends) at every (L, P). "
        "A ring-family plan is one with Ring Attention in it (alone or with TP, Ulysses or PP); TP/PP-family "
        "plans are TP, PP, TP x PP and chunked pipelines. Only lengths where both fit are compared.",
        "",
        explore_md,
        verdicts_md,
        "",
        "## The seed's question for Llama 3.1 70B and 405B, 128Ki-1Mi",
        "",
        "The same question for real models at long context, each from its experiment file in "
        "`studies/experiments/` (H100 SXM nodes over InfiniBand; GB200 NVL72 racks: NVLink domains of 72 "
        "GPUs joined by InfiniBand, and one NVL72 domain; the GB200 profile's achievable figures are "
        "estimates until calibrated).",
        "",
    ]
    lines += questions_md or ["No question experiments were run.", ""]
    lines += ["## One layer, simulated", ""]
    lines += (
        [img(figures["timeline"], "simulated one-layer timeline of both plans"), ""]
        if "timeline" in figures
        else [f"Not produced: {skipped.get('timeline', 'no timeline')}", ""]
    )
    lines += ["## Predicted vs measured", ""]
    if validation_summary:
        lines += [
            "The committed measurements (`validation/data/`) against both engines, as `ringsim validate` "
            "reports them; `decode` is the executor issued op by op (host-bound), `decode-graph` its "
            "CUDA-graph replay.",
            "",
            validation_markdown(validation_summary),
            "",
        ]
    lines += (
        [img(figures["validation"], "predicted vs measured"), ""]
        if "validation" in figures
        else [f"Not produced: {skipped.get('validation', 'no validation data')}", ""]
    )
    return "\n".join(lines) + "\n"
