"""Unit tests of the executor's pieces: layouts against the schedule, kernels, the LSE merge."""

from __future__ import annotations

import pytest
import torch

from costmodel.plan import Plan
from real import kernels, layout
from real.buffers import Acc, Packed, Part


@pytest.mark.parametrize("variant", ["plain", "zigzag", "striped"])
@pytest.mark.parametrize("ring", [1, 2, 3, 4])
def test_ring_positions_partition_the_sequence(variant, ring):
    L = 2 * ring * 3
    got = sorted(p for r in range(ring) for p in layout.ring_positions(variant, ring, r, L))
    assert got == list(range(L))


@pytest.mark.parametrize("variant", ["plain", "zigzag", "striped"])
@pytest.mark.parametrize("causal", [True, False])
def test_ring_blocks_cover_exactly_the_causal_mask(variant, causal):
    """Union over ring steps of each rank's (query, key) blocks == the mask of full attention."""
    R, L = 4, 32
    lr = L // R
    for p in range(R):
        qpos = layout.ring_positions(variant, R, p, L)
        seen = torch.zeros(lr, L, dtype=torch.int32)
        for t in range(R):
            src = (p - t) % R
            kpos = layout.ring_positions(variant, R, src, L)
            for qs, ks, c in layout.ring_blocks(variant, causal, R, lr, p, t):
                for i in range(qs.start, qs.stop):
                    for j in range(ks.start, ks.stop):
                        if c and (j - ks.start) > (i - qs.start) + (ks.stop - ks.start) - (
                            qs.stop - qs.start
                        ):
                            continue
                        seen[i, kpos[j]] += 1
        want = torch.tensor([[int(not causal or k <= q) for k in range(L)] for q in qpos], dtype=torch.int32)
        assert torch.equal(seen, want)


def test_dense_positions_with_ulysses():
    plan = Plan(ring=2, ulysses=2, ring_variant="zigzag")
    allpos = sorted(p for r in range(4) for p in layout.dense_positions(plan, r, 16))
    assert allpos == list(range(16))


def test_math_kernel_matches_softmax_and_lse():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float32)
    k = torch.randn(2, 2, 7, 8, generator=g, dtype=torch.float32)
    v = torch.randn(2, 2, 7, 8, generator=g, dtype=torch.float32)
    out, lse = kernels.attn_math(q, k, v, causal=True)
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    s = q @ kk.transpose(-1, -2) / 8**0.5
    mask = torch.ones(5, 7, dtype=torch.bool).tril(2)
    s = s.masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(out, torch.softmax(s, -1) @ vv)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1))


def test_lse_merge_equals_attention_over_the_union():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 2, 6, 4, generator=g)
    k = torch.randn(1, 2, 10, 4, generator=g)
    v = torch.randn(1, 2, 10, 4, generator=g)
    full, _ = kernels.attn_math(q, k, v, False)
    acc = Acc.empty(1, 2, 6, 4, "cpu")
    acc.init(Part(*kernels.attn_math(q, k[:, :, :3], v[:, :, :3], False)))
    acc.merge(Part(*kernels.attn_math(q, k[:, :, 3:], v[:, :, 3:], False)))
    torch.testing.assert_close(acc.o, full)
    # a partial block covering only some query rows
    acc2 = Acc.empty(1, 2, 6, 4, "cpu")
    acc2.init(Part(*kernels.attn_math(q[:, :, 2:], k, v, False), rows=slice(2, 6)))
    acc2.merge(Part(*kernels.attn_math(q[:, :, :2], k, v, False), rows=slice(0, 2)))
    torch.testing.assert_close(acc2.o, full)


def test_packed_views_do_not_overlap():
    pk = Packed.new(3, 2, 4, torch.bfloat16, "cpu")
    pk.q.fill_(1)
    pk.o.fill_(2)
    pk.lse.fill_(3)
    assert pk.q.float().eq(1).all() and pk.o.eq(2).all() and pk.lse.eq(3).all()
    assert pk.buf.numel() == Packed.nbytes(3, 2, 4, torch.bfloat16)


def test_kernel_choice_on_cpu_is_math():
    c = kernels.choose("auto", torch.device("cpu"), torch.float32, (1, 2, 16, 8))
    assert c["chosen"] == "math"
    assert kernels.probe("flash", torch.device("cpu"), torch.bfloat16) is not None


def test_real_imports_only_costmodel_and_torch():
    """real imports costmodel (+ torch), never sim, validation, plots or the CLI (ringsim); no simpy."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class B:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('simpy', 'sim', 'validation', 'plots', 'ringsim', "
        "'matplotlib', 'studies'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import real.run, real.executor, real.selftest, real.harness, real.reference\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
