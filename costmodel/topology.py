"""Topologies: which GPUs share an NVLink domain and which hops cross InfiniBand.

* ``nvswitch:N``     one node, N <= 8 GPUs on a non-blocking NVSwitch (each GPU's NVLink ports are the limit)
* ``ib:KxG``         K nodes of G <= 8 GPUs, one NDR NIC per GPU, rail-optimised fabric between nodes
* ``nvlink-domain:N`` N GPUs in one NVLink domain across nodes (NVLink Switch System, up to 576)
* ``nvl:NxK``        K NVLink domains of N GPUs each (e.g. ``nvl:72x4``: four GB200 NVL72 racks, 288 GPUs),
                     joined by InfiniBand (one NIC per GPU): a group inside a domain uses NVLink, a group
                     spanning domains crosses InfiniBand
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
    NVL = "nvl"


MAX_NODE_GPUS = 8
MAX_NVLINK_DOMAIN = 576
NVL_DOMAIN = 72  # GPUs of one NVL72 rack (GB200 NVL72): the domain size sweeps use for topology kind nvl


@dataclass(frozen=True, kw_only=True)
class Topology:
    kind: TopoKind
    nodes: int
    gpus_per_node: int

    def __post_init__(self) -> None:
        check(self.nodes >= 1, "--topology", self.spec, "it needs at least one node (domain)")
        check(self.gpus_per_node >= 1, "--topology", self.spec, "a node (domain) needs at least one GPU")
        if self.kind == TopoKind.NVSWITCH:
            check(
                self.nodes == 1 and self.gpus_per_node <= MAX_NODE_GPUS,
                "--topology",
                f"nvswitch:{self.gpus_per_node}",
                f"an NVSwitch node has 1 to {MAX_NODE_GPUS} GPUs",
            )
        elif self.kind == TopoKind.IB:
            check(
                self.gpus_per_node <= MAX_NODE_GPUS,
                "--topology",
                f"ib:{self.nodes}x{self.gpus_per_node}",
                f"a node has 1 to {MAX_NODE_GPUS} GPUs",
            )
        elif self.kind == TopoKind.NVL:
            check(
                self.gpus_per_node <= MAX_NVLINK_DOMAIN,
                "--topology",
                f"nvl:{self.gpus_per_node}x{self.nodes}",
                f"an NVLink domain has 1 to {MAX_NVLINK_DOMAIN} GPUs (nvl:NxK: K domains of N GPUs)",
            )
        else:
            check(
                self.nodes == 1 and self.gpus_per_node <= MAX_NVLINK_DOMAIN,
                "--topology",
                f"nvlink-domain:{self.gpus_per_node}",
                f"an NVLink domain has 1 to {MAX_NVLINK_DOMAIN} GPUs",
            )

    @property
    def n_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def spec(self) -> str:
        if self.kind == TopoKind.IB:
            return f"ib:{self.nodes}x{self.gpus_per_node}"
        if self.kind == TopoKind.NVL:
            return f"nvl:{self.gpus_per_node}x{self.nodes}"
        return f"{self.kind.value}:{self.gpus_per_node}"

    def node_of(self, gpu: int) -> int:
        """The node (for nvl: the NVLink domain) a GPU belongs to; GPUs are numbered node by node."""
        return gpu // self.gpus_per_node

    def link(self, a: int, b: int) -> Link:
        """Link type a transfer from GPU a to GPU b crosses (the slower one if it crosses both)."""
        return Link.NVLINK if self.node_of(a) == self.node_of(b) else Link.IB

    def group_link(self, gpus) -> Link:
        nodes = {self.node_of(g) for g in gpus}
        return Link.NVLINK if len(nodes) == 1 else Link.IB

    def to_dict(self) -> dict:
        return {
            "kind": self.kind.value,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "spec": self.spec,
        }


# the collectives of each axis (what crosses InfiniBand when the axis' groups leave a node)
AXIS_TRAFFIC = {
    "tp": "TP all-reduces (and the LM head's token all-gather)",
    "ulysses": "ulysses all-to-alls",
    "ring": "ring transfers",
    "pp": "pipeline transfers",
}


def ib_crossings(topo: Topology, mesh: dict) -> list[str]:
    """One line per plan axis (``mesh``: degree by axis, innermost first) whose groups leave a node or an
    NVLink domain, i.e. whose traffic crosses InfiniBand (the closed forms' ``Ctx.crosses_ib`` rule)."""
    if topo.kind not in (TopoKind.IB, TopoKind.NVL):
        return []
    out, span = [], 1
    unit = "node" if topo.kind == TopoKind.IB else "NVLink domain"
    for axis in ("tp", "ulysses", "ring", "pp"):
        d = int(mesh.get(axis, 1))
        span *= d
        if d > 1 and span > topo.gpus_per_node:
            out.append(
                f"{AXIS_TRAFFIC[axis]} cross InfiniBand ({axis}={d}: groups span {span} GPUs, "
                f"a {unit} has {topo.gpus_per_node})"
            )
    return out


_TOPO = re.compile(r"^(nvswitch|nvlink-domain):(\d+)$|^ib:(\d+)x(\d+)$|^nvl:(\d+)x(\d+)$")
FORMS = {
    "nvswitch:N": f"one node, N <= {MAX_NODE_GPUS} GPUs on an NVSwitch (NVLink only)",
    "ib:KxG": f"K nodes of G <= {MAX_NODE_GPUS} GPUs, one NIC per GPU; "
    f"groups leaving a node cross InfiniBand",
    "nvlink-domain:N": f"N <= {MAX_NVLINK_DOMAIN} GPUs in one NVLink domain (NVLink only)",
    "nvl:NxK": f"K NVLink domains of N <= {MAX_NVLINK_DOMAIN} GPUs (nvl:72x4 = four NVL72 racks, 288 GPUs); "
    f"groups spanning domains cross InfiniBand",
}


def parse_topology(text: str) -> Topology:
    m = _TOPO.match(str(text).strip()) if str(text).isascii() else None
    if not m:
        raise SpecError(
            f"--topology {text!r} is not valid: use nvswitch:N (N <= 8), ib:KxG (K nodes of G GPUs), "
            f"nvlink-domain:N "
            f"or nvl:NxK (K NVLink domains of N GPUs, e.g. nvl:72x4)"
        )
    if m.group(1):
        return Topology(kind=TopoKind(m.group(1)), nodes=1, gpus_per_node=int(m.group(2)))
    if m.group(3):
        return Topology(kind=TopoKind.IB, nodes=int(m.group(3)), gpus_per_node=int(m.group(4)))
    return Topology(kind=TopoKind.NVL, nodes=int(m.group(6)), gpus_per_node=int(m.group(5)))


def topology_for(kind: str, n_gpus: int) -> Topology:
    """The topology of ``kind`` holding ``n_gpus`` (used by sweeps over P): ib uses 8-GPU nodes, nvl
    NVLink domains of up to 72 GPUs (NVL72 racks)."""
    try:
        k = TopoKind(kind)
    except ValueError:
        raise SpecError(
            f"--topology {kind!r} is not a topology kind: valid are {[t.value for t in TopoKind]}"
        ) from None
    if k in (TopoKind.IB, TopoKind.NVL):
        size = MAX_NODE_GPUS if k == TopoKind.IB else NVL_DOMAIN
        g = min(size, n_gpus)
        if n_gpus % g:
            what = "nodes" if k == TopoKind.IB else "NVLink domains"
            raise SpecError(f"{n_gpus} GPUs do not fill whole {g}-GPU {what} for topology {k.value}")
        return Topology(kind=k, nodes=n_gpus // g, gpus_per_node=g)
    return Topology(kind=k, nodes=1, gpus_per_node=n_gpus)
