"""Where a prediction leaves the ground its profile measured (issue 12: trust beyond the corner).

A calibrated profile holds curves measured over some range: GEMM efficiency by FLOPs per call (or rows),
weight-streaming bandwidth by weight bytes, attention throughput by key length, decode attention's
read-time factor by work items, collectives by group size, the hosts' start skew by ranks.  Beyond a
curve's ends the model holds its end value flat (``specs.Curve``), extrapolates collectives from the
largest group measured by NCCL's ring step count, and the start skew by its last step per doubling: rules,
not measurements.  ``outside_measurements`` names, in one sentence each, every figure one configuration
reads beyond what was measured, so that a user knows which part of an answer is extrapolated.  An
uncalibrated profile (datasheet figures and estimates) gets one sentence saying so.

It builds one layer of the first and last rank's programs (``build.Builder``) to read the calls' shapes:
a few ms, so ``ringsim predict`` reports it and ``predict()`` (the API, ~1 ms) does not.
"""

from __future__ import annotations

import re

from . import kernels as km
from . import layers as Lr
from .build import Builder
from .config import Config
from .geometry import Geometry
from .schedule import OpKind
from .specs import Curve
from .units import fmt_bytes, fmt_count


def _range(c: Curve) -> tuple[float, float]:
    return float(min(c.x)), float(max(c.x))


def _fmt(v: float, unit: str) -> str:
    return fmt_bytes(v) if unit == "B" else f"{fmt_count(v)}{unit}"


class _Notes:
    """Sentences keyed by what they are about, each keeping the extreme value seen beyond its range."""

    def __init__(self) -> None:
        self.items: dict[str, list] = {}

    def beyond(self, key: str, what: str, value: float, curve: Curve | None, unit: str, rule: str) -> None:
        if curve is None:
            return
        lo, hi = _range(curve)
        if lo * (1 - 1e-3) <= value <= hi * (1 + 1e-3):  # the profile's figures carry 4 digits
            return
        side = "above" if value > hi else "below"
        old = self.items.get(f"{key}/{side}")
        if old is None or (value > old[1] if side == "above" else value < old[1]):
            self.items[f"{key}/{side}"] = [what, value, lo, hi, unit, rule, side]

    def add(self, key: str, text: str) -> None:
        self.items.setdefault(key, text)

    def sentences(self) -> list[str]:
        out = []
        for v in self.items.values():
            if isinstance(v, str):
                out.append(v)
                continue
            what, value, lo, hi, unit, rule, side = v
            out.append(
                f"{what} {_fmt(value, unit)} is {side} the measured {_fmt(lo, unit)}-{_fmt(hi, unit)}: {rule}"
            )
        return out


def _published_links(hw) -> dict[str, str]:
    """The links whose communication figures the profile's notes call published (not measured): link ->
    the note's reason."""
    out: dict[str, str] = {}
    for note in hw.provenance.get("notes", ()) if hw.provenance else ():
        m = re.match(r"achievable\.comm\.(\w+|\*)\.?\*?: published \((.*)\)$", str(note))
        if m:
            for link in hw.comm if m.group(1) == "*" else (m.group(1),):
                out[link] = m.group(2)
    return out


def _ops(cfg: Config):
    """One layer of the first and the last rank's programs (every call shape a rank makes)."""
    b = Builder(cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, cfg.kernel, 1, ring_steps=1)
    for r in sorted({0, cfg.plan.n_ranks - 1}):
        b.rank(r)
    return b.ops, sorted(b.kernels_used)


def outside_measurements(cfg: Config) -> list[str]:
    """One sentence per figure the configuration reads beyond the profile's measured range (empty: every
    figure it reads was measured over a range that holds it)."""
    hw = cfg.hardware
    kind = str(hw.provenance.get("kind", "")) if hw.provenance else ""
    if kind != "calibrated":
        return [
            f"profile {hw.name} is {kind or 'not calibrated'}: its achievable figures are datasheet values "
            "and estimates, none measured on the device"
        ]
    notes = _Notes()
    flat = "the model holds the end value"
    published = _published_links(hw)
    ops, kernels = _ops(cfg)
    geo = Geometry.of(cfg.model, cfg.workload, cfg.plan)
    for op in ops:
        if op.kind == OpKind.GEMM:
            m, n, k = op.shape[:3]
            fp8 = str(op.role) in cfg.model.fp8_roles
            by_fp8 = fp8 and hw.gemm_fp8_efficiency is not None
            eff = hw.gemm_fp8_efficiency if by_fp8 else hw.gemm_efficiency
            x = op.flops if by_fp8 or hw.gemm_efficiency_by == "flops" else m
            # compute and memory as the cost model times them (a curve counts where its term rules): the
            # call's Work as layers.gemm makes it, each term from kernels.gemm_device_time with the other zero
            w = Lr.gemm(str(op.role), m, n, k, cfg.model.dtype_bytes, (), (), fp8)
            wb, mem_bytes = w.weight_bytes, w.hbm_bytes - w.quant_bytes
            stream = hw.gemm_fp8_stream_bw if fp8 else hw.gemm_stream_bw
            mem = float(km.gemm_device_time(hw, 0.0, mem_bytes, m, fp8, wb))
            comp = float(km.gemm_device_time(hw, w.flops, 0.0, m, fp8, 0.0 if stream is not None else None))
            name = "an FP8 GEMM of" if by_fp8 else "a GEMM of"
            unit = " FLOP" if by_fp8 or hw.gemm_efficiency_by == "flops" else " rows"
            if comp >= mem:
                notes.beyond(f"gemm/{by_fp8}", name, x, eff, unit, f"{flat} (efficiency)")
            elif stream is not None and m <= 64:  # measured at 1-64 rows
                what = "a few-row FP8 GEMM's weight of" if fp8 else "a few-row GEMM's weight of"
                notes.beyond(f"stream/{fp8}", what, wb, stream, "B", f"{flat} (bandwidth)")
        elif op.kind == OpKind.ATTN:
            batch, heads, q_len, kv_len = op.shape[:4]
            for kern in kernels:
                a = hw.attention.get(kern)
                if a is None:
                    continue
                if q_len > 1:
                    c = a.causal if op.causal else a.full
                    notes.beyond(
                        f"attn/{kern}", f"{kern} attention over", kv_len, c, " keys", f"{flat} (throughput)"
                    )
                elif a.decode is not None and a.decode.items:
                    # as DecodeAttnModel.time: sequences x the KV heads a GPU reads (x query heads when the
                    # implementation expands grouped K/V)
                    items = batch * (heads if a.decode.kv_expanded else geo.kv_heads)
                    c = Curve(x=tuple(a.decode.items), y=tuple(a.decode.items_factor), name="decode_items")
                    notes.beyond(
                        f"decode/{kern}",
                        f"{kern} decode attention of",
                        items,
                        c,
                        " work items (sequences x KV heads)",
                        f"{flat} (read-time factor)",
                    )
        elif not op.kind.is_compute:
            link = str(op.link)
            if link in published:
                notes.add(
                    f"comm/{link}",
                    f"communication over {link}: the profile's figures are published, not measured "
                    f"({published[link]})",
                )
                continue
            g = len(op.peers)
            figs = hw.comm.get(link, {}).get(str(op.kind.collective))
            if figs is None or g <= 2 or op.kind in (OpKind.SEND, OpKind.RECV):
                continue
            measured = sorted({2, *figs.by_group})
            if g > measured[-1]:
                notes.add(
                    f"comm/{link}/{op.kind.value}",
                    f"{op.kind.value} over {g} ranks on {link}: measured in groups of "
                    f"{', '.join(map(str, measured))}; larger groups use the largest group's figures with "
                    "NCCL's ring step count (latency + steps x hop latency + volume / bus bandwidth)",
                )
    plan = cfg.plan
    units = plan.microbatches * plan.chunks
    if plan.pp > 1 and units <= plan.pp - 1:  # as validation.compare.idle_stages
        notes.add(
            "duty",
            f"a pipeline of {plan.pp} stages and {units} unit{'s' if units > 1 else ''}: each stage idles "
            "at least half the pass, and an idling GPU's power-limited clock recovers (GEMMs at 0.80-0.81 "
            "of peak after idling, 0.66-0.73 loaded, benchmarks/bench_gemm_duty.py); the profile is the "
            "loaded GPU's, so this answer leans pessimistic (measured: +4% to +10%)",
        )
    n = cfg.plan.n_ranks
    if hw.start_skew is not None and n > max(hw.start_skew.x):
        at = ", ".join(str(int(x)) for x in hw.start_skew.x)
        notes.add(
            "skew",
            f"the hosts' start skew at {n} ranks: measured at {at} ranks; more ranks extrapolate it by "
            "its last step per doubling",
        )
    return notes.sentences()


__all__ = ["outside_measurements"]
