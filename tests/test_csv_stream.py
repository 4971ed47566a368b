"""results.CsvStream: a sweep's CSV written while the sweep runs is, byte for byte, the CSV written from the
whole columns afterwards; where its guess (columns left out of the rows, whole-number columns) fails, the
CSV is written from the columns as before; an interrupted run leaves no file behind."""

from __future__ import annotations

import numpy as np
import pytest
from sweeps import coded_sweep

from costmodel.results import CsvStream, write_csv

PLANS = ["ring=P", "tp=8,pp=P/8", "tp=8,ring=P/8", "ulysses=8,ring=P/8", "tp=2,pp=2,ring=P/4"]


def _sweep(phase: str, plans: list[str], on_block=None, points: int = 40):
    return coded_sweep(phase, plans, on_block, points)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize(
    "plans,guess_after,taken",
    [
        (PLANS, 2, True),  # the guess from two templates holds: the streamed file is taken
        (PLANS[:2], 2, True),
        (PLANS[:1], 2, False),  # one template: the stream never starts
        (PLANS, 1, False),  # the first template's weights are one-valued, the sweep's are not
    ],
)
def test_streamed_csv_is_the_csv_of_the_columns(tmp_path, phase, plans, guess_after, taken):
    specs = {"kind": "sweep", "phase": phase}
    with CsvStream(tmp_path / "s", specs, chunk_rows=37, guess_after=guess_after) as stream:
        cols = _sweep(phase, plans, stream.feed)
        n = len(cols["L"])
        assert stream.matches(list(cols), n, specs, True) == taken
        a = write_csv(tmp_path / "s" / "a.csv", cols, specs, constants_in_header=True, stream=stream)
    b = write_csv(tmp_path / "b.csv", cols, specs, constants_in_header=True, chunk_rows=37)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["a.csv"]  # no temporary file left


def test_a_failed_guess_stops_the_stream_and_the_columns_are_written(tmp_path):
    """A column one-valued in the guessed rows and not after (forged here): the stream stops writing."""
    cols = _sweep("prefill", PLANS)
    n = len(cols["L"])
    cols["mem_workspace_bytes"] = cols["mem_workspace_bytes"].copy()
    cols["mem_workspace_bytes"][n - 3] += 1.0
    specs = {"kind": "sweep"}
    cuts = np.linspace(0, n, 5).astype(int)
    with CsvStream(tmp_path, specs) as stream:
        for a, b in zip(cuts[:-1], cuts[1:]):
            stream.feed({k: v[:b] for k, v in cols.items()}, int(a))
        assert not stream.matches(list(cols), n, specs, True)
        s = write_csv(tmp_path / "s.csv", cols, specs, constants_in_header=True, stream=stream)
    r = write_csv(tmp_path / "r.csv", cols, specs, constants_in_header=True)
    assert s.read_bytes() == r.read_bytes() and "mem_workspace_bytes" in r.read_text().splitlines()[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "s.csv"]


def test_an_interrupted_sweep_leaves_no_stream_file_nor_the_folder_it_made(tmp_path):
    out = tmp_path / "new" / "s"
    calls = []

    def feed(columns, start, total):
        stream.feed(columns, start)
        calls.append(start)
        if len(calls) == 3:  # the stream's file is open and being written
            assert stream.tmp is not None
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), CsvStream(out, {"kind": "sweep"}) as stream:
        _sweep("prefill", PLANS, feed)
    assert not (tmp_path / "new").exists()


def test_ringsim_sweep_writes_the_csv_of_its_columns(tmp_path, monkeypatch):
    """End to end: the command's CSV (streamed) equals the CSV written from its npz's columns."""
    from costmodel.results import read_npz
    from ringsim.cli import main

    taken = []
    commit = CsvStream.commit
    monkeypatch.setattr(CsvStream, "commit", lambda self, path: taken.append(path) or commit(self, path))
    out = tmp_path / "s"
    args = ["sweep", "--points", "30", "--gpus", "8,16", "--plans", *PLANS, "--out", str(out), "--quiet"]
    assert main(args) == 0 and len(taken) == 1  # the streamed file was taken
    specs, cols = read_npz(out / "sweep.npz")
    r = write_csv(tmp_path / "r.csv", cols, specs, constants_in_header=True)
    assert (out / "sweep.csv").read_bytes() == r.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["sweep.csv", "sweep.json", "sweep.npz"]


@pytest.mark.parametrize("refuse", [False, True])
def test_direct_file_writes_the_bytes_it_is_given(tmp_path, monkeypatch, refuse):
    """Pieces of every size across the aligned buffer's edges, from bytes, memoryviews and arrays; where
    the file system refuses O_DIRECT writes (forged: EINVAL), the same bytes through the page cache."""
    import errno
    import os

    from costmodel import results

    if refuse:
        real = os.pwrite

        def pwrite(fd, data, at):
            if getattr(pwrite, "first", True):
                pwrite.first = False
                raise OSError(errno.EINVAL, "refused")
            return real(fd, data, at)

        monkeypatch.setattr(results.os, "pwrite", pwrite)
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 100_003, dtype=np.uint8)
    path = tmp_path / "f.bin"
    path.write_bytes(b"")
    cuts = np.sort(rng.integers(0, len(data), 40))
    with results.DirectFile(path, buffer=8192) as f:
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            piece = data[a:b]
            f.write(piece.tobytes() if a % 3 == 0 else memoryview(piece) if a % 3 == 1 else piece)
        assert f.tell() == len(data)
    assert path.read_bytes() == data.tobytes()


def test_a_large_csv_written_past_the_page_cache_is_the_same_text(tmp_path, monkeypatch):
    from costmodel import results

    cols = _sweep("decode", PLANS[:2])
    a = write_csv(tmp_path / "a.csv", cols, {"k": 1}, constants_in_header=True)
    monkeypatch.setattr(results, "DIRECT_ROWS", 1)  # every CSV a DirectFile
    b = write_csv(tmp_path / "b.csv", cols, {"k": 1}, constants_in_header=True)
    assert a.read_bytes() == b.read_bytes()


def test_a_large_npz_written_past_the_page_cache_holds_the_same_members(tmp_path, monkeypatch):
    """The zip's local headers rewritten over what was written (DirectFile's seek back): the same members,
    byte for byte, as np.savez writes, and every CRC right."""
    import zipfile

    from costmodel import results

    cols = _sweep("prefill", PLANS[:2])
    a = results.write_npz(tmp_path / "a.npz", cols, {"k": 1})
    monkeypatch.setattr(results, "DIRECT_BYTES", 1)  # every npz a DirectFile
    monkeypatch.setattr(results.DirectFile.__init__, "__defaults__", (8192,))  # many buffers a member
    b = results.write_npz(tmp_path / "b.npz", cols, {"k": 1})
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        assert zb.testzip() is None and za.namelist() == zb.namelist()
        assert all(za.read(k) == zb.read(k) for k in za.namelist())
    assert a.stat().st_size == b.stat().st_size


def test_a_failed_write_is_raised_to_the_caller(tmp_path, monkeypatch):
    """A DirectFile write that fails (the disk full) is raised to the writer, never lost."""
    import errno

    from costmodel import results

    real, calls = results.os.pwrite, []

    def pwrite(fd, data, at):
        calls.append(at)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, at)

    monkeypatch.setattr(results.os, "pwrite", pwrite)
    path = tmp_path / "f.bin"
    path.write_bytes(b"")
    with pytest.raises(OSError, match="No space left"):
        with results.DirectFile(path, buffer=8192) as f:
            for _ in range(10):
                f.write(bytes(8192))
    assert len(calls) >= 2
