"""``--attn-split``: an attention call run as kernels over groups of KV heads equals the one call."""

from __future__ import annotations

import pytest
import torch

from real import kernels


@pytest.mark.parametrize("h,hk,n", [(8, 8, 4), (8, 2, 4), (8, 2, 3), (6, 3, 2), (4, 1, 4)])
@pytest.mark.parametrize("causal", [True, False])
def test_split_equals_whole(h, hk, n, causal):
    g = torch.Generator().manual_seed(h * 10 + hk + n)
    q = torch.randn(2, h, 16, 8, generator=g)
    k, v = torch.randn(2, hk, 16, 8, generator=g), torch.randn(2, hk, 16, 8, generator=g)
    out, lse = kernels.attn_math(q, k, v, causal)
    calls = []

    def counted(*a):
        calls.append(a[0].shape[1])
        return kernels.attn_math(*a)

    out_s, lse_s = kernels.split_call(counted, q, k, v, causal, n)
    assert len(calls) == torch.gcd(torch.tensor(n), torch.tensor(hk)).item()  # as many kernels as groups
    assert sum(calls) == h
    torch.testing.assert_close(out_s, out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(lse_s, lse, rtol=1e-6, atol=1e-6)


def test_gqa_native_first_then_expand(monkeypatch):
    """A kernel that refuses K/V with fewer heads is called again with them expanded, and the refusal is
    remembered (per kernel and query shape); one that takes them gets them as they are."""
    q = torch.randn(1, 8, 4, 8)
    k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8)
    monkeypatch.setattr(kernels, "GQA_NATIVE", {})
    seen = []

    def refuses(kk, vv):
        seen.append(kk.shape[1])
        if kk.shape[1] != q.shape[1]:
            raise RuntimeError("number of heads in key/value must equal query")
        return kernels.attn_math(q, kk, vv, False)

    out, _ = kernels._gqa("x", refuses, q, k, v)
    assert seen == [2, 8] and kernels.GQA_NATIVE == {"x/qn": False}
    kernels._gqa("x", refuses, q, k, v)
    assert seen == [2, 8, 8]  # not tried again
    torch.testing.assert_close(out, kernels.attn_math(q, k, v, False)[0])
    took = []
    kernels._gqa("y", lambda kk, vv: took.append(kk.shape[1]) or kernels.attn_math(q, kk, vv, False), q, k, v)
    assert took == [2] and kernels.GQA_NATIVE["y/qn"] is True
