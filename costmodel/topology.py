"""Topologies: which GPUs share an NVLink domain and which hops cross InfiniBand.

* ``nvswitch:N``     one node, N <= 8 GPUs on a non-blocking NVSwitch (each GPU's NVLink ports are the limit)
* ``ib:KxG``         K nodes of G <= 8 GPUs, one NDR NIC per GPU, rail-optimised fabric between nodes
* ``nvlink-domain:N`` N GPUs in one NVLink domain across nodes (NVLink Switch System, up to 576)
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import SpecError, check
from .specs import Link


class TopoKind(enum.StrEnum):
    NVSWITCH = "nvswitch"
    IB = "ib"
    NVLINK_DOMAIN = "nvlink-domain"


MAX_NODE_GPUS = 8
MAX_NVLINK_DOMAIN = 576


@dataclass(frozen=True, kw_only=True)
class Topology:
    kind: TopoKind
    nodes: int
    gpus_per_node: int

    def __post_init__(self) -> None:
        check(self.nodes >= 1, "topology.nodes", self.nodes, "must be >= 1")
        check(self.gpus_per_node >= 1, "topology.gpus_per_node", self.gpus_per_node, "must be >= 1")
        if self.kind == TopoKind.NVSWITCH:
            check(self.nodes == 1 and self.gpus_per_node <= MAX_NODE_GPUS, "--topology",
                  f"nvswitch:{self.gpus_per_node}", f"an NVSwitch node has 1 to {MAX_NODE_GPUS} GPUs")
        elif self.kind == TopoKind.IB:
            check(self.gpus_per_node <= MAX_NODE_GPUS, "--topology", f"ib:{self.nodes}x{self.gpus_per_node}",
                  f"a node has 1 to {MAX_NODE_GPUS} GPUs")
        else:
            check(self.nodes == 1 and self.gpus_per_node <= MAX_NVLINK_DOMAIN, "--topology",
                  f"nvlink-domain:{self.gpus_per_node}", f"an NVLink domain has 1 to {MAX_NVLINK_DOMAIN} GPUs")

    @property
    def n_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def spec(self) -> str:
        if self.kind == TopoKind.IB:
            return f"ib:{self.nodes}x{self.gpus_per_node}"
        return f"{self.kind.value}:{self.gpus_per_node}"

    def node_of(self, gpu: int) -> int:
        return gpu // self.gpus_per_node

    def link(self, a: int, b: int) -> Link:
        """Link type a transfer from GPU a to GPU b crosses (the slower one if it crosses both)."""
        return Link.NVLINK if self.node_of(a) == self.node_of(b) else Link.IB

    def group_link(self, gpus) -> Link:
        nodes = {self.node_of(g) for g in gpus}
        return Link.NVLINK if len(nodes) == 1 else Link.IB

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "nodes": self.nodes, "gpus_per_node": self.gpus_per_node, "spec": self.spec}


_TOPO = re.compile(r"^(nvswitch|nvlink-domain):(\d+)$|^ib:(\d+)x(\d+)$")


def parse_topology(text: str) -> Topology:
    m = _TOPO.match(str(text).strip())
    if not m:
        raise SpecError(
            f"--topology {text!r} is not valid: use nvswitch:N (N <= 8), ib:KxG (K nodes of G GPUs) or nvlink-domain:N"
        )
    if m.group(1):
        return Topology(kind=TopoKind(m.group(1)), nodes=1, gpus_per_node=int(m.group(2)))
    return Topology(kind=TopoKind.IB, nodes=int(m.group(3)), gpus_per_node=int(m.group(4)))


def topology_for(kind: str, n_gpus: int) -> Topology:
    """The topology of ``kind`` holding ``n_gpus`` (used by sweeps over P): ib uses 8-GPU nodes."""
    k = TopoKind(kind)
    if k == TopoKind.IB:
        g = min(MAX_NODE_GPUS, n_gpus)
        if n_gpus % g:
            raise SpecError(f"{n_gpus} GPUs do not fill whole {g}-GPU nodes for topology ib")
        return Topology(kind=k, nodes=n_gpus // g, gpus_per_node=g)
    return Topology(kind=k, nodes=1, gpus_per_node=n_gpus)
