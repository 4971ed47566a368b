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

import functools
import importlib
import sys
import threading
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


_SCALARS = (_F, _I, _B, float, int, bool)


def broadcast_shapes(*shapes):
    return () if all(s == () for s in shapes) else np.broadcast_shapes(*shapes)


class _Point:
    """``np.broadcast`` of scalars: its shape."""

    shape = ()


def broadcast(*args):
    return _Point() if all(type(a) in _SCALARS for a in args) else np.broadcast(*args)


def prod(a, *args, **kw):
    return 1 if a == () and not args and not kw else np.prod(a, *args, **kw)


def any_(a, *args, **kw):
    t = type(a)
    return _B(a) if (t is _B or t is bool) and not args and not kw else np.any(a, *args, **kw)


def max_(a, axis=None, **kw):
    return a.max(axis=axis, **kw) if type(a) is _ND else np.max(a, axis=axis, **kw)


def ones_like(a):
    t = type(a)
    return t(1) if t is _F or t is _I else np.ones_like(a)


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
    for f in (where, maximum, minimum, asarray, full, zeros, broadcast_to, stack, ones_like):
        setattr(m, f.__name__, f)
    for f in (broadcast_shapes, broadcast, prod, any_, max_):
        setattr(m, f.__name__.rstrip("_"), f)
    return m


SCALAR_NP = _shim()


# What the one-point versions below mirror, by a digest of its source.  One whose original has changed
# is not installed (the copy then runs the original: slower, the same values), and ``INSTALLED`` says so
# (tests/test_predict_fast.py expects all: after a change, update the version and its digest).
MIRRORS = {
    "kernels.select": "b5f110a523c9",
    "kernels.gemm_device_time": "10d1de2e052f",
    "kernels.attn_device_time": "d6bbf5b84a5e",
    "kernels.attn_choice": "2eed90e808db",
    "kernels.comm_time": "a313ea1e19fb",
    "closedform.Acc.add": "e4e4effbe242",
    "closedform.ring_recurrence": "3b537be31e5d",
    "closedform._ring_scalar": "67462be115eb",
    "closedform.ring_recurrence_gated": "c2e47be88bdb",
    "closedform._ring_scalar_gated": "e97c84721a80",
    "specs.Curve.__call__": "bc865382bad3",
    "specs.CommFigures.bw": "c8c2fdb48a4e",
}
VERSIONS = {  # each one-point version: what it mirrors
    "select": ("kernels.select",),
    "gemm_device_time": ("kernels.gemm_device_time", "specs.Curve.__call__"),
    "attn_device_time": ("kernels.attn_device_time", "specs.Curve.__call__"),
    "attn_choice": ("kernels.attn_choice",),
    "comm_time": ("kernels.comm_time", "specs.Curve.__call__", "specs.CommFigures.bw"),
    "Acc.add": ("closedform.Acc.add",),
    "ring_recurrence": (
        "closedform.ring_recurrence",
        "closedform._ring_scalar",
        "closedform.ring_recurrence_gated",
        "closedform._ring_scalar_gated",
    ),
}
INSTALLED: set[str] = set()


def _unchanged(version: str) -> bool:
    import hashlib
    import inspect

    from . import closedform, kernels, specs

    mods = {"kernels": kernels, "closedform": closedform, "specs": specs}
    for name in VERSIONS[version]:
        obj = mods[name.split(".")[0]]
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        try:
            src = inspect.getsource(obj)
        except (OSError, TypeError):  # no source to compare (a build without .py files): not installed
            return False
        if hashlib.sha1(src.encode()).hexdigest()[:12] != MIRRORS[name]:
            return False
    return True


_LOADED: list[types.ModuleType] = []
_LOCK = threading.Lock()


def _load() -> types.ModuleType:
    """The scalar copy's ``analytic`` module (loaded once, under a lock: a thread sees it whole)."""
    if _LOADED:
        return _LOADED[0]
    with _LOCK:
        if not _LOADED:
            _LOADED.append(_load_copy())
    return _LOADED[0]


def _load_copy() -> types.ModuleType:
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
    geometry = sys.modules[f"{PACKAGE}.geometry"].Geometry
    for name, attr in list(vars(geometry).items()):
        if isinstance(attr, functools.cached_property):
            setattr(geometry, name, _Cached(attr.func, name))
    closedform = sys.modules[f"{PACKAGE}.closedform"]
    if _unchanged("Acc.add"):
        closedform.Acc.add = _scalar_add(closedform.Acc.add)
        INSTALLED.add("Acc.add")
    if _unchanged("ring_recurrence"):
        ring = _scalar_ring(closedform)
        for name, mod in list(sys.modules.items()):  # the strategies import it by name
            if name.startswith(PACKAGE + ".") and getattr(mod, "ring_recurrence", None) is ring.array_ring:
                mod.ring_recurrence = ring
        INSTALLED.add("ring_recurrence")
    _scalar_kernels(sys.modules[f"{PACKAGE}.kernels"])
    strategies = sys.modules[f"{PACKAGE}.strategies"]
    for s in (*strategies.WRAPPERS, strategies.local, strategies.chunked, *strategies.CORES.values()):
        s.closed_form = _skip_when_off(s.closed_form, sys.modules[f"{PACKAGE}.closedform"].AttnCost)
    return analytic


def _skip_when_off(closed_form, attn_cost):
    """A strategy's ``closed_form(ctx, on, ...)`` at a point where it is off (``on`` False): nothing.  The
    array code runs it there with its counts and costs masked to zero (adding 0 to the sums), so the
    result is the same; here it is not run at all."""

    def skipping(ctx, on, *rest):
        if (type(on) is _B or type(on) is bool) and not on:
            return attn_cost()
        return closed_form(ctx, on, *rest)

    return skipping


def _compiled_interp():
    """numpy's C interpolation, which ``np.interp`` calls after checks that cost more than it on one
    point (the same function on the same arguments: the same value); ``np.interp`` where not found."""
    for where in ("numpy.lib._function_base_impl", "numpy.lib.function_base"):
        f = getattr(sys.modules.get(where), "compiled_interp", None)
        if f is not None:
            return f
    return np.interp


_interp = _compiled_interp()


def _curve(c, x):
    """``Curve.__call__`` (``specs.py``) of one point: np.interp(log2(max(x, 1e-30))) on its points."""
    lx, y = c._points
    return _interp(np.log2(maximum(x, 1e-30)), lx, y)


def _scalar_kernels(k: types.ModuleType) -> None:
    """In the scalar copy of ``kernels``: its functions that read a measured curve, written as there with
    the curve read by ``_curve``, and ``attn_choice``'s minimum over the kernels without an array.  Any
    argument that is an array goes to the copy's own function.  ``tests/test_predict_fast.py`` holds
    them to ``kernels.py``."""
    from .specs import Curve

    own = {f: getattr(k, f) for f in ("gemm_device_time", "attn_device_time", "attn_choice", "comm_time")}
    if _unchanged("select"):  # np.where's values without its per-element branch: here, the copy's where
        k.select = where
        INSTALLED.add("select")

    def curve(c, x):
        return _curve(c, x) if type(c) is Curve else c(x)

    def gemm_device_time(hw, flops, hbm_bytes, m, fp8=False, weight_bytes=None):
        if type(flops) is _ND or type(m) is _ND or type(hbm_bytes) is _ND or type(weight_bytes) is _ND:
            return own["gemm_device_time"](hw, flops, hbm_bytes, m, fp8, weight_bytes)
        x = maximum(m, 1) if hw.gemm_efficiency_by == "tokens" else maximum(flops, 1)
        if fp8 and hw.gemm_fp8_efficiency is not None:
            peak, eff = hw.fp8_peak_flops, curve(hw.gemm_fp8_efficiency, maximum(flops, 1))
        else:
            peak, eff = (hw.fp8_peak_flops if fp8 else hw.peak_flops), curve(hw.gemm_efficiency, x)
        stream = hw.gemm_fp8_stream_bw if fp8 else hw.gemm_stream_bw
        if stream is not None and weight_bytes is not None:
            rest = hbm_bytes - weight_bytes
            rest = rest * (rest > 0)
            mem = weight_bytes / curve(stream, maximum(weight_bytes, 1)) + rest / hw.elementwise_bw_Bps
        else:
            mem = hbm_bytes / hw.elementwise_bw_Bps
        return maximum(flops / (peak * eff), mem)

    def attn_device_time(hw, kernel, flops, hbm_bytes, kv_len, causal, q_len=None, dims=()):
        if kernel == "auto" or _ND in (type(flops), type(hbm_bytes), type(kv_len), type(q_len)):
            return own["attn_device_time"](hw, kernel, flops, hbm_bytes, kv_len, causal, q_len, dims)
        fig = hw.attn(kernel)
        thr = curve(fig.causal if causal else fig.full, maximum(kv_len, 1))
        t = maximum(flops / thr, hbm_bytes / hw.elementwise_bw_Bps)
        if q_len is None:
            return t
        if fig.decode is not None and dims:
            b, h, hk, hd, db = dims
            t = where(asarray(q_len) <= 1, fig.decode.time(b, h, hk, kv_len, hd, db), t)
        elif fig.decode_bw is not None:
            t = where(asarray(q_len) <= 1, hbm_bytes / curve(fig.decode_bw, maximum(hbm_bytes, 1)), t)
        return t

    def attn_choice(hw, flops, hbm_bytes, kv_len, causal, q_len=None, dims=()):
        ts = [
            asarray(attn_device_time(hw, name, flops, hbm_bytes, kv_len, causal, q_len, dims), dtype=float)
            for name in sorted(hw.attention)
        ]
        if any(type(t) is not _F or t != t for t in ts):  # arrays, or a NaN: numpy's min and argmin
            return own["attn_choice"](hw, flops, hbm_bytes, kv_len, causal, q_len, dims)
        best = min(ts)
        return best, _I(ts.index(best))  # the first of equal times, as argmin

    def comm_time(hw, link, coll, msg_bytes, group):
        if type(msg_bytes) is _ND or type(group) is _ND:
            return own["comm_time"](hw, link, coll, msg_bytes, group)
        base = hw.comm[str(link)][str(coll)]
        steps, vol = k.ring_factors(coll, group)

        def one(f):
            bw = f.bw_Bps if f.bw_curve is None else curve(f.bw_curve, msg_bytes)
            return f.latency_s + steps * f.hop_latency_s + vol * msg_bytes / bw

        t = one(base)
        for g in sorted(base.by_group):
            t = where(asarray(group) >= g, one(base.by_group[g]), t)
        return where(asarray(group) > 1, t, 0.0) if coll != k.Collective.P2P else t

    for f in (gemm_device_time, attn_device_time, attn_choice, comm_time):
        if _unchanged(f.__name__):
            setattr(k, f.__name__, f)
            INSTALLED.add(f.__name__)


def _scalar_ring(cf: types.ModuleType):
    """``ring_recurrence`` of one short ring straight to its step-by-step loop in floats (what it does for
    one point of at most ``SCALAR_STEPS`` steps, without flattening its inputs into arrays first)."""
    array_ring = cf.ring_recurrence

    def ring_recurrence(c0, g0, c1, g1, x, R, slowdown, x_first=None, slowdown_g=None, gate_lead=None):
        xf = x if x_first is None else x_first
        sg = slowdown if slowdown_g is None else slowdown_g
        args = (c0, g0, c1, g1, x, xf, slowdown, sg)
        if all(type(v) in _SCALARS for v in args) and type(R) in _SCALARS:
            if gate_lead is None and R <= cf.SCALAR_STEPS:
                return _F(cf._ring_scalar(*(float(v) for v in args), int(R)))
            if gate_lead is not None and type(gate_lead) in _SCALARS:
                return _F(cf._ring_scalar_gated(*(float(v) for v in args), float(gate_lead), int(R)))
        return array_ring(c0, g0, c1, g1, x, R, slowdown, x_first, slowdown_g, gate_lead)

    ring_recurrence.array_ring = array_ring
    return ring_recurrence


def _scalar_add(array_add):
    """``Acc.add`` of one point: the same sums, the compute- or memory-bound side chosen by the point's
    flag itself (``cb.all()`` and ``cb.any()`` are numpy calls); arrays go to ``array_add``."""
    from .schedule import OpKind

    def add(self, w, count=1.0, scale=1.0):
        t, cb = self.parts(w)
        if type(cb) is not _B or type(count) is _ND or type(scale) is _ND:
            return array_add(self, w, count, scale)
        if w.kind == OpKind.ATTN:
            self.note_kernel(w, count > 0)
        one = type(count) in (int, float) and count == 1 and type(scale) in (int, float) and scale == 1
        k = None if one else count * scale
        if cb:
            self.compute += t if one else k * t
        else:
            self.memory += t if one else k * t
        self.host += count * self.hw.op(w.role.op_class).issue_s
        fl, hb = asarray(w.flops, dtype=float), asarray(w.hbm_bytes, dtype=float)
        self.flops += fl if one else count * fl
        self.hbm += hb if one else count * hb
        if w.fp8:
            self.flops_fp8 = self.flops_fp8 + (fl if one else count * fl)
        return t * scale

    return add


class _Cached:
    """``functools.cached_property`` without its lock (Python < 3.12 takes one at each first read): the
    value computed once and stored on the instance, which then answers every later read itself."""

    def __init__(self, func, name: str):
        self.func, self.name = func, name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.func(obj)
        return v


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


__all__ = ["INSTALLED", "MIRRORS", "SCALAR_NP", "VERSIONS", "evaluate"]
