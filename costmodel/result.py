"""Typed results: what an engine says about one configuration, serialised by one function.

``Result`` is the contract of ``ringsim predict --json`` and ``ringsim simulate --json``: each engine
fills it with what it saw (the simulator its own latency, time breakdown and bottleneck, plus a
``sim`` section), and ``to_dict`` is the only serialiser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DEFINITIONS = {
    "latency_s": "prefill: time to run the whole batch's prompt through all layers (= TTFT of the batch); "
    "decode: time of one decode step of the whole batch (isolated step, no overlap between steps)",
    "tps": "tokens per second: prefill B*L / latency_s; decode B / latency_s "
    "(one new token per sequence per step)",
    "tpot_s": "decode only: time per output token of one sequence = the decode step latency (--gen-tokens N: "
    "the mean over the N steps, whose total is latency_s; memory and feasible at the last step)",
    "flops_per_device": "FLOPs executed by the busiest device for the phase",
    "hbm_bytes_per_device": "HBM bytes read+written by the busiest device's kernels",
    "comm_bytes_per_device": "bytes sent by the busiest device, by link type",
    "memory_bytes_per_device": "peak resident bytes of one device by kind; "
    "prefill keeps the KV cache it builds",
    "roofline_latency_s": "max(FLOPs/peak, HBM bytes/HBM bw, NVLink bytes/NVLink bw, IB bytes/NIC bw) "
    "per device with datasheet peaks: no implementation of this plan can be faster",
    "time_breakdown_s": "analytic: kernel time by bound, communication on and off the path, bubble, launch; "
    "simulator: the critical path's time in compute kernels, communication and gaps",
    "outside_measurements": "ringsim predict / simulate only: one sentence per figure the configuration "
    "reads beyond its profile's measured ranges (costmodel/envelope.py); empty: every figure lies in a "
    "measured range",
}


@dataclass
class Result:
    engine: str  # "analytic" | "simulator"
    latency_s: float
    tps: float | None
    tpot_s: float | None
    ttft_s: float | None
    flops_per_device: float
    hbm_bytes_per_device: float
    comm_bytes_per_device: dict
    memory_bytes_per_device: dict
    capacity_bytes: float
    feasible: bool
    verdict: str
    max_batch: int
    max_length: int
    bottleneck: str
    roofline_latency_s: float
    roofline: dict
    time_breakdown_s: dict
    total_flops: float
    specs: dict
    sim: dict | None = None
    generation: dict | None = None  # decode with --gen-tokens N > 1: the N steps (costmodel/generate.py)
    definitions: dict = field(default_factory=lambda: dict(DEFINITIONS))

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("sim", "generation"):
            if d[k] is None:
                del d[k]
        return d

    def __getitem__(self, key: str):  # read like the JSON contract: result["latency_s"]
        if key in ("sim", "generation") and getattr(self, key) is None:
            raise KeyError(key)
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and key in self.keys()

    def keys(self):
        return self.to_dict().keys()

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default


__all__ = ["Result", "DEFINITIONS"]
