"""What the simulator captures that the closed forms miss: links shared by transfers (ring hops and
pipeline transfers crossing InfiniBand through shared NICs, an all-reduce and a pipeline send on one
GPU's NVLink port) and the causal imbalance of the plain ring layout."""

import pytest

from costmodel.config import Config
from costmodel.kernels import comm_time
from costmodel.plan import parse_plan
from costmodel.predict import _eval
from costmodel.presets import load_hardware
from costmodel.schedule import Op, Schedule
from costmodel.specs import Model, Workload
from costmodel.topology import parse_topology
from sim import SimOptions, run_config, simulate

MODEL = Model(name="t", layers=2, d_model=1024, n_heads=8, n_kv_heads=8, head_dim=128, d_ff=4096)


@pytest.fixture(scope="module")
def hw1():
    return load_hardware("h100-sxm", ["achievable.compute_slowdown_under_comm=1.0"])


def _cfg(hw, plan, topo, wl, **kw):
    return Config(
        hardware=hw, topology=parse_topology(topo), model=MODEL, workload=wl, plan=parse_plan(plan, **kw)
    )


def _transfer_times(res, kind, link):
    ops = res.schedule.ops
    return [res.end[i] - res.xstart[i] for i, o in enumerate(ops) if o.kind == kind and o.link == link]


def test_ring_hops_crossing_ib_share_a_nic(hw1):
    """tp=2 x ring=8 on two 8-GPU nodes: two rings cross between the nodes side by side (GPUs 6->8 and
    7->9, 14->0 and 15->1).  With a NIC per GPU their hops do not meet and the simulator agrees with
    the analytic model (which charges every step the IB hop); with one NIC per pair of GPUs the two
    hops share it, each IB transfer takes twice as long, and the ring slows down: the closed form,
    which knows no NICs, does not move."""
    cfg = _cfg(hw1, "tp=2,ring=8", "ib:2x8", Workload(batch=1, seq_len=16384))
    ana = float(_eval(cfg)["latency_s"])
    own = run_config(cfg, SimOptions(), coarsen=False)
    shared = run_config(cfg, SimOptions(nics_per_node=4), coarsen=False)
    assert own.latency_s == pytest.approx(ana, rel=0.01)
    x_own = _transfer_times(own.result, "recv", "ib")
    x_shared = _transfer_times(shared.result, "recv", "ib")
    fig = hw1.comm["ib"]["p2p"]
    block = [o.msg_bytes for o in own.result.schedule.ops if o.kind == "recv" and o.link == "ib"][0]
    alone = fig.latency_s + block / fig.bw_Bps
    assert max(x_own) == pytest.approx(alone, rel=1e-9)
    # two flows of 46 GB/s on a 50 GB/s NIC: each moves at 25 GB/s
    assert max(x_shared) == pytest.approx(fig.latency_s + block / 25e9, rel=1e-6)
    assert shared.latency_s > 1.2 * own.latency_s
    nic = {lk["link"]: lk for lk in shared.links if lk["type"] == "ib"}
    assert "node0/nic3/out" in nic and "node0/nic2/out" not in nic  # GPUs 6 and 7 share NIC 3


def test_pipeline_transfers_share_a_nic(hw1):
    """tp=4 x pp=2 on two 4-GPU nodes with one NIC per node: the four TP ranks of a stage hand their
    activations to the next stage at the same moment, through one NIC: each transfer moves at a
    quarter of the rate, the phase slows down, and the analytic (S+m-2) x transfers cannot see it."""
    cfg = _cfg(hw1, "tp=4,pp=2", "ib:2x4", Workload(batch=4, seq_len=8192), microbatches=4)
    ana = float(_eval(cfg)["latency_s"])
    own = run_config(cfg, SimOptions())
    one = run_config(cfg, SimOptions(nics_per_node=1))
    fig = hw1.comm["ib"]["p2p"]
    act = [o.msg_bytes for o in own.result.schedule.ops if o.kind == "send"][0]
    assert max(_transfer_times(own.result, "send", "ib")) == pytest.approx(
        fig.latency_s + act / fig.bw_Bps, rel=1e-9
    )
    assert max(_transfer_times(one.result, "send", "ib")) == pytest.approx(
        fig.latency_s + act / (hw1.nic_bw_Bps / 4), rel=1e-6
    )
    assert one.latency_s > own.latency_s * 1.1
    assert abs(own.latency_s / ana - 1) < 0.05 < one.latency_s / ana - 1


def test_allreduce_and_pipeline_send_share_an_nvlink_port(hw1):
    """One GPU issues a TP all-reduce and a pipeline send in one NCCL group.  Both hold its NVLink
    egress (450 GB/s): 360 + 370 GB/s asked, so each is scaled by 450/730 while they overlap; the send
    (smaller) ends first and the all-reduce finishes alone.  Hand-computed."""
    hw = hw1
    ar_b, p2p_b = 4e8, 1e8
    ar = hw.comm["nvlink"]["all_reduce"]
    pf = hw.comm["nvlink"]["p2p"]
    est_ar = float(comm_time(hw, "nvlink", "all_reduce", ar_b, 2))
    vol = ar_b  # 2 (g-1)/g * msg with g = 2
    ops = [
        Op(
            id=0,
            rank=0,
            stream="comm",
            kind="all_reduce",
            role="tp_all_reduce",
            tag="tp/ar",
            peers=(0, 1),
            match=1,
            batch=1,
            msg_bytes=ar_b,
            link_bytes=vol,
            link="nvlink",
            est_s=est_ar,
        ),
        Op(
            id=1,
            rank=0,
            stream="comm",
            kind="send",
            role="pp_act",
            tag="pp/send",
            peers=(2,),
            match=2,
            batch=1,
            msg_bytes=p2p_b,
            link_bytes=p2p_b,
            link="nvlink",
            est_s=pf.latency_s + p2p_b / pf.bw_Bps,
        ),
        Op(
            id=2,
            rank=1,
            stream="comm",
            kind="all_reduce",
            role="tp_all_reduce",
            tag="tp/ar",
            peers=(0, 1),
            match=1,
            msg_bytes=ar_b,
            link_bytes=vol,
            link="nvlink",
            est_s=est_ar,
        ),
        Op(
            id=3,
            rank=2,
            stream="comm",
            kind="recv",
            role="pp_act",
            tag="pp/recv",
            peers=(0,),
            match=2,
            msg_bytes=p2p_b,
            link="nvlink",
            est_s=pf.latency_s + p2p_b / pf.bw_Bps,
        ),
    ]
    res = simulate(Schedule(n_ranks=3, ops=ops), parse_topology("nvswitch:4"), hw)
    lat_ar = est_ar - vol / ar.bw_Bps
    s = hw.nvlink_bw_Bps / (ar.bw_Bps + pf.bw_Bps)
    # the send starts moving at pf.latency_s (12 us), the all-reduce at lat_ar (10.8 us); hand-step it
    t0, t1 = lat_ar, pf.latency_s
    ar_left = vol - ar.bw_Bps * (t1 - t0)  # alone until the send joins
    t_send_end = t1 + p2p_b / (pf.bw_Bps * s)
    ar_left -= ar.bw_Bps * s * (t_send_end - t1)
    t_ar_end = t_send_end + ar_left / ar.bw_Bps
    assert res.end[1] == pytest.approx(t_send_end, rel=1e-9) and res.end[3] == pytest.approx(
        t_send_end, rel=1e-9
    )
    assert res.end[0] == pytest.approx(t_ar_end, rel=1e-9) and res.end[2] == pytest.approx(t_ar_end, rel=1e-9)
    assert t_ar_end > est_ar * 1.05 and t_send_end > ops[1].est_s * 1.5  # both slowed by the sharing


def test_plain_layout_causal_imbalance(hw1):
    """Causal attention on the plain layout gives rank p work for p+1 blocks: ranks idle while the last
    one computes.  The simulator shows the imbalance per rank; zigzag balances it.  The analytic model
    only charges each step its slowest rank, so it cannot say who waits."""
    wl = Workload(batch=2, seq_len=65536)
    plain = run_config(_cfg(hw1, "ring=4", "nvswitch:4", wl, ring_variant="plain"), coarsen=False)
    zig = run_config(_cfg(hw1, "ring=4", "nvswitch:4", wl, ring_variant="zigzag"), coarsen=False)
    cp = [r["compute_s"] for r in plain.ranks]
    cz = [r["compute_s"] for r in zig.ranks]
    assert cp == sorted(cp) and (cp[-1] - cp[0]) / cp[-1] > 0.4  # rank 0 computes far less than rank 3
    assert (max(cz) - min(cz)) / max(cz) < 0.15  # residual: half blocks run at other kernel rates
    assert plain.ranks[0]["idle_s"] + plain.ranks[0]["waiting_s"] > 0.3 * plain.latency_s
    assert plain.latency_s > 1.3 * zig.latency_s
