"""A sweep's npz written while the sweep runs: each block of rows goes to its place in the file as the sweep
finishes it, so that the file is nearly whole when the sweep ends.

``results.write_npz`` writes a member (a column) only once the column is whole, so a sweep's npz (256 MB at
a million points) is written after the sweep, at the disk's pace (0.4-0.7 s on the VMs this project is
measured on).  Here the file's layout is fixed at the first block: the sweep's total row count and its
numeric columns' dtypes give every numeric member's size, so each has its place; each later block's rows
are written into them (past the page cache where the platform allows, ``results.DirectFile``'s reasons),
each member's CRC-32 carried along.  What the sweep settles only at its end -- the string columns' codes
(compacted), the grid's P and L, the column list and the specs -- is written after, with the members' local
headers (their CRCs now known) and the zip's central directory.

The file holds the members ``write_npz`` writes, with the same names, headers and bytes (``np.load`` and
``results.read_npz`` read it as they read ``write_npz``'s; zipfile checks each member's CRC as it reads
it): a zip64 archive of stored members, as numpy writes, laid out otherwise -- each numeric member's data
starts on a 4 KiB boundary (padding in its local header's extra field, the block Android's zipalign uses,
id 0xD935), and the members settled at the end lie after the others.  The records follow PKWARE's
APPNOTE.TXT (6.3.10): local file header 4.3.7, central directory header 4.3.12, zip64 extended
information 4.5.3, zip64 end of central directory record and locator 4.3.14-15, end of central directory
4.3.16.

``finish`` hands the file over only where it holds exactly the columns it is given (the same names in the
same order, the numeric ones the very arrays it was fed, every row fed once, in order); else, or after an
error in its thread, it returns None and the caller writes the npz from the columns as before.  ``close``
removes a file not handed over."""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import struct
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from .results import (
    DIRECT,
    DIRECT_BYTES,
    Categorical,
    Jobs,
    hand_over,
    make_folder,
    npz_members,
    pwrite_whole,
    remove_made,
)

ALIGN = 4096  # a multiple of every device's logical block size; a member's data starts at a multiple
_PAD_ID = 0xD935  # the extra field zipalign pads with: a 2-byte alignment, then zeros (ignored by readers)
_VERSION = 45  # "version needed to extract" for zip64 (APPNOTE 4.4.3.2)
_MADE_BY = (3 << 8) | 45  # UNIX, 4.5 (as zipfile writes on POSIX, zip64)
_FFFF, _FFFFFFFF = 0xFFFF, 0xFFFFFFFF


def _npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    """The .npy header numpy writes for a C-ordered array of ``dtype`` and ``shape`` (1.0 where it fits)."""
    d = {"descr": npy.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    b = io.BytesIO()
    try:
        npy.write_array_header_1_0(b, d)
    except ValueError:
        b = io.BytesIO()
        npy.write_array_header_2_0(b, d)
    return b.getvalue()


def _dos_time(t: float) -> tuple[int, int]:
    y, mo, d, h, mi, s = time.localtime(t)[:6]
    return (h << 11) | (mi << 5) | (s // 2), ((max(y, 1980) - 1980) << 9) | (mo << 5) | d


class _Member:
    """One member: its name, where its local header lies, its .npy header, its data's size and CRC."""

    def __init__(self, name: str, npy_head: bytes, nbytes: int, pad: int = 0) -> None:
        self.name = (name + ".npy").encode()
        self.flags = 0 if self.name.isascii() else 0x800  # the name as UTF-8 (APPNOTE 4.4.4 bit 11)
        self.npy_head, self.nbytes, self.pad, self.crc, self.offset = npy_head, nbytes, pad, 0, 0

    def extra(self) -> bytes:
        z64 = struct.pack("<HHQQ", 1, 16, self.size, self.size)  # sizes (local header: 4.5.3)
        if not self.pad:
            return z64
        return struct.pack("<HHH", _PAD_ID, self.pad - 4, ALIGN) + bytes(self.pad - 6) + z64

    @property
    def size(self) -> int:  # stored: the .npy header and the data
        return len(self.npy_head) + self.nbytes

    def local_header(self, when: tuple[int, int]) -> bytes:
        extra = self.extra()
        return (
            struct.pack(
                "<4sHHHHHLLLHH",
                b"PK\x03\x04",
                _VERSION,
                self.flags,
                0,  # stored
                *when,
                self.crc,
                _FFFFFFFF,  # sizes: in the zip64 field
                _FFFFFFFF,
                len(self.name),
                len(extra),
            )
            + self.name
            + extra
        )

    def head_len(self) -> int:
        return 30 + len(self.name) + len(self.extra())

    def central(self, when: tuple[int, int]) -> bytes:
        z64 = struct.pack("<HHQQQ", 1, 24, self.size, self.size, self.offset)
        return (
            struct.pack(
                "<4sHHHHHHLLLHHHHHLL",
                b"PK\x01\x02",
                _MADE_BY,
                _VERSION,
                self.flags,
                0,
                *when,
                self.crc,
                _FFFFFFFF,
                _FFFFFFFF,
                len(self.name),
                len(z64),
                0,  # comment
                0,  # disk
                0,  # internal attributes
                0o600 << 16,  # external attributes: rw------- (as zipfile gives a member written by np.savez)
                _FFFFFFFF,  # the local header's offset: in the zip64 field
            )
            + self.name
            + z64
        )


class NpzStream:
    """``feed(columns, start, total)`` as ``run_sweep(on_block=)`` calls it; ``finish(path, columns, specs,
    categories)`` once the sweep is done; ``close()`` always (removes a file not handed over).  A sweep
    whose numeric columns come to less than ``min_bytes`` is not streamed (``finish`` gives None)."""

    def __init__(self, folder, *, buffer: int = 8 << 20, min_bytes: int = DIRECT_BYTES) -> None:
        self.folder, self.min_bytes = Path(folder), min_bytes
        self.ok, self.rows, self.total, self.tmp = True, 0, 0, None
        self._cap = max(ALIGN, buffer // ALIGN * ALIGN)
        self._names: list | None = None
        self._streamed: dict[str, _Member] = {}
        self._ptr: dict[str, int] = {}
        self._pos: dict[str, int] = {}  # next file offset to write of each streamed member (aligned)
        self._carry: dict[str, bytes] = {}  # its bytes after that offset not yet written (< ALIGN)
        self._end = 0  # where the members settled at the end go
        self._jobs = Jobs()
        self._fd: int | None = None
        self.direct = False  # the file written past the page cache (O_DIRECT)
        self._made: list[Path] = []
        self._taken = False
        self._when = _dos_time(time.time())

    def __enter__(self) -> NpzStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the sweep's side ------------------------------------------------------------------------------
    def feed(self, columns: dict, start: int = 0, total: int | None = None) -> None:
        if not self.ok:
            return
        try:
            job = self._job(columns, start, total)
        except Exception:  # noqa: BLE001 - not a layout it can take: write_npz writes the file
            job = None
        if job is None:
            self.ok = False
            return
        self._jobs.put(job)

    def _job(self, columns: dict, start: int, total: int | None):
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        if self._names is None:
            if not total or start != 0 or n > total:
                return None
            self._layout(columns, total)
            self._names = names
        elif names != self._names or start != self.rows or n > self.total:
            return None
        job = []
        for k in self._streamed:
            c = columns[k]
            if not isinstance(c, np.ndarray) or c.ctypes.data != self._ptr[k] or len(c) != n:
                return None  # not the arrays it laid out
            job.append((k, c[start:n].view(np.uint8)))
        self.rows = n
        return job

    def _layout(self, columns: dict, total: int) -> None:
        at = 0
        for k, c in columns.items():
            if isinstance(c, Categorical) or not isinstance(c, np.ndarray):
                continue  # settled at the end
            if c.ndim != 1 or c.dtype.kind not in "fbiu" or not c.flags.c_contiguous:
                continue
            m = _Member(k, _npy_header(c.dtype, (total,)), total * c.dtype.itemsize)
            m.offset, m.crc = at, zlib.crc32(m.npy_head)  # the member's CRC: its .npy header, then its rows
            base = at + m.head_len() + len(m.npy_head)
            m.pad = -base % ALIGN
            while m.pad < 6:
                m.pad += ALIGN
            data = base + m.pad
            self._streamed[k], self._ptr[k] = m, c.ctypes.data
            self._pos[k], self._carry[k] = data, b""
            at = data + m.nbytes
        if at < self.min_bytes:  # a small file: written whole at the end (its 4 KiB paddings would bloat it)
            raise ValueError("too small to stream")
        self.total, self._end = total, at
        self._open()

    def _open(self) -> None:
        self._made = make_folder(self.folder)
        fd, self.tmp = tempfile.mkstemp(dir=self.folder, prefix=".npzstream.", suffix=".tmp")
        self._fd, self.direct = fd, False
        if DIRECT:
            try:
                self._fd = os.open(self.tmp, os.O_WRONLY | os.O_DIRECT)
                os.close(fd)
                self.direct = True
            except OSError:  # refused (tmpfs): the page cache
                self._fd = fd
        self._map = mmap.mmap(-1, self._cap)  # page-aligned
        self._buf = np.frombuffer(self._map, np.uint8)
        self._jobs.start("npz-stream", self._write)

    @property
    def path(self):
        return self.tmp

    # -- the writer thread ------------------------------------------------------------------------------
    def _write(self, job) -> None:
        for k, b in job:
            m = self._streamed[k]
            m.crc = zlib.crc32(b, m.crc)
            self._put(k, b)

    def _put(self, k: str, b: np.ndarray) -> None:
        """The bytes b after member k's carried ones: whole aligned pieces written, the rest carried.  Where
        b's memory lines up with the file (a column on a page boundary: ``run_sweep`` allocates them so),
        its whole pages go to the file from where they lie; else through the staging buffer."""
        carry = self._carry[k]
        c = len(carry)
        if (b.ctypes.data - c) % ALIGN == 0 and c + len(b) >= ALIGN:
            head = (ALIGN - c) % ALIGN
            if c:  # the carried page completed in the staging buffer
                self._buf[:c] = np.frombuffer(carry, np.uint8)
                self._buf[c:ALIGN] = b[:head]
                self._pwrite(self._map, ALIGN, self._pos[k])
                self._pos[k] += ALIGN
            w = (len(b) - head) // ALIGN * ALIGN
            if w:
                self._pwrite(b[head : head + w], w, self._pos[k])
                self._pos[k] += w
            self._carry[k] = bytes(b[head + w :])
            return
        buf, cap = self._buf, self._cap
        buf[:c] = np.frombuffer(carry, np.uint8)
        i = 0
        while True:
            m = min(cap - c, len(b) - i)
            buf[c : c + m] = b[i : i + m]
            i, c = i + m, c + m
            w = c // ALIGN * ALIGN
            if w:
                self._pwrite(self._map, w, self._pos[k])
                self._pos[k] += w
            rest = bytes(buf[w:c])
            c = len(rest)
            buf[:c] = np.frombuffer(rest, np.uint8)
            if i >= len(b):
                break
        self._carry[k] = bytes(buf[:c])

    def _pwrite(self, src, n: int, at: int) -> None:
        """src's first n bytes (page-aligned memory, n a whole number of pages) to the file at ``at``."""
        with memoryview(src) as whole, whole[:n] as view:
            pwrite_whole(self, view, at)

    def _put_at(self, data, at: int) -> None:
        """Bytes (any buffer) at ``at``, through the page cache (after ``_buffered``)."""
        with memoryview(data) as v, v.cast("B") as b:
            pwrite_whole(self, b, at)

    def _buffered(self) -> None:
        fd = os.open(self.tmp, os.O_WRONLY)
        old, self._fd = self._fd, fd
        os.close(old)
        self.direct = False

    def _stop(self) -> None:
        self._jobs.join()
        if self._jobs.failed:  # the file is not handed over: write_npz writes it
            self.ok = False

    # -- the end ---------------------------------------------------------------------------------------
    def finish(self, path, columns: dict, specs: dict | None, categories: dict | None = None) -> Path | None:
        """The npz of ``columns`` and ``specs`` (as ``write_npz`` would write them) at ``path`` (in the same
        folder or one beside it), or None where this stream does not hold those columns whole."""
        self._stop()
        if not (self.ok and self._names == list(columns) and self.rows == self.total):
            return self._decline()
        arrays = npz_members(columns, specs, categories=categories)
        for k in self._streamed:
            a = arrays.get(k)
            if a is not columns[k] or a.ctypes.data != self._ptr[k] or len(a) != self.total:
                return self._decline()
        try:
            self._write_rest(arrays)
        except OSError:
            return self._decline()
        path = hand_over(self.tmp, path)
        self.tmp, self._taken = None, True
        return path

    def _decline(self) -> None:
        """Not handed over: its file (up to the npz's size) removed now, before write_npz writes the npz
        beside it (a disk full already is not asked for two copies); ``close`` removes the rest."""
        self.ok = False
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None

    def _write_rest(self, arrays: dict) -> None:
        self._buffered()  # through the page cache from here: small and unaligned pieces
        for k, m in self._streamed.items():  # the last piece of each, its local header (its CRC now known)
            self._put_at(self._carry[k], self._pos[k])
            self._put_at(m.local_header(self._when) + m.npy_head, m.offset)
        members: list[_Member] = []
        at = self._end
        for k, a in arrays.items():
            if k in self._streamed:
                members.append(self._streamed[k])
                continue
            a = np.asanyarray(a)
            if a.dtype.hasobject:
                raise ValueError("an object array cannot be stored without pickles")
            a = a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
            m = _Member(k, _npy_header(a.dtype, a.shape), a.nbytes)
            m.offset = at
            data = a.reshape(-1).view(np.uint8)
            m.crc = zlib.crc32(data, zlib.crc32(m.npy_head))
            self._put_at(m.local_header(self._when) + m.npy_head, at)
            self._put_at(data, at + m.head_len() + len(m.npy_head))
            at += m.head_len() + m.size
            members.append(m)
        cd = b"".join(m.central(self._when) for m in members)
        n = len(members)
        eocd64 = struct.pack("<4sQHHLLQQQQ", b"PK\x06\x06", 44, _MADE_BY, _VERSION, 0, 0, n, n, len(cd), at)
        loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, at + len(cd), 1)
        eocd = struct.pack(
            "<4sHHHHLLH",
            b"PK\x05\x06",
            0,
            0,
            min(n, _FFFF),
            min(n, _FFFF),
            min(len(cd), _FFFFFFFF),
            _FFFFFFFF,
            0,
        )
        self._put_at(cd + eocd64 + loc + eocd, at)
        os.ftruncate(self._fd, at + len(cd) + len(eocd64) + len(loc) + len(eocd))

    def close(self) -> None:
        """Stop the writer; remove the file (and the folders it made) unless it was handed over."""
        self._stop()
        self._decline()  # its descriptor closed, its file removed (where not handed over)
        if getattr(self, "_map", None) is not None:
            self._buf = None
            self._map.close()
            self._map = None
        if not self._taken:
            remove_made(self._made)
