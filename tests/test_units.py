"""One grammar for counts (k, M decimal; Ki, Mi binary) on the command line, in grids and on axes."""

from __future__ import annotations

import pytest

from costmodel.errors import SpecError
from costmodel.units import fmt_length, length_grid, parse_count, parse_range


@pytest.mark.parametrize(
    "text", ["8Ki", "1Mi", "100k", "1M", "2M", "7936", "131072", "3Mi", "96Ki", "1000", "1024"]
)
def test_fmt_length_reads_back(text):
    assert parse_count(fmt_length(parse_count(text)).replace(",", "")) == parse_count(text)


def test_m_is_decimal_and_mi_binary():
    assert parse_count("1M") == 1_000_000 and parse_count("1Mi") == 2**20
    assert fmt_length(2**20) == "1Mi" and fmt_length(10**6) == "1M" and fmt_length(8000) == "8k"


@pytest.mark.parametrize(
    "lo,hi,points,mult", [(8192, 2**20, 48, 256), (4096, 2**20, 7, 128), (1000, 10**6, 5, 8)]
)
def test_grid_starts_and_ends_where_asked(lo, hi, points, mult):
    g = length_grid(lo, hi, points, mult)
    assert g[0] == lo and g[-1] == hi
    assert all(v % mult == 0 for v in g) and list(g) == sorted(set(g.tolist()))
    assert len(g) <= points


def test_grid_refuses_an_end_it_cannot_hold():
    with pytest.raises(SpecError, match=r"START 8k \(8,000\) is not a multiple of 256.*7,936 or 8Ki"):
        length_grid(*parse_range("8k:1M"), 10, 256)
    with pytest.raises(SpecError, match="END 1M"):
        length_grid(*parse_range("8Ki:1M"), 10, 256)


def test_one_point_grid():
    assert length_grid(8192, 8192, 1, 256).tolist() == [8192]
