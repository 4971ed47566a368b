"""Results files: written atomically (temp file + rename) and carrying the specs that made them."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)
_MODE = 0o666 & ~_UMASK  # what open() would give: mkstemp's 0600 is for secrets, not results

import numpy as np

from .errors import SpecError


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


def write_csv(path, columns: dict[str, list], header_comment: dict | None = None) -> Path:
    """CSV of equal-length columns; an optional first line '# {json}' carries the specs."""
    buf = io.StringIO()
    if header_comment is not None:
        buf.write("# " + dumps(header_comment) + "\n")
    w = csv.writer(buf)
    names = list(columns)
    w.writerow(names)
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        w.writerow([_cell(columns[c][i]) for c in names])
    return atomic_write_text(path, buf.getvalue())


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_csv(path) -> tuple[dict | None, list[dict]]:
    """Inverse of write_csv: (specs from the comment line or None, rows as dicts of strings)."""
    with open(path) as f:
        first = f.readline()
        specs = json.loads(first[2:]) if first.startswith("# ") else None
        if specs is None:
            f.seek(0)
        rows = list(csv.DictReader(f))
    return specs, rows


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
                msg = (f"{path}:{i + 1}: the last line is cut short (an interrupted write: {len(raw)} bytes, "
                       f"not valid JSON); left out")
                if skipped is None:
                    import warnings
                    warnings.warn(msg, stacklevel=2)
                else:
                    skipped.append(msg)
                continue
            why = ("is not UTF-8 text" if isinstance(e, UnicodeDecodeError)
                   else f"is not valid JSON ({e.msg} at column {e.colno})" if isinstance(e, json.JSONDecodeError)
                   else f"is not valid JSON ({e})")
            raise SpecError(f"{path}:{i + 1}: the line {why}; fix or delete that line") from None
        if not isinstance(rec, dict):
            raise SpecError(f"{path}:{i + 1}: the line is a JSON {_json_kind(rec)}, not a record (a JSON object "
                            f"{{...}}); fix or delete that line")
        out.append((i + 1, rec))
    return out


def read_jsonl(path, skipped: list[str] | None = None) -> list[dict]:
    """The records of a JSONL file (see ``read_jsonl_lines``)."""
    return [rec for _, rec in read_jsonl_lines(path, skipped)]


def _json_kind(v) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")
