"""Results files: written atomically (temp file + rename) and carrying the specs that made them."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np

from .errors import SpecError

_UMASK = os.umask(0)
os.umask(_UMASK)
_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's 0600 is for secrets, not results


class Categorical:
    """A column held as ``labels[codes]`` (a string column of few distinct values, an integer column of a
    sweep's grid): ``np.asarray`` of it gives the plain column, and the files' writers use the codes as
    they are (each label formatted once) instead of recovering them from the plain column."""

    __slots__ = ("labels", "codes")

    def __init__(self, labels, codes):
        self.labels, self.codes = np.asarray(labels), np.asarray(codes)

    def __array__(self, dtype=None, copy=None):
        a = self.labels[self.codes]
        return a if dtype is None else a.astype(dtype)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key):
        """The plain column's element(s) at ``key`` (an index, a slice, a mask)."""
        return self.labels[self.codes[key]]

    @property
    def shape(self) -> tuple:
        return self.codes.shape

    @property
    def dtype(self) -> np.dtype:
        return self.labels.dtype

    def decode(self) -> np.ndarray:
        return self.labels[self.codes]

    def compact(self) -> Categorical:
        """The same column with only the labels it uses, sorted (the form ``categorical`` gives)."""
        used = np.flatnonzero(np.bincount(self.codes.reshape(-1), minlength=len(self.labels)))
        labels, inv = np.unique(self.labels[used], return_inverse=True)  # equal labels become one
        remap = np.zeros(len(self.labels), np.int32 if len(labels) < 2**31 else np.int64)
        remap[used] = inv.reshape(-1)
        return Categorical(labels, remap[self.codes])


@contextlib.contextmanager
def small_pages():
    """numpy's advice to the kernel to back its large arrays (4 MiB and more) with transparent huge pages,
    switched off inside the block and restored after.  A sweep writes hundreds of MB of fresh columns
    (``sweep.run_sweep``) and its files' writers fresh arrays of the same size (``write_sweep_files``); on
    the machines it is measured on (Linux, transparent huge pages on ``madvise`` with ``defrag`` on
    ``madvise``: the fault that maps a huge page first compacts memory) the first touch of those columns
    costs 2-4x the 4 KiB faults it replaces (the string columns of a 1e6-point sweep: 0.56-0.87 s CPU
    with the advice, 0.20-0.23 s without).  Where numpy has no such switch, nothing changes."""
    mod = getattr(getattr(np, "_core", None), "multiarray", None)
    setter = getattr(mod, "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    old = setter(False)
    try:
        yield
    finally:
        setter(old)


def _default(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def clean(o):
    """NaN -> None recursively, so files are strict JSON (typed results by their ``to_dict``)."""
    if hasattr(o, "to_dict"):
        o = o.to_dict()
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    return o


def dumps(obj, **kw) -> str:
    return json.dumps(clean(obj), default=_default, **kw)


def ensure_dir(path: str | Path, what: str = "--out") -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(f"{what} {str(path)!r} cannot be created: {e.strerror}") from None
    if not os.access(p, os.W_OK):
        raise SpecError(f"{what} {str(path)!r} is not writable")
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    ensure_dir(path.parent, "output folder")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    ensure_dir(path.parent, "output folder")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj) -> Path:
    return atomic_write_text(path, dumps(obj, indent=2) + "\n")


CSV_COLUMNS = "csv_columns"  # header keys of a CSV whose one-valued float columns are in its header
CSV_CONSTANTS = "csv_constant_columns"
CSV_SAME = "csv_same_columns"  # ... and its float columns equal throughout to an earlier one


def write_csv(
    path,
    columns: dict,
    header_comment: dict | None = None,
    *,
    chunk_rows: int = 1 << 16,
    categories: dict | None = None,
    constants_in_header: bool = False,
    stream: CsvStream | None = None,
) -> Path:
    """CSV of equal-length columns; an optional first line '# {json}' carries the specs.  Written atomically.

    Floats are written as the shortest text that reads back (``float(text)``) as the same double: the
    digits Python's ``repr`` gives, positional from 1e-5 to below 1e16 (``0.00001``, ``123.0``,
    ``85520810000.0``) and scientific outside, the exponent unpadded (``1e-7``, ``1.5e+20``).  NaN is an
    empty field, infinities ``inf``/``-inf``.  A float column whose every value is a whole number of
    magnitude below 2**53 (NaN aside; no -0.0), such as a count of bytes, is written as those integers
    (``125829120``, the same digits without ``.0``; ``float(text)`` gives the same double).  Booleans are
    ``True``/``False``; integers and strings are written as ``str`` does, strings quoted as the csv module
    quotes them.

    ``constants_in_header`` (with a ``header_comment`` dict and at least 2 rows): a float column that holds
    one value throughout (the same bits; NaN included) is not repeated on every row: the comment line
    names it with its field's text under ``csv_constant_columns`` and gives the order of all the columns
    under ``csv_columns``; likewise a float column equal throughout (the same bits) to an earlier float
    column that is written (a prefill's ``ttft_s`` and ``latency_s``) is named under ``csv_same_columns``
    with that column's name.  ``read_csv_columns`` and ``read_csv`` put such columns back (in their place,
    the same text on every row, or the earlier column's fields) and return the comment without those keys.

    The rows are formatted by polars' CSV writer (multi-threaded, in batches of ``chunk_rows`` rows; floats
    by its shortest round-trip formatter).  Every column that is not floats, and a float column that holds
    one value throughout, goes to it as labels (each formatted here once) and codes: a ``Categorical``
    column as it is, the others coded here (or taken from ``categories``).

    ``stream``: a ``CsvStream`` fed these columns' rows while they were computed; where its file is what
    this call would write, it is renamed to ``path`` instead."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    to_header = constants_in_header and isinstance(header_comment, dict) and n >= 2
    if stream is not None and stream.matches(names, n, header_comment, to_header):
        return stream.commit(path)  # the rows already written, beside the sweep that made them
    layout = _csv_layout(columns, header_comment, categories, to_header)
    if layout is None:  # every column one-valued: the rows keep them
        return write_csv(path, columns, header_comment, chunk_rows=chunk_rows, categories=categories)
    head, series = layout[:2]

    def write(f):
        f.write(head.encode())
        items = [(k, nm, *_enum(nm, it[0]), it[1]) if k == "coded" else (k, nm, *it) for k, nm, *it in series]
        _write_rows(f, items, 0, n if series else 0, chunk_rows)

    return atomic_write_with(path, write, direct=n >= DIRECT_ROWS)


DIRECT = hasattr(os, "O_DIRECT") and hasattr(os, "pwrite")  # Linux; elsewhere plain files
DIRECT_ROWS = 1 << 16  # a CSV of this many rows or more is written past the page cache (``DirectFile``)
DIRECT_BYTES = 1 << 24  # likewise an npz of this many bytes or more


def _write_rows(f, items: list, a: int, b: int, chunk_rows: int, stop=None) -> bool:
    """Rows a..b of the CSV's columns (``_frame``'s items) to f; False (and the rows stop) where a column
    written as whole numbers is not (a ``CsvStream``'s guess from its first block) or ``stop`` is set."""
    # the rows a piece at a time (a few of polars' batches each): the frame of each piece (whole
    # numbers as int64, labels gathered) is small, so its memory is reused, not faulted in afresh
    piece = 4 * max(1, chunk_rows)
    for i in range(a, b, piece):
        if stop is not None and stop.is_set():
            return False
        frame = _frame(items, i, min(b, i + piece))
        if frame is None:
            return False
        frame.write_csv(
            f,
            include_header=False,
            quote_style="never",  # string fields come quoted as the csv module quotes them
            null_value="",
            line_terminator="\n",
            batch_size=max(1, chunk_rows),
        )
    return True


def _csv_layout(columns: dict, header_comment, categories, to_header: bool):
    """(the CSV's first lines, its written columns as ``(kind, name, ...)``, {one-valued column: its
    bits}, {repeated column: its twin}) as ``write_csv`` decides them from ``columns``; None where every
    column is one-valued and the header would take them all."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    series, constants, same, bits = [], {}, {}, {}
    floats: list[tuple[str, np.ndarray]] = []  # the float columns written so far (to_header: for `same`)
    for name in names:
        v = columns[name]
        if isinstance(v, Categorical) and v.labels.dtype.kind == "f":
            v = v.decode()  # floats: the float column's rules (whole numbers, one value)
        if isinstance(v, Categorical):
            labels, codes = v.labels, v.codes
        else:
            c = np.asarray(v)
            if c.ndim != 1 or len(c) != n:
                raise ValueError("write_csv needs 1-D columns of equal length")
            if _is_float(c):
                c = c.astype(np.float64, copy=False)
                one = _one_value(c)
                if one is None:
                    if to_header:
                        twin = next((k for k, e in floats if _same_bits(c, e)), None)
                        if twin is not None:
                            same[name] = twin
                            continue
                        floats.append((name, c))
                    series.append(("int" if _is_whole(c) else "float", name, c))
                    continue
                text = _float_field_texts(one)[0]
                if to_header:
                    constants[name] = text
                    bits[name] = one.view(np.int64)[0]
                    continue
                series.append(("coded", name, [text], np.zeros(n, np.int8)))
                continue
            labels, codes = (categories or {}).get(name) or categorical(c)
        if len(codes) != n or np.ndim(codes) != 1:
            raise ValueError("write_csv needs 1-D columns of equal length")
        series.append(("coded", name, _field_texts(labels), codes))
    if constants and not series:
        return None
    left = {**constants, **same}  # the columns the rows leave out
    head = io.StringIO()
    if header_comment is not None:
        comment = header_comment
        if left:
            if {CSV_COLUMNS, CSV_CONSTANTS, CSV_SAME} & set(comment):
                raise ValueError(
                    f"write_csv: the header comment's keys {CSV_COLUMNS}, {CSV_CONSTANTS}, {CSV_SAME} "
                    "are its own"
                )
            comment = {**comment, CSV_COLUMNS: names, CSV_CONSTANTS: constants, CSV_SAME: same}
        head.write("# " + dumps(comment) + "\n")
    csv.writer(head, lineterminator="\n").writerow([k for k in names if k not in left])
    return head.getvalue(), series, bits, same


def _rows(v, a: int, b: int):
    """Rows a..b of a column (a ``Categorical`` stays one)."""
    return Categorical(v.labels, v.codes[a:b]) if isinstance(v, Categorical) else v[a:b]


class Jobs:
    """Jobs done in order by a thread of their own, beside the caller: ``start(name, work)``, ``put(job)``
    as often as needed, ``join()`` once every job put is done (or the thread stopped).  ``work(job)``
    returning False, or raising, stops the thread and sets ``failed`` (the jobs after it are dropped).
    Used by the sweep's streamed files (``CsvStream``, ``npzstream.NpzStream``)."""

    def __init__(self) -> None:
        self.failed = False
        self._queue: list = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self, name: str, work) -> None:
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def put(self, job) -> None:
        with self._cv:
            self._queue.append(job)
            self._cv.notify()

    def join(self) -> None:
        if self._thread is not None:
            self.put(None)
            self._thread.join()
            self._thread = None

    def _run(self, work) -> None:
        try:
            while True:
                with self._cv:
                    while not self._queue:
                        self._cv.wait()
                    job = self._queue.pop(0)
                if job is None:
                    return
                if work(job) is False:
                    self.failed = True
                    return
        except BaseException:  # noqa: BLE001 - the stream's file is not taken (its owner says why)
            self.failed = True


def make_folder(folder, what: str = "--out") -> list[Path]:
    """``ensure_dir(folder)``, returning the folders it made (deepest first): ``remove_made`` takes them
    away again where a streamed file is not taken."""
    made = []
    q = Path(folder).absolute()
    while not q.exists() and q != q.parent:
        made.append(q)
        q = q.parent
    ensure_dir(folder, what)
    return made


def hand_over(tmp, path) -> Path:
    """A streamed file's temporary ``tmp`` renamed to ``path`` (the same file system), with the mode
    ``open`` would give it."""
    path = Path(path)
    os.chmod(tmp, _MODE)
    os.replace(tmp, path)
    return path


def remove_made(made: list[Path]) -> None:
    """The folders ``make_folder`` made, where they are still empty (a folder files went into stays)."""
    for d in made:
        with contextlib.suppress(OSError):
            d.rmdir()


class CsvStream:
    """A sweep's CSV written while the sweep runs: ``feed`` hands it the rows as the sweep finishes them
    (``run_sweep(on_block=)``, a template at a time); a thread formats and writes them (polars' formatting
    and the file's writes run without the GIL, so on 2 cores they overlap the next templates' compute),
    and ``write_csv(..., stream=)`` then renames the file into place where it is the file ``write_csv``
    would write from the whole columns (the same bytes).

    Which columns ``write_csv`` leaves out of the rows (one value throughout, or equal to an earlier one)
    and which it writes as whole numbers it judges from the whole columns; the stream guesses them from
    the rows of its first ``guess_after`` feeds (two templates: the first alone would take a plan's
    weights, one-valued within a template, for one-valued throughout) and checks every later row
    against the guess (the same bits; whole numbers).  Where the guess fails, or the rows come otherwise
    than in order, the stream stops and ``write_csv`` writes the file from the columns as before.  Its
    temporary file lies in ``folder`` (the rename stays on one file system); ``close`` stops the thread
    and removes the file (and any folder it made) if it was not taken."""

    def __init__(self, folder, header_comment: dict, *, chunk_rows: int = 1 << 16, guess_after: int = 2):
        self.folder, self.comment, self.chunk_rows = Path(folder), header_comment, chunk_rows
        self.guess_after = max(1, guess_after)
        self.ok, self.rows, self.tmp, self.names, self._calls = True, 0, None, None, 0
        self._made: list[Path] = []  # the folders _open made (removed again if the file is not taken)
        self._taken = False
        self._jobs = Jobs()
        self._stop = threading.Event()
        self._file = None
        self._texts: dict = {}  # labels array id -> (labels, enum, remap)

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def feed(self, columns: dict, start: int = 0, total: int | None = None) -> None:
        """The rows computed so far (``columns``: rows 0..n of every column, in the final column order),
        of which rows ``start``..n are new (``total``, the sweep's row count, is not needed here).  The
        guess is made from the rows of the first ``guess_after`` calls (the first template's rows alone
        would take a column that is one-valued within each template, such as a plan's weights, for
        one-valued throughout)."""
        if not self.ok:
            return
        self._calls += 1
        if self.names is None and self._calls < self.guess_after:
            return
        try:
            job = self._job(columns, start)
        except Exception:  # rows the guess cannot take: write_csv writes from the columns
            job = None
        if job is None:
            self._fail()
            return
        self._jobs.put(job)

    def _job(self, columns: dict, start: int):
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        if self.names is None:  # the guess, the file, the writer thread
            layout = _csv_layout(columns, self.comment, None, n >= 2) if n >= 2 else None
            if layout is None or not isinstance(self.comment, dict):
                return None
            head, series, self._bits, self._same = layout
            self.names = names
            self._kinds = [(k, nm) for k, nm, *_ in series]
            self._open(head)
            start = 0
        elif names != self.names or start != self.rows:
            return None
        block = {k: _rows(v, start, n) for k, v in columns.items()}
        for name, b in self._bits.items():  # one value: the same bits in these rows
            c = np.asarray(block[name])
            if c.dtype != np.float64 or not (c.view(np.int64) == b).all():
                return None
        for name, twin in self._same.items():
            x, y = np.asarray(block[name]), np.asarray(block[twin])
            if x.dtype != np.float64 or y.dtype != np.float64 or not _same_bits(x, y):
                return None
        items = []
        for kind, name in self._kinds:
            v = block[name]
            if kind in ("int", "float"):  # "int": checked whole piece by piece as they are written
                c = np.asarray(v)
                if c.dtype != np.float64:
                    return None
                items.append((kind, name, c))
                continue
            if isinstance(v, Categorical) and v.labels.dtype.kind != "f":
                labels, codes = v.labels, v.codes
            elif isinstance(v, Categorical) or np.asarray(v).dtype.kind == "f":
                return None  # a float column coded (one value, not in the header): not a sweep's
            else:
                labels, codes = categorical(np.asarray(v))
            key = id(labels)
            if key not in self._texts or self._texts[key][0] is not labels:
                self._texts[key] = (labels, *_enum(name, _field_texts(labels)))
            items.append(("coded", name, *self._texts[key][1:], codes))
        self.rows = n
        return items, n - start

    def _open(self, head: str) -> None:
        self._made = make_folder(self.folder)
        fd, self.tmp = tempfile.mkstemp(dir=self.folder, prefix=".csvstream.", suffix=".tmp")
        if DIRECT:
            os.close(fd)
            self._file = DirectFile(self.tmp)
        else:
            self._file = os.fdopen(fd, "wb")
        self._file.write(head.encode())
        self._jobs.start("csv-stream", self._write)

    def _write(self, job) -> bool:
        """One feed's rows formatted and written (False: a whole-number guess failed, or stopped)."""
        items, n = job
        return _write_rows(self._file, items, 0, n, self.chunk_rows, self._stop)

    def _fail(self) -> None:
        self.ok = False
        self._stop.set()

    def _finish(self) -> None:
        self._jobs.join()
        if self._jobs.failed:  # the file is not taken: write_csv writes from the columns (and says why)
            self.ok = False
        if self._file is not None:
            try:
                self._file.close()
            except OSError:  # the file is not taken: write_csv writes from the columns (and says why)
                self.ok = False
            self._file = None

    def matches(self, names: list, n: int, header_comment, to_header: bool) -> bool:
        """The file holds what write_csv would write of these columns (the rows it checked block by block)."""
        if self.names is None:
            return False
        if not self.ok:  # a failed guess: the writer stops at its next piece
            self._stop.set()
        self._finish()
        return (
            self.ok
            and to_header
            and names == self.names
            and n == self.rows
            and header_comment == self.comment
        )

    def commit(self, path) -> Path:
        """The streamed file renamed to ``path`` (in the same folder or one beside it)."""
        path = hand_over(self.tmp, path)
        self.tmp, self._taken = None, True
        return path

    def close(self) -> None:
        """Stop the writer; remove the file (and the folders it made) unless it was taken."""
        self._stop.set()
        self.ok = False
        self._finish()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None
        if not self._taken:
            remove_made(self._made)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Two float64 columns of the same bits throughout (the first element checked first)."""
    x, y = a.view(np.int64), b.view(np.int64)
    return bool(x[0] == y[0] and x[-1] == y[-1] and np.array_equal(x, y))


def _whole_piece(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(int64 values, NaN mask or None) of float64 values that are all whole numbers of magnitude below
    2**53 or NaN (-0.0 and infinities are not), else None."""
    with np.errstate(invalid="ignore"):
        k = x.astype(np.int64)  # NaN and infinities: some integer, told apart below
    # the bits: -0.0 is not 0; NaN and infinities never equal
    ok = (k.astype(np.float64).view(np.int64) == x.view(np.int64)) & (k < 2**53) & (k > -(2**53))
    if ok.all():
        return k, None
    isnan = np.isnan(x)
    return (k, isnan) if (ok | isnan).all() else None


def _is_whole(c: np.ndarray, step: int = 1 << 16) -> bool:
    """Every value of the float64 column c a whole number of magnitude below 2**53, or NaN (-0.0 and
    infinities not): write_csv writes such a column as integers.  A few values are looked at first (a
    column of times is turned down there), then the rest ``step`` values at a time (small arrays)."""
    h = c[:64]
    h = h[h == h]
    if len(h) and not (np.trunc(h) == h).all():
        return False
    return all(_whole_piece(c[a : a + step]) is not None for a in range(0, len(c), step))


def _whole_numbers(c: np.ndarray, step: int = 1 << 16) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(int64 values, NaN mask or None) of a float64 column that ``_is_whole``, else None."""
    if not _is_whole(c, step):
        return None
    k, nan = _whole_piece(c)
    return k, (nan if nan is not None and nan.any() else None)


def _float_field_texts(x: np.ndarray) -> list[str]:
    """The fields of the float values x as write_csv writes a column of them (whole numbers as integers)."""
    x = np.asarray(x, np.float64).reshape(-1)
    whole = _whole_numbers(x)
    if whole is None:
        return format_floats(x)
    i, nan = whole
    return ["" if nan is not None and nan[k] else str(v) for k, v in enumerate(i.tolist())]


def _frame(series: list, a: int, b: int):
    """A polars DataFrame of rows a..b of the CSV's columns: floats as they are (NaN as null: an empty
    field), whole numbers as int64 (NaN as null), coded columns as an Enum of their fields' texts gathered
    by the codes (no string per row is made)."""
    import polars as pl

    cols = []
    for kind, name, *item in series:
        if kind == "float":
            c = item[0][a:b]
            s = pl.Series(name, c)
            cols.append(s.fill_nan(None) if np.isnan(c).any() else s)
            continue
        if kind == "int":
            whole = _whole_piece(item[0][a:b])
            if whole is None:  # a CsvStream's guess that fails (write_csv checked its columns whole)
                return None
            i, nan = whole
            s = pl.Series(name, i)
            cols.append(s if nan is None else s.scatter(np.flatnonzero(nan), None))
            continue
        cats, remap, codes = item
        codes = np.asarray(codes)[a:b]
        cols.append(cats.gather(codes if remap is None else remap[codes]))
    return pl.DataFrame(cols)


def _enum(name: str, texts: list[str]):
    """(polars Enum series of the distinct texts, the map from a label's code to its category or None
    where the texts are distinct): equal texts (labels repeated in a Categorical) share one category."""
    import polars as pl

    index: dict[str, int] = {}
    remap = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, len(texts))
    cats = list(index)
    return pl.Series(name, cats, dtype=pl.Enum(cats)), (None if len(cats) == len(texts) else remap)


def _field_texts(labels: np.ndarray) -> list[str]:
    """Each label as its CSV field: floats as ``format_floats``, the rest as the csv module writes str()."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        return format_floats(labels)
    if labels.dtype.kind in "iub":  # no character that needs quoting
        return [str(v) for v in labels.tolist()]
    texts = []
    for v in labels.tolist():
        b = io.StringIO()
        csv.writer(b, lineterminator="\n").writerow([v])  # a field holding "\n" is quoted
        t = b.getvalue()[:-1]
        if "\0" in t:
            raise ValueError("CSV fields cannot hold NUL characters")
        texts.append(t if t != '""' else "")
    return texts


def format_floats(x: np.ndarray) -> list[str]:
    """The text write_csv gives each float ('' for NaN): polars' shortest round-trip formatting."""
    import polars as pl

    x = np.asarray(x, np.float64).reshape(-1)
    if not len(x):
        return []
    s = pl.Series("x", x)
    text = pl.DataFrame([s.fill_nan(None)]).write_csv(
        include_header=False, quote_style="never", null_value="", line_terminator="\n"
    )
    out = text.split("\n")[: len(x)]
    if len(out) != len(x):  # not met: one line per value
        raise AssertionError("format_floats: polars wrote a line count other than the values'")
    return out


def _one_value(c: np.ndarray) -> np.ndarray | None:
    """[the value] if every element of the float column c has the same bits (NaN and -0.0 included)."""
    if len(c) == 0 or c.dtype != np.float64:
        return None
    b = c.view(np.int64)
    if b[0] != b[-1] or not (b == b[0]).all():
        return None
    return c[:1].copy()


def pwrite_whole(f, view: memoryview, at: int) -> None:
    """Every byte of ``view`` to the file ``f`` holds open (``f._fd``), from offset ``at``.  Where ``f``
    writes past the page cache (``f.direct``) and a write is refused (EINVAL: O_DIRECT opened, its writes
    not taken) or falls short, ``f._buffered()`` reopens the file through the page cache and the rest
    goes that way (``DirectFile``, ``npzstream.NpzStream``)."""
    done, m = 0, len(view)
    while done < m:
        try:
            with view[done:] as rest:
                k = os.pwrite(f._fd, rest, at + done)
        except OSError as e:
            if not f.direct or e.errno != errno.EINVAL:
                raise
            f._buffered()
            continue
        if k <= 0:
            raise OSError(errno.EIO, f"{f.path}: a write wrote nothing")
        if k < m - done and f.direct:  # a short direct write: the rest through the page cache
            f._buffered()
        done += k


class DirectFile:
    """A binary file written past the page cache (``O_DIRECT``) where the platform and file system allow
    it: ``write`` gathers the bytes in a page-aligned buffer of ``buffer`` bytes and hands the file whole
    aligned pieces of it; ``close`` writes the last piece padded to the alignment and cuts the file to
    its length.  A large result file written so costs the writer no copy into the page cache and no pages
    of it (on the 2-core VMs this project is measured on, 0.3-1 s of system time for a sweep's 408 MB CSV,
    the pages being fresh memory; ~0.1 s written so).  Where ``O_DIRECT`` is refused (tmpfs) the same
    bytes are written through the page cache (where the platform has none, ``DIRECT`` is false and the
    writers use plain files).  Written in order, with one exception: a seek back
    over what was written, whose writes patch it (a zip's local headers: ``write_npz``)."""

    ALIGN = 4096  # a multiple of every device's logical block size (512 or 4096)

    def __init__(self, path, buffer: int = 8 << 20):
        import mmap

        self.path, self.size, self._at, self._n = str(path), 0, 0, 0
        self._cap = max(self.ALIGN, buffer // self.ALIGN * self.ALIGN)
        flags = os.O_WRONLY | getattr(os, "O_DIRECT", 0) | getattr(os, "O_BINARY", 0)
        try:
            self._fd = os.open(self.path, flags)
            self.direct = bool(getattr(os, "O_DIRECT", 0))
        except OSError:  # refused (EINVAL on tmpfs): the page cache after all
            self._fd = os.open(self.path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            self.direct = False
        self._map = mmap.mmap(-1, self._cap)  # page-aligned
        self._buf = memoryview(self._map)
        self._patch_at: int | None = None  # a seek back: where the next write goes
        self._patches: list[tuple[int, bytes]] = []
        self.closed = False

    def write(self, data) -> int:
        b = memoryview(data)
        if b.format != "B" or b.ndim != 1:
            try:
                b = b.cast("B")
            except (TypeError, ValueError):  # not contiguous, or a format memoryview cannot recast
                b = memoryview(b.tobytes())
        i, n = 0, len(b)
        if self._patch_at is not None:
            self._patch(self._patch_at, b)
            self._patch_at += n
            return n
        while i < n:
            k = min(self._cap - self._n, n - i)
            self._buf[self._n : self._n + k] = b[i : i + k]
            self._n += k
            i += k
            if self._n == self._cap:
                self._out(self._cap)
        self.size += n
        return n

    def _out(self, m: int) -> None:
        """The whole buffer (m bytes: full, or the last piece padded) to the file at its place."""
        # the views released even where a write raises: else closing the buffer raises BufferError in
        # place of the write's error (a full disk shown as "cannot close exported pointers")
        with self._buf[:m] as view:
            pwrite_whole(self, view, self._at)
        self._at += m
        self._n = 0

    def _buffered(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | getattr(os, "O_BINARY", 0))  # the new one first: no stale fd
        old, self._fd = self._fd, fd
        os.close(old)
        self.direct = False

    def tell(self) -> int:
        return self.size if self._patch_at is None else self._patch_at

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        """Back into what was written (a zip's local header, rewritten once its sizes are known: the
        writes there patch it) or to the end; nowhere else."""
        pos += (0, self.tell(), self.size)[whence]
        if not 0 <= pos <= self.size:
            raise OSError(errno.EINVAL, f"{self.path}: a DirectFile seeks only within what was written")
        self._patch_at = None if pos == self.size else pos
        return pos

    def _patch(self, pos: int, b: memoryview) -> None:
        """Bytes over what was written at pos: in the buffer where it still is there, else kept and
        written at ``close``, through the page cache."""
        if pos + len(b) > self.size:
            raise OSError(errno.EINVAL, f"{self.path}: a write past the end after a seek back")
        cut = min(len(b), max(0, self._at - pos))  # the part already in the file
        if cut:
            self._patches.append((pos, bytes(b[:cut])))
        if cut < len(b):
            i = pos + cut - self._at
            self._buf[i : i + len(b) - cut] = b[cut:]

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self._n:
                n = self._n
                pad = -(-n // self.ALIGN) * self.ALIGN if self.direct else n
                self._buf[n:pad] = bytes(pad - n)
                self._out(pad)
            os.ftruncate(self._fd, self.size)
            if self._patches:
                fd = os.open(self.path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                try:
                    for pos, b in self._patches:
                        os.pwrite(fd, b, pos)
                finally:
                    os.close(fd)
        finally:
            os.close(self._fd)
            self._buf.release()
            self._map.close()

    def __enter__(self) -> DirectFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def atomic_write_with(path: str | Path, write, *, direct: bool = False) -> Path:
    """Call ``write(binary file)`` on a temp file beside ``path``, then rename it over ``path``.
    ``direct``: the temp file is a ``DirectFile`` (large result files: no page-cache copy)."""
    path = Path(path)
    ensure_dir(path.parent, "output folder")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if direct and DIRECT:
            os.close(fd)
            with DirectFile(tmp) as f:
                write(f)
        else:
            with os.fdopen(fd, "wb") as f:
                write(f)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _is_float(c: np.ndarray) -> bool:
    return c.dtype.kind == "f"


def categorical(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, codes) with ``labels[codes] == c`` and labels sorted: the form string, integer and boolean
    columns are written in (CSV: each label formatted once; npz: codes + labels)."""
    c = np.asarray(c)
    if c.dtype.kind == "O":
        c = c.astype(str)
    if c.dtype.kind == "b":  # no sort: the labels are False and True
        labels = np.array([False, True])[[not c.all(), bool(c.any())]]
        return labels, (c.astype(np.int32) if len(labels) == 2 else np.zeros(len(c), np.int32))
    if c.dtype.kind == "U" and c.size and c.itemsize:
        starts = np.flatnonzero(c[1:] != c[:-1]) + 1
        if len(starts) < len(c) // 4:  # long runs of one string (a sweep's plan_template): code the runs
            starts = np.concatenate([[0], starts])
            labels, run_codes = np.unique(c[starts], return_inverse=True)
            codes = np.repeat(run_codes.reshape(-1), np.diff(np.append(starts, len(c))))
            return labels, codes.astype(np.int32 if len(labels) < 2**31 else np.int64)
        # sorting a million strings is slow: sort a hash of each string's code points instead, then check
        # that no two distinct strings share a hash (else sort the strings after all)
        c = np.ascontiguousarray(c)
        u = c.view(np.uint64 if c.itemsize % 8 == 0 else np.uint32).reshape(len(c), -1)
        h = u[:, 0].astype(np.uint64)
        for j in range(1, u.shape[1]):
            h = h * np.uint64(1000003) + u[:, j]
        _, inv = np.unique(h, return_inverse=True)
        inv = inv.reshape(-1)
        rep = np.empty(int(inv.max()) + 1, np.int64)
        rep[inv] = np.arange(len(c))  # one row of each hash
        labels = c[rep]
        order = np.argsort(labels)
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        labels, codes = labels[order], rank[inv].astype(np.int32 if len(order) < 2**31 else np.int64)
        if np.array_equal(labels[codes], c):
            return labels, codes
    labels, codes = np.unique(c, return_inverse=True)
    return labels, codes.reshape(-1).astype(np.int32 if len(labels) < 2**31 else np.int64)


def categoricals(columns: dict, kinds: str = "USObiu") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``categorical`` of every column whose dtype kind is in ``kinds`` (the CSV codes every column that is
    not floats, the npz only strings), computed once for both files."""
    return {
        k: categorical(v)
        for k, v in columns.items()
        if not isinstance(v, Categorical) and np.asarray(v).dtype.kind in kinds
    }


def read_csv(path) -> tuple[dict | None, list[dict]]:
    """Inverse of write_csv: (specs from the comment line or None, rows as dicts of strings)."""
    with open(path) as f:
        first = f.readline()
        specs = json.loads(first[2:]) if first.startswith("# ") else None
        if specs is None:
            f.seek(0)
        rows = list(csv.DictReader(f))
    specs, names, constants, same = _header_constants(specs)
    if constants or same:
        rows = [{k: constants[k] if k in constants else r[same.get(k, k)] for k in names} for r in rows]
    return specs, rows


def _header_constants(specs):
    """(specs without write_csv's own keys, every column's name in order, {name: text} of the one-valued
    columns and {name: earlier column} of the repeated columns left out of the rows) of a CSV's comment
    line (``write_csv(constants_in_header=True)``)."""
    if not isinstance(specs, dict) or CSV_COLUMNS not in specs:
        return specs, None, {}, {}
    specs = dict(specs)
    names = specs.pop(CSV_COLUMNS)
    constants, same = specs.pop(CSV_CONSTANTS, {}), specs.pop(CSV_SAME, {})
    if (
        not isinstance(constants, dict)
        or not isinstance(same, dict)
        or not isinstance(names, list)
        or not all(isinstance(t, str) for t in constants.values())
        or not set(constants) | set(same) <= set(names)
        or set(same.values()) & (set(constants) | set(same))
        or not set(same.values()) <= set(names)
    ):
        raise ValueError(f"the comment line's {CSV_CONSTANTS}, {CSV_SAME} and {CSV_COLUMNS} do not match")
    return specs, names, constants, same


def read_csv_columns(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """(specs, columns of strings) of a CSV written by write_csv; empty fields are empty strings."""
    try:
        return _read_csv_columns(path)
    except UnicodeDecodeError as e:
        raise SpecError(f"results file {str(path)!r} is not UTF-8 text (byte {e.start})") from None
    except (json.JSONDecodeError, csv.Error) as e:
        raise SpecError(f"results file {str(path)!r} is not a CSV written by ringsim sweep: {e}") from None


def _read_csv_columns(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    with open(path, newline="", encoding="utf-8") as f:
        first = f.readline()
        specs = json.loads(first[2:]) if first.startswith("# ") else None
        if specs is None:
            f.seek(0)
        r = csv.reader(f)
        names = next(r, [])
        data = list(zip(*r))
    if data and len(data) != len(names):
        raise ValueError(f"{path}: rows do not have {len(names)} fields")
    cols = {k: np.array(v if data else [], dtype=str) for k, v in zip(names, data or [()] * len(names))}
    specs, order, constants, same = _header_constants(specs)
    if order is not None:
        left = set(constants) | set(same)
        if set(order) != set(names) | left or set(names) & left:
            raise ValueError(f"the columns do not match the comment line's {CSV_COLUMNS}")
        n = len(data[0]) if data else 0
        cols = {k: np.full(n, constants[k]) if k in constants else cols[same.get(k, k)].copy() for k in order}
    return specs, cols


def write_npz(path, columns: dict, specs: dict | None = None, *, categories: dict | None = None) -> Path:
    """Binary columns (uncompressed npz, no pickles): numbers and booleans as they are, strings (and object
    columns) as int32 codes ``NAME@codes`` + ``NAME@labels``; ``__columns__`` keeps the order and
    ``__specs__`` the specs as JSON.  Written atomically.  Read back with ``read_npz``."""
    arrays = npz_members(columns, specs, categories=categories)
    big = sum(a.nbytes for a in arrays.values()) >= DIRECT_BYTES
    return atomic_write_with(path, lambda f: _savez(f, arrays), direct=big)


def npz_members(columns: dict, specs: dict | None = None, *, categories: dict | None = None) -> dict:
    """{member name without .npy: array} of the npz ``write_npz`` writes, in its order."""
    arrays: dict[str, np.ndarray] = {
        "__columns__": np.array(list(columns), dtype=str),
        "__specs__": np.array(dumps(specs) if specs is not None else ""),
    }
    for k, v in columns.items():
        if isinstance(v, Categorical):  # strings as their codes; numbers as the plain column
            if v.labels.dtype.kind in "USO":
                arrays[f"{k}@labels"], arrays[f"{k}@codes"] = _int32_codes(v.compact())
            else:
                arrays[k] = v.decode()
            continue
        v = np.asarray(v)
        if v.dtype.kind in "USO":
            arrays[f"{k}@labels"], arrays[f"{k}@codes"] = (categories or {}).get(k) or categorical(v)
        else:
            arrays[k] = v
    return arrays


def _savez(f, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez(f, **arrays)`` (uncompressed; the same members, headers and bytes) with each array's
    bytes handed to the zip as they lie in memory: numpy's writer copies every member into a fresh
    ``tobytes`` buffer first (a sweep's 256 MB once more, in pages faulted in afresh)."""
    import zipfile

    from numpy.lib import format as npy

    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for key, val in arrays.items():
            val = np.asanyarray(val)
            if val.dtype.hasobject:  # not met: write_npz codes object columns as strings
                raise ValueError("write_npz: object arrays cannot be saved without pickles")
            head = npy.header_data_from_array_1_0(val)
            with z.open(key + ".npy", "w", force_zip64=True) as fid:  # numpy forces zip64 (gh-10776)
                try:  # the header's version as numpy picks it: 1.0 where the header fits, else 2.0
                    npy.write_array_header_1_0(fid, head)
                except ValueError:
                    npy.write_array_header_2_0(fid, head)
                # numpy writes a Fortran-ordered array's transpose's C order (its header says so)
                data = val.T if val.flags.f_contiguous and not val.flags.c_contiguous else val
                fid.write(np.ascontiguousarray(data).reshape(-1).view(np.uint8))


def _int32_codes(c: Categorical) -> tuple[np.ndarray, np.ndarray]:
    """(labels as strings, codes as int32) of a compact Categorical: the form ``categorical`` gives."""
    labels = c.labels.astype(str) if c.labels.dtype.kind == "O" else c.labels
    return labels, c.codes.astype(np.int32 if len(labels) < 2**31 else np.int64, copy=False)


def _read_npz(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """(specs or None, columns) of a file written by write_npz; string columns come back as unicode arrays."""
    with np.load(path, allow_pickle=False) as z:
        names = z["__columns__"].tolist()
        s = str(z["__specs__"]) if "__specs__" in z.files else ""
        cols = {}
        for k in names:
            cols[k] = z[f"{k}@labels"][z[f"{k}@codes"]] if f"{k}@codes" in z.files else z[k]
    return (json.loads(s) if s else None), cols


def read_npz(path) -> tuple[dict | None, dict[str, np.ndarray]]:
    """(specs or None, columns) of a file written by write_npz; string columns come back as unicode arrays.
    A file that is cut, not a zip or without the columns it names: one sentence (``SpecError``)."""
    import zipfile

    try:
        return _read_npz(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as e:
        raise SpecError(
            f"results file {str(path)!r} is not a readable sweep npz ({type(e).__name__}: {e}); "
            "write it again with ringsim sweep"
        ) from None


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM back while a few renames put a set of files in place: an interruption
    then lands before or after the swap, never inside it (delivered when the block ends).  Only in the
    main thread (where Python runs signal handlers) and where the platform can block signals."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def write_sweep_files(
    folder,
    columns: dict,
    specs: dict,
    skipped: list,
    *,
    stem: str = "sweep",
    with_csv: bool = True,
    with_npz: bool = True,
    csv_stream: CsvStream | None = None,
    npz_stream=None,
) -> dict[str, Path]:
    """A sweep's files as a unit: ``STEM.npz`` (binary columns), ``STEM.csv`` (optional) and the manifest
    ``STEM.json`` (specs, skipped pairs, point count, the data files' names; no rows).

    Everything is written into a temporary folder inside ``folder`` first; then the old manifest is
    removed, the data files are renamed into place and the new manifest comes last, with SIGINT and
    SIGTERM held back during the renames (``signals_deferred``).  An interruption while writing leaves
    the old set as it was; one during the renames is delivered after them.  Were the process killed
    outright (SIGKILL, power loss) between two renames, no manifest is left beside data it did not
    describe (each data file carries its own specs).

    ``csv_stream``: the ``CsvStream`` the sweep's rows were fed to as they were computed (``write_csv``
    takes its file where it is the CSV of these columns and specs); ``npz_stream``: likewise an
    ``npzstream.NpzStream`` (its file is taken where it holds these columns whole)."""
    with small_pages():
        return _write_sweep_files(
            folder, columns, specs, skipped, stem, with_csv, with_npz, csv_stream, npz_stream
        )


def _write_sweep_files(
    folder, columns, specs, skipped, stem, with_csv, with_npz, csv_stream=None, npz_stream=None
) -> dict[str, Path]:
    folder = ensure_dir(folder, "--out")
    n = len(next(iter(columns.values()))) if columns else 0
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{stem}.", suffix=".tmp"))
    try:
        files: dict[str, str] = {}
        cats = categoricals(columns, "USObiu" if with_csv else "USO")
        from concurrent.futures import ThreadPoolExecutor

        # the npz beside the CSV, in a thread (both spend their time in C: zip CRCs and writes, polars'
        # formatting); an error in either is raised once both have stopped
        with ThreadPoolExecutor(1) as ex:
            npz = (
                ex.submit(_npz_file, tmp / f"{stem}.npz", columns, specs, cats, npz_stream)
                if with_npz
                else None
            )
            if with_csv:
                write_csv(
                    tmp / f"{stem}.csv",
                    columns,
                    header_comment=specs,
                    categories=cats,
                    constants_in_header=True,
                    stream=csv_stream,
                )
                files["csv"] = f"{stem}.csv"
            if npz is not None:
                npz.result()
                files = {"npz": f"{stem}.npz", **files}
        write_json(
            tmp / f"{stem}.json",
            {"specs": specs, "skipped": skipped, "points": n, "columns": list(columns), "files": files},
        )
        with signals_deferred():
            (folder / f"{stem}.json").unlink(missing_ok=True)
            for kind in ("npz", "csv"):
                if kind in files:
                    os.replace(tmp / files[kind], folder / files[kind])
                else:
                    (folder / f"{stem}.{kind}").unlink(missing_ok=True)  # a previous run's, now stale
            os.replace(tmp / f"{stem}.json", folder / f"{stem}.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {k: folder / v for k, v in {**files, "json": f"{stem}.json"}.items()}


def _npz_file(path, columns: dict, specs: dict, cats: dict, stream=None) -> Path:
    """The streamed npz where the stream holds these columns whole, else ``write_npz``'s."""
    p = stream.finish(path, columns, specs, cats) if stream is not None else None
    return p if p is not None else write_npz(path, columns, specs, categories=cats)


def append_jsonl(path, record: dict) -> None:
    """Append one record durably (flush + fsync): records already written survive an interruption.

    The record always starts on a line of its own: if an interrupted write left the file without a
    final newline, one is written first (the cut line stays as it was; ``read_jsonl`` names it)."""
    path = Path(path)
    ensure_dir(path.parent, "output folder")
    line = (dumps(record) + "\n").encode()
    with open(path, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = b"\n" + line
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl_lines(path, skipped: list[str] | None = None) -> list[tuple[int, dict]]:
    """(1-based line number, record) of every record (a JSON object per line; blank lines are ignored).

    A last line cut short (no final newline and not valid JSON: a write that was interrupted) is left
    out with a warning: appended to ``skipped`` if given, else ``warnings.warn``.  Any other line that
    is not a JSON object raises ``SpecError`` naming the file and the line."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    last = max((i for i, b in enumerate(lines) if b.strip()), default=-1)
    out: list[tuple[int, dict]] = []
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            if i == last and not data.endswith(b"\n"):
                msg = (
                    f"{path}:{i + 1}: the last line is cut short (an interrupted write: {len(raw)} bytes, "
                    f"not valid JSON); left out"
                )
                if skipped is None:
                    import warnings

                    warnings.warn(msg, stacklevel=2)
                else:
                    skipped.append(msg)
                continue
            why = (
                "is not UTF-8 text"
                if isinstance(e, UnicodeDecodeError)
                else f"is not valid JSON ({e.msg} at column {e.colno})"
                if isinstance(e, json.JSONDecodeError)
                else f"is not valid JSON ({e})"
            )
            raise SpecError(f"{path}:{i + 1}: the line {why}; fix or delete that line") from None
        if not isinstance(rec, dict):
            raise SpecError(
                f"{path}:{i + 1}: the line is a JSON {_json_kind(rec)}, not a record (a JSON object "
                f"{{...}}); fix or delete that line"
            )
        out.append((i + 1, rec))
    return out


def read_jsonl(path, skipped: list[str] | None = None) -> list[dict]:
    """The records of a JSONL file (see ``read_jsonl_lines``)."""
    return [rec for _, rec in read_jsonl_lines(path, skipped)]


def _json_kind(v) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")
