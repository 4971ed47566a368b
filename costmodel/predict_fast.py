"""The analytic model's own code, run fast on one configuration (``predict``).

``analytic.evaluate`` is written for arrays; on one point numpy's per-call overhead dominates (a
``np.where`` or ``np.maximum`` on 0-d arrays costs 1-2 us, about 20 times a float operation), and one
``predict`` makes some 1500 such calls.  Rather than a second, hand-written scalar model that could
drift from the array one, this module loads a second copy of the model's modules (``analytic``,
``closedform``, ``kernels``, ``layers``, ``geometry`` and ``strategies``: the same source files, under
the package name ``costmodel._scalar``) whose ``np`` is ``SCALAR_NP``: numpy itself, except for the
few functions the closed forms call most (``where``, ``maximum``, ``minimum``, ``asarray``, ``full``,
``zeros``, ``broadcast_to``, ``stack``), which take numpy scalars (``np.float64``, ``np.int64``, ``np.bool_``)
and return them, with numpy's result type and NaN rule, without building arrays.  Every operation on
a number is then numpy's scalar arithmetic (the same IEEE double operations as on arrays), so the
values are those of the array path: ``tests/test_predict_fast.py`` holds them equal on hundreds of
random configurations of every family and phase.  Anything the functions above do not recognise
(an array of more than one point, an unusual type) goes to numpy unchanged.

The other modules (``specs``, ``plan``, ``schedule``, ``results`` ...) are shared with the array
path, not copied: their enums and classes are the same objects.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np

from . import analytic as _array_analytic  # noqa: F401  (its imports load every module shared below)

# the modules whose numpy calls the scalar copy replaces (their own relative imports stay inside the copy)
COPIED = ("analytic", "closedform", "kernels", "layers", "geometry", "strategies")
PACKAGE = "costmodel._scalar"

_F, _I, _B = np.float64, np.int64, np.bool_
_FLOATS = (float, _F)
_INTS = (int, _I)
_BOOLS = (bool, _B)
_ND = np.ndarray
_np_where, _np_maximum, _np_minimum = np.where, np.maximum, np.minimum
_np_asarray, _np_full, _np_zeros, _np_broadcast_to = np.asarray, np.full, np.zeros, np.broadcast_to


def _scalar_of(r):
    """A numpy result as a scalar where it has no axes (numpy returns 0-d arrays from some functions)."""
    return r[()] if type(r) is _ND and r.ndim == 0 else r


def _cast(r, a, b):
    """``r`` (a or b) as numpy's result type of a and b (float64 over int64 over bool); None when a type
    is not one of those (the caller then asks numpy)."""
    ta, tb = type(a), type(b)
    if ta in _FLOATS or tb in _FLOATS:
        if (ta in _FLOATS or ta in _INTS or ta in _BOOLS) and (tb in _FLOATS or tb in _INTS or tb in _BOOLS):
            return r if type(r) is _F else _F(r)
        return None
    if ta in _INTS or tb in _INTS:
        if (ta in _INTS or ta in _BOOLS) and (tb in _INTS or tb in _BOOLS):
            return r if type(r) is _I else _I(r)
        return None
    if ta in _BOOLS and tb in _BOOLS:
        return r if type(r) is _B else _B(r)
    return None


def where(c, a, b):
    ta, tb = type(a), type(b)
    if ta is _F and tb is _F and type(c) is not _ND:  # the common case: both sides float64
        return a if c else b
    if type(c) is not _ND and ta is not _ND and tb is not _ND:
        got = _cast(a if c else b, a, b)
        if got is not None:
            return got
    return _scalar_of(_np_where(c, a, b))


def maximum(a, b):
    ta, tb = type(a), type(b)
    if ta is _F and (tb is _F or tb is float):
        return a if (a >= b or a != a) else _F(b)
    if ta is not _ND and tb is not _ND:
        # numpy's rule: a NaN on either side is the result
        got = _cast(a if (a >= b or a != a) else b, a, b)
        if got is not None:
            return got
    return _scalar_of(_np_maximum(a, b))


def minimum(a, b):
    if type(a) is not _ND and type(b) is not _ND:
        got = _cast(a if (a <= b or a != a) else b, a, b)
        if got is not None:
            return got
    return _scalar_of(_np_minimum(a, b))


def asarray(v, dtype=None):
    t = type(v)
    if t is _F and (dtype is None or dtype is float):
        return v
    if dtype is None:
        if t is _F or t is _I or t is _B:
            return v
        if t is float:
            return _F(v)
        if t is bool:  # before int: bool is an int
            return _B(v)
        if t is int:
            return _I(v)
    elif dtype is float:
        if t is _F:
            return v
        if t in _FLOATS or t in _INTS or t in _BOOLS:
            return _F(v)
    elif dtype is int:
        if t is _I:
            return v
        if t in _INTS or t in _BOOLS:
            return _I(v)
    return _scalar_of(_np_asarray(v, dtype=dtype))


def full(shape, fill_value, dtype=None):
    if shape == () and type(fill_value) is not _ND:
        return asarray(fill_value, dtype)
    return _np_full(shape, fill_value, dtype=dtype)


def zeros(shape, dtype=float):
    if shape == ():
        return asarray(0, float if dtype is None else dtype)
    return _np_zeros(shape, dtype=dtype)


def broadcast_to(v, shape):
    if shape == () and type(v) is not _ND:
        return asarray(v)
    return _scalar_of(_np_broadcast_to(v, shape))


def stack(arrays, axis=0):
    """``np.stack`` of numpy scalars of one type is the 1-d array of them (made directly: faster)."""
    if axis == 0 and type(arrays) is list and arrays:
        t = type(arrays[0])
        if (t is _F or t is _I or t is _B) and all(type(a) is t for a in arrays):
            return np.array(arrays)
    return np.stack(arrays, axis=axis)


def _shim() -> types.ModuleType:
    m = types.ModuleType("costmodel._scalar_np", "numpy, with the closed forms' hot functions for scalars")
    m.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    for f in (where, maximum, minimum, asarray, full, zeros, broadcast_to, stack):
        setattr(m, f.__name__, f)
    return m


SCALAR_NP = _shim()


def _load() -> types.ModuleType:
    """The scalar copy's ``analytic`` module (loaded once)."""
    got = sys.modules.get(f"{PACKAGE}.analytic")
    if got is not None:
        return got
    import costmodel

    pkg = types.ModuleType(PACKAGE, "a second copy of the closed forms, numpy replaced by SCALAR_NP")
    pkg.__path__ = list(costmodel.__path__)
    sys.modules[PACKAGE] = pkg
    # every other costmodel module is shared: the copy's relative imports of them find the originals
    for name, mod in list(sys.modules.items()):
        parts = name.split(".")
        if parts[0] == "costmodel" and len(parts) >= 2 and parts[1] not in COPIED and parts[1] != "_scalar":
            sys.modules.setdefault(f"{PACKAGE}.{'.'.join(parts[1:])}", mod)
    analytic = importlib.import_module(f"{PACKAGE}.analytic")
    for name, mod in list(sys.modules.items()):
        if name.startswith(PACKAGE + ".") and name.split(".")[2] in COPIED and hasattr(mod, "np"):
            mod.np = SCALAR_NP
    layers = sys.modules[f"{PACKAGE}.layers"]
    layers.Role = _EnumOf(layers.Role)
    return analytic


class _EnumOf:
    """``Enum(value)`` by a dictionary look-up (the same member; ``Enum.__call__`` costs 1-2 us)."""

    def __init__(self, enum):
        self._enum, self._members = enum, enum._value2member_map_

    def __call__(self, value):
        got = self._members.get(value)
        return got if got is not None else self._enum(value)

    def __getattr__(self, name):
        return getattr(self._enum, name)


def evaluate(*args, **kw) -> dict:
    """``analytic.evaluate`` of one point (scalar inputs), by the scalar copy; outputs as numpy scalars."""
    return _load().evaluate(*args, **kw)


__all__ = ["SCALAR_NP", "evaluate"]
