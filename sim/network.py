"""Links as resources, and transfers that share them.

The physical model (one place, so the engine stays about the IR):

* every GPU has an NVLink egress and an NVLink ingress port into a non-blocking NVSwitch (or NVLink
  Switch System), each of capacity ``hw.nvlink_bw_Bps`` per direction: the switch never blocks, the
  GPU's ports are the limit;
* every GPU reaches InfiniBand through a NIC (egress and ingress of ``hw.nic_bw_Bps`` each); by default
  one NIC per GPU (rail-optimised DGX/HGX), or ``nics_per_node`` NICs shared by consecutive GPUs; the
  fabric between nodes is non-blocking (fat tree), so only NICs are contended;
* a transfer inside a node (or an NVLink domain) holds the sender's NVLink egress and the receiver's
  NVLink ingress; a transfer between nodes holds the sender's NIC egress and the receiver's NIC ingress;
  a collective holds the ports of every member on the link type it crosses.

Sharing is proportional, scaled from the calibrated figures: a flow alone on its links moves data at
its achievable rate (``hw.comm[link][collective].bw_Bps``, e.g. the p2p figure for a send/recv), so an
uncontended transfer takes exactly its ``est_s``; when the flows on a link ask for more than the link's
capacity, each flow's rate is scaled by capacity / demand on its most loaded link.  A link's capacity
for this is its line rate, or the largest calibrated rate of a flow on it when that is higher (a bus
bandwidth figure can exceed one port's line rate; alone, a calibrated figure is always achieved).
"""

from __future__ import annotations

from costmodel.specs import Hardware, Link
from costmodel.topology import Topology


class Network:
    """Link ids, capacities and names for a topology; paths of transfers and collectives."""

    def __init__(self, topo: Topology, hw: Hardware, nics_per_node: int | None = None):
        self.topo, self.hw = topo, hw
        g = topo.n_gpus
        gpn = topo.gpus_per_node
        self.nics_per_node = gpn if nics_per_node is None else nics_per_node
        if not 1 <= self.nics_per_node <= gpn or gpn % self.nics_per_node:
            from costmodel.errors import SpecError

            raise SpecError(
                f"--nics-per-node {nics_per_node} is not valid: it must divide the "
                f"{gpn} GPUs of a node of {topo.spec} (1 to {gpn})"
            )
        self.gpus_per_nic = gpn // self.nics_per_node
        n_nics = topo.nodes * self.nics_per_node
        # link ids: [0, g) nvlink out, [g, 2g) nvlink in, then nic out, nic in
        self.n_links = 2 * g + 2 * n_nics
        self.cap = [hw.nvlink_bw_Bps] * (2 * g) + [hw.nic_bw_Bps] * (2 * n_nics)
        self._g, self._n_nics = g, n_nics
        self._path_memo: dict[tuple[int, int], tuple[int, ...]] = {}

    def nic(self, gpu: int) -> int:
        return (
            self.topo.node_of(gpu) * self.nics_per_node + (gpu % self.topo.gpus_per_node) // self.gpus_per_nic
        )

    def name(self, link: int) -> str:
        g, n = self._g, self._n_nics
        if link < g:
            return f"gpu{link}/nvlink/out"
        if link < 2 * g:
            return f"gpu{link - g}/nvlink/in"
        nic = link - 2 * g
        d = "out" if nic < n else "in"
        nic %= n
        return f"node{nic // self.nics_per_node}/nic{nic % self.nics_per_node}/{d}"

    def kind(self, link: int) -> str:
        return Link.NVLINK.value if link < 2 * self._g else Link.IB.value

    def path(self, src: int, dst: int) -> tuple[int, ...]:
        """Links a point-to-point transfer from GPU ``src`` to GPU ``dst`` holds."""
        key = (src, dst)
        p = self._path_memo.get(key)
        if p is None:
            if self.topo.node_of(src) == self.topo.node_of(dst):
                p = (src, self._g + dst)
            else:
                p = (2 * self._g + self.nic(src), 2 * self._g + self._n_nics + self.nic(dst))
            self._path_memo[key] = p
        return p

    def group_links(self, group: tuple[int, ...], link: str) -> tuple[int, ...]:
        """Links a collective over ``group`` holds (every member's ports of that link type)."""
        g = self._g
        if link == Link.IB:
            nics = sorted({self.nic(r) for r in group})
            return tuple(2 * g + n for n in nics) + tuple(2 * g + self._n_nics + n for n in nics)
        return tuple(group) + tuple(g + r for r in group)
