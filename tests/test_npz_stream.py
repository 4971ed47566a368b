"""npzstream.NpzStream: a sweep's npz written while the sweep runs holds the members write_npz writes (the
same names in the same order, the same .npy headers and bytes; zipfile checks every CRC as it reads), its
numeric members' data on 4 KiB boundaries; where it does not hold the columns it is given whole, or its
writes fail, ``finish`` declines and the npz is written from the columns as before; an interrupted run
leaves no file behind."""

from __future__ import annotations

import errno
import os
import struct
import zipfile

import numpy as np
import pytest
from sweeps import coded_sweep

from costmodel import npzstream, presets
from costmodel.npzstream import ALIGN, NpzStream
from costmodel.results import categoricals, read_npz, write_npz, write_sweep_files
from costmodel.sweep import parse_template, run_sweep

PLANS = ["ring=P", "tp=8,pp=P/8", "tp=8,ring=P/8", "ulysses=8,ring=P/8"]


def _sweep(phase: str, on_block=None, points: int = 300, plans=PLANS):
    return coded_sweep(phase, plans, on_block, points, hi=1 << 22)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None  # every member's CRC
        return {n: z.read(n) for n in z.namelist()}


def _local_extras(path) -> dict[str, tuple[int, int]]:
    """(where its stored bytes begin, its local header's extra field length) of each member, read from the
    file itself."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for i in z.infolist():
            f.seek(i.header_offset)
            h = f.read(30)
            n, x = struct.unpack("<HH", h[26:30])
            out[i.filename] = (i.header_offset + 30 + n + x, x)
    return out


def _direct_opens(folder) -> bool:
    """Whether a file in ``folder`` opens with O_DIRECT (tmpfs before Linux 6.6 refuses it)."""
    if not npzstream.DIRECT:
        return False
    f = folder / ".direct-probe"
    f.touch()
    try:
        os.close(os.open(f, os.O_WRONLY | os.O_DIRECT))
        return True
    except OSError:
        return False
    finally:
        f.unlink()


def _data_offsets(path) -> dict[str, int]:
    return {k: v[0] for k, v in _local_extras(path).items()}


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("buffer", [2 * ALIGN, 8 << 20])  # a staging buffer smaller than a block, and not
def test_streamed_npz_holds_the_members_write_npz_writes(tmp_path, phase, buffer):
    specs = {"kind": "sweep", "phase": phase}
    with NpzStream(tmp_path / "s", buffer=buffer, min_bytes=0) as stream:
        cols = _sweep(phase, stream.feed)
        cats = categoricals(cols, "USO")
        a = stream.finish(tmp_path / "s" / "a.npz", cols, specs, cats)
    assert a is not None
    b = write_npz(tmp_path / "b.npz", cols, specs, categories=cats)
    ma, mb = _members(a), _members(b)
    assert list(ma) == list(mb)  # the same names, in write_npz's order
    assert all(ma[k] == mb[k] for k in mb)  # .npy header and data, byte for byte
    sa, ca = read_npz(a)
    sb, cb = read_npz(b)
    assert sa == sb == specs and list(ca) == list(cb)
    off = _data_offsets(a)
    with np.load(a) as z:
        numeric = [k for k in z.files if z[k].dtype.kind in "fbiu" and z[k].ndim == 1 and len(z[k]) > 100]
    streamed = [k for k in numeric if "@" not in k and k not in ("P", "L")]
    assert len(streamed) >= 20
    for k in streamed:  # the data (after the .npy header) on a 4 KiB boundary: written past the page cache
        head = ma[k + ".npy"][: ma[k + ".npy"].index(b"\n") + 1]
        assert (off[k + ".npy"] + len(head)) % ALIGN == 0, k
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["a.npz"]  # no temporary file left


def test_a_small_sweep_is_not_streamed(tmp_path):
    with NpzStream(tmp_path) as stream:  # the default: below 16 MiB of numeric columns
        cols = _sweep("prefill", stream.feed, points=40)
        assert stream.finish(tmp_path / "a.npz", cols, {}, categoricals(cols, "USO")) is None
    assert list(tmp_path.iterdir()) == []


def test_columns_other_than_those_fed_are_declined(tmp_path):
    """The stream hands its file over only for the very arrays it was fed, every row once, in order."""
    with NpzStream(tmp_path, min_bytes=0) as stream:
        cols = _sweep("prefill", stream.feed)
        other = dict(cols, latency_s=cols["latency_s"].copy())  # the same values, another array
        assert stream.finish(tmp_path / "a.npz", other, {}, categoricals(cols, "USO")) is None
    cols = _sweep("prefill")
    n = len(cols["L"])
    cuts = np.linspace(0, n, 4).astype(int)
    with NpzStream(tmp_path, min_bytes=0) as stream:
        for a, b in [(cuts[0], cuts[1]), (cuts[2], cuts[3])]:  # a block left out
            stream.feed({k: v[:b] for k, v in cols.items()}, int(a), n)
        assert stream.finish(tmp_path / "b.npz", cols, {}, categoricals(cols, "USO")) is None
    assert list(tmp_path.iterdir()) == []


def test_sweep_files_fall_back_to_write_npz_when_the_stream_declines(tmp_path):
    cols = _sweep("prefill")
    specs = {"kind": "sweep"}
    with NpzStream(tmp_path / "s", min_bytes=0) as stream:
        stream.feed(dict(cols), 0, len(cols["L"]) + 1)  # a row count the sweep never reaches
        f = write_sweep_files(tmp_path / "s", cols, specs, [], with_csv=False, npz_stream=stream)
    g = write_sweep_files(tmp_path / "r", cols, specs, [], with_csv=False)
    assert _members(f["npz"]) == _members(g["npz"])
    assert {x for _, x in _local_extras(f["npz"]).values()} == {20}  # zip64 sizes alone: write_npz's file
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["sweep.json", "sweep.npz"]


def test_refused_direct_writes_go_through_the_page_cache(tmp_path, monkeypatch):
    """O_DIRECT opened but its writes refused (EINVAL): the same file, written through the page cache.
    Where this file system refuses O_DIRECT at open (tmpfs before Linux 6.6), the open is made to succeed
    without it, so that the stream takes its file for a direct one all the same; where the platform has
    no O_DIRECT, the stream never writes past the page cache, and the same file is asked of it."""
    if npzstream.DIRECT and not _direct_opens(tmp_path):
        real_open = npzstream.os.open

        def open_(path, flags, *args):
            return real_open(path, flags & ~os.O_DIRECT, *args)

        monkeypatch.setattr(npzstream.os, "open", open_)
    real = npzstream.os.pwrite
    calls = []  # (offset, stream.direct) of each write

    def pwrite(fd, data, at):
        calls.append((at, stream.direct))
        if len(calls) == 1:
            raise OSError(errno.EINVAL, "refused")
        return real(fd, data, at)

    monkeypatch.setattr(npzstream.os, "pwrite", pwrite)
    with NpzStream(tmp_path, min_bytes=0) as stream:
        cols = _sweep("prefill", stream.feed)
        a = stream.finish(tmp_path / "a.npz", cols, {}, categoricals(cols, "USO"))
    assert a is not None and len(calls) > 2
    if npzstream.DIRECT:  # the refused write was a direct one; written again at its place, page cache
        assert calls[0][1] and calls[1] == (calls[0][0], False)
    else:  # no O_DIRECT here: nothing was ever written past the page cache
        assert not any(d for _, d in calls)
    assert _members(a) == _members(write_npz(tmp_path / "b.npz", cols, {}))


def test_a_failed_write_declines_and_leaves_no_file(tmp_path, monkeypatch):
    """A full disk in the writer thread: ``finish`` declines (write_npz then raises the error itself)."""

    def pwrite(fd, data, at):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(npzstream.os, "pwrite", pwrite)
    with NpzStream(tmp_path, min_bytes=0) as stream:
        cols = _sweep("prefill", stream.feed)
        assert stream.finish(tmp_path / "a.npz", cols, {}, categoricals(cols, "USO")) is None
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_sweep_leaves_no_stream_file_nor_the_folder_it_made(tmp_path):
    out = tmp_path / "new" / "s"
    calls = []

    def feed(columns, start, total):
        stream.feed(columns, start, total)
        calls.append(start)
        if len(calls) == 2:
            assert stream.tmp is not None
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), NpzStream(out, min_bytes=0) as stream:
        _sweep("prefill", feed)
    assert list(tmp_path.iterdir()) == []


def test_ringsim_sweep_streams_a_large_npz_and_it_reads_as_the_columns(tmp_path):
    """End to end at ~9e4 points (past the 16 MiB below which nothing is streamed): the command's npz has
    its numeric members on 4 KiB boundaries (streamed) and holds what write_npz writes of the API's
    columns."""
    from ringsim.cli import main

    out = tmp_path / "s"
    args = ["sweep", "--seq", "8Ki:4Mi", "--points", "10000", "--gpus", "8,16,32", "--no-csv", "--quiet"]
    assert main([*args, "--out", str(out), "--plans", *PLANS]) == 0
    f = out / "sweep.npz"
    off = _data_offsets(f)
    m = _members(f)
    head = m["latency_s.npy"][: m["latency_s.npy"].index(b"\n") + 1]
    assert (off["latency_s.npy"] + len(head)) % ALIGN == 0  # streamed
    specs, cols = read_npz(f)
    assert len(cols["L"]) > 80_000
    hw, model = presets.load_hardware(specs["hardware"]), presets.load_model(specs["model"])
    tpls = [parse_template(t) for t in PLANS]
    ref, _ = run_sweep(
        model,
        hw,
        topo_kind=specs["topology"],
        phase="prefill",
        causal=True,
        kernel=specs["attn_kernel"],
        ring_variant=specs["ring_variant"],
        decode_attn=specs["decode_attn"],
        batch=1,
        seqs=np.unique(np.asarray(cols["L"])),
        gpus=[8, 16, 32],
        templates=tpls,
    )
    assert list(ref) == list(cols)
    for k in ref:
        a, b = np.asarray(ref[k]), cols[k]
        assert a.dtype.kind == b.dtype.kind or a.dtype.kind in "OU", k
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), k


def test_an_interrupted_ringsim_sweep_with_both_streams_leaves_no_folder_it_made(tmp_path, monkeypatch):
    """A sweep large enough to stream its npz, with its CSV, into a new --out folder, interrupted after a
    few blocks: the npz stream made the folder (it is fed first) while the CSV stream's file lay in it too;
    neither file nor folder is left behind."""
    from costmodel import results
    from ringsim.cli import main

    feed, calls = results.CsvStream.feed, []

    def interrupted(self, columns, start=0, total=None):
        feed(self, columns, start, total)
        calls.append(start)
        if len(calls) == 3:
            assert self.tmp is not None  # both streams' files are open in the new folder
            raise KeyboardInterrupt

    monkeypatch.setattr(results.CsvStream, "feed", interrupted)
    out = tmp_path / "new" / "s"
    args = ["sweep", "--seq", "8Ki:4Mi", "--points", "10000", "--gpus", "8,16,32", "--quiet"]
    assert main([*args, "--out", str(out), "--plans", *PLANS]) == 130
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_a_declined_stream_file_is_gone_before_write_npz_writes_its_own(tmp_path, monkeypatch):
    """Where the stream declines (here: a full disk after its first writes), its file, up to the npz's
    size, is removed before write_npz writes the npz anew beside it: not two copies at once on a disk
    that is full already."""
    from costmodel import results

    real, calls = npzstream.os.pwrite, []

    def pwrite(fd, data, at):
        calls.append(at)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, at)

    monkeypatch.setattr(npzstream.os, "pwrite", pwrite)
    write, seen = results.write_npz, []

    def write_npz(path, *args, **kw):
        seen.append(sorted(p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".npzstream.")))
        return write(path, *args, **kw)

    monkeypatch.setattr(results, "write_npz", write_npz)
    with NpzStream(tmp_path / "s", min_bytes=0) as stream:
        cols = _sweep("prefill", stream.feed)
        assert stream.tmp is not None
        f = write_sweep_files(tmp_path / "s", cols, {}, [], with_csv=False, npz_stream=stream)
    assert len(calls) > 3  # its file was written to, then its writes failed
    assert seen == [[]]  # write_npz called once, the stream's file gone by then
    assert _members(f["npz"]) == _members(write(tmp_path / "b.npz", cols, {}))
