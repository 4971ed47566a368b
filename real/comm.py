"""Process groups and the communication calls the executor issues (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from costmodel.plan import Plan


class Groups:
    """Process groups by their ranks (the ``peers`` of collective ops), created collectively."""

    def __init__(self) -> None:
        self._by_ranks: dict[tuple[int, ...], object] = {}

    def prepare(self, plan: Plan) -> None:
        """Create the groups of every axis of ``plan``'s mesh (all ranks call this, in the same order)."""
        world = dist.get_world_size()
        for axis, _ in plan.active():
            for g in plan.groups(axis):
                if g not in self._by_ranks:
                    self._by_ranks[g] = (
                        dist.group.WORLD if g == tuple(range(world)) else dist.new_group(list(g))
                    )

    def __call__(self, ranks: tuple[int, ...]):
        return self._by_ranks[tuple(ranks)]


def all_gather_stacked(out: torch.Tensor, inp: torch.Tensor, group) -> None:
    """out[i] = inp of the i-th rank of ``group`` (gloo has no all_gather_into_tensor)."""
    if out.device.type == "cuda":
        dist.all_gather_into_tensor(out, inp, group=group)
    else:
        dist.all_gather(list(out.unbind(0)), inp, group=group)


def sendrecv(sends: list[tuple[torch.Tensor, int]], recvs: list[tuple[torch.Tensor, int]]) -> list:
    """Issue sends and receives as one group (global peer ranks); returns the works."""
    ops = [dist.P2POp(dist.isend, t, p) for t, p in sends] + [dist.P2POp(dist.irecv, t, p) for t, p in recvs]
    return dist.batch_isend_irecv(ops) if ops else []
