"""The second front end: compile a function written on a foreign micrograd-style engine.

    graph, sig = trace_foreign(fn, name, example, params, file)   # same shape as trace_function's
    wants(fn, params) -> True when fn's model uses such an engine (trace.py dispatches on it)

micrograd's package, the lecture's `Value` typed into the model file, or a
fork cannot be traced by swapping in gradgen's `Tracer`: their ops compute
numbers (`relu` branches on `.data`, the lecture's `tanh` calls
`math.exp`).  So the function is run on the user's own Values at the
example point and the graph it builds (`data`, `_prev`, `_op`) is walked,
iteratively, into the same IR the tracer records:

* `_op` strings go through `engines.parse_op` (`**k` parsed); an unknown
  one is refused, naming the op string, the class and the line.
* Leaves: a parameter of a module among the model file's globals (one
  whose `parameters()` holds engine Values; `params=` to choose) is an
  element of its parameter array, exactly as for `gradgen.nn`; an argument
  element is recognised by its `.data`, a `_Num` (a float that remembers
  where it came from, and records the arithmetic done on it, so `-yi` is
  still `y`'s element); any other leaf made while the function ran
  (`Value(0.0)`, `sum(xs, Value(0))`, `Value(1)` from `1 + v`) is a
  constant.  A Value made before the run that is none of these is refused.
* Children order: `_prev` is a set, so the class's `__init__` is wrapped
  during the run to see the children tuple in order (and the file:line
  that made each Value, for locations and refusals); a reflected
  `__radd__`/`__rmul__` is put back in the user's order.
* Checks: the IR is replayed at the example and every node compared with
  the recorded `.data` (to 1e-8 relative: the lecture's tanh is
  `(e^2x - 1)/(e^2x + 1)`); then the function is run again at a second,
  perturbed point and the two IRs compared, since data-dependent control
  flow cannot be seen in one graph.  Either difference is refused at its line.
* `gradgen.mean(fn, X, y)` / `gradgen.each` work as with the tracer: `fn`
  runs once on the first example row, its graph becomes IR over the batch
  axis (`batch.py` hands the call to `_Run.batch`).

Names come from the model file's locals, labels and helper functions, as
in `frontend.naming`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import sys
from dataclasses import replace

import numpy as np

from gradgen import params as params_mod
from gradgen.errors import GradgenError
from gradgen.frontend import foreign_layers
from gradgen.frontend.discovery import FoundModule, arguments
from gradgen.frontend.engines import is_engine_value, is_foreign_value, parse_op
from gradgen.frontend.naming import def_line, helper_name, is_internal
from gradgen.ir.graph import VALUE, Loc, Origin
from gradgen.ir.ops import Op
from gradgen.ir.shapes import BATCH

_ACTIVE: list = []  # the run in progress (gradgen.mean/each read it)
_BINARY = (Op.ADD, Op.MUL, Op.SUB, Op.DIV)
_REFLECTED = ("__radd__", "__rmul__")
RTOL = 1e-8
_GENERATOR = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
NO_EXAMPLE = 0.5  # a scalar argument with neither an example nor a default runs at this point


def active():
    """The foreign run in progress, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


# -- numbers that remember where they came from ----------------------------------------------------
class _Num(float):
    """An argument element (or arithmetic on one): a float carrying `_e`, its expression.

    `_e` is ("leaf", key) for an element, or (op, operands, attr) for arithmetic on it.
    """

    __slots__ = ("_e",)

    def __neg__(self):
        return _num(-float(self), (Op.NEG, (self,), None))

    def __pos__(self):
        return self

    def __abs__(self):
        return _num(abs(float(self)), (Op.ABS, (self,), None))


def _num(value: float, e) -> _Num:
    n = _Num(value)
    n._e = e
    return n


def _binary(op: Op, fn, reflected: bool):
    def method(self, other):
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        return _num(fn(float(a), float(b)), (op, (a, b), None))

    return method


for _name, _op, _fn in (
    ("add", Op.ADD, lambda a, b: a + b),
    ("sub", Op.SUB, lambda a, b: a - b),
    ("mul", Op.MUL, lambda a, b: a * b),
    ("truediv", Op.DIV, lambda a, b: a / b),
):
    setattr(_Num, f"__{_name}__", _binary(_op, _fn, False))
    setattr(_Num, f"__r{_name}__", _binary(_op, _fn, True))


def _num_pow(self, k):
    if isinstance(k, bool) or type(k) not in (int, float):
        return NotImplemented
    return _num(float(self) ** k, (Op.POW, (self,), k))


_Num.__pow__ = _num_pow


# -- detection ---------------------------------------------------------------------------------------
def _engine_class(c) -> bool | None:
    """True for a class whose __init__ sets data, _prev and _op; False for data without them."""
    from gradgen.engine import Value

    if not isinstance(c, type) or issubclass(c, Value):
        return None
    init = c.__dict__.get("__init__") or getattr(c, "__init__", None)
    code = getattr(init, "__code__", None)
    if code is None:
        return None
    names = set(code.co_names)
    if {"data", "_prev", "_op"} <= names:
        return True
    if "data" in names and callable(getattr(c, "backward", None)) and callable(getattr(c, "__add__", None)):
        return False  # an autograd engine, but not micrograd-shaped
    return None


def _globals(fn) -> list[tuple[str, object]]:
    out = list(fn.__globals__.items())
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            out.append((name, cell.cell_contents))
        except ValueError:
            pass
    return out


def _holds_foreign(x) -> bool:
    from gradgen.nn import Module

    if isinstance(x, (type, Module)) or inspect.ismodule(x) or inspect.isroutine(x):
        return False
    params = getattr(x, "parameters", None)
    if not callable(params):
        return False
    try:
        return any(is_foreign_value(p) for p in params())
    except Exception:
        return False


def wants(fn, params=None) -> bool:
    """Does `fn` compute on a foreign engine (its globals hold one's class or module, or params= does)?"""
    if params is not None:
        mods = params if isinstance(params, (list, tuple)) else [params]
        return any(_holds_foreign(m) for m in mods)
    from gradgen import nn
    from gradgen.engine import Value

    found = _globals(fn)
    if any(_engine_class(v) or _holds_foreign(v) for _, v in found):
        return True
    # an engine without _prev/_op is refused, unless the model computes on gradgen's own Values
    mine = any(v is Value or v is nn or isinstance(v, nn.Module) for _, v in found)
    return not mine and any(_engine_class(v) is False for _, v in found)


# -- the run -----------------------------------------------------------------------------------------
class _Run:
    """One run of the function on the user's Values, and the IR its graph becomes."""

    def __init__(self, fn, name: str, file: str, classes: list):
        from gradgen.frontend.tracer import _Trace

        self.fn, self.name, self.file = fn, name, os.path.abspath(file)
        self.t = _Trace(name, file)
        self.t.code = fn.__code__
        self.classes = classes
        self.class_codes = {
            f.__code__
            for c in classes
            for k in c.__mro__
            if k is not object
            for f in vars(k).values()
            if hasattr(f, "__code__")
        }
        self.made: dict[int, tuple] = {}  # id(Value) -> (creation no, ordered children or None, Loc)
        self.keep: list = []  # every Value made (their ids stay unique)
        self.memo: dict[int, int] = {}  # id(Value or _Num) -> node
        self.walked: list = []  # (Value, node) of every computed Value, in topological order
        self.known: dict[int, int] = {}  # id(Value) -> node: results of gradgen.mean/each
        self.names: dict[int, str] = {}  # id(Value) -> the local that first held it
        self.helper_names: dict[int, str] = {}
        self.arrays: dict[int, str] = {}  # id(the list passed for an array argument) -> its name
        self.inputs: dict[str, int] = {}  # argument -> input node
        self.point: dict[str, object] = {}  # argument -> its value at this run's point
        self.file_kinds: dict[str, str] = {}  # code file -> "model", "other" or "skip" (gradgen, <string>)
        self.frame_locs: dict[int, tuple] = {}  # id(frame) -> (frame, its line, _walk_loc's answer)
        self.wrappers: dict[int, object] = {}  # id -> a scalar argument given as the engine's Value
        self.layer_state = None  # foreign_layers' state, when the model has neuron-like objects
        self.layer_elems: set[int] = set()  # `elem h (j,)` nodes of emulated neurons (named like Values)

    # -- what the wrapped __init__ sees ----------------------------------------------------------
    def made_value(self, v, args, kwargs) -> None:
        prev = getattr(v, "_prev", ())
        kids = None
        try:
            ids = {id(c) for c in prev}
        except TypeError:
            ids = set()
        if ids:
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, (tuple, list)) and a and {id(c) for c in a} == ids:
                    kids = tuple(a)
                    break
        frame = sys._getframe(2)  # above the wrapper: the op (or the user) that made v
        if kids is not None and len(kids) == 2 and frame is not None and frame.f_code in self.class_codes:
            up = frame.f_back
            if up is not None and up.f_code in self.class_codes and up.f_code.co_name in _REFLECTED:
                kids = (kids[1], kids[0])  # `2 * v` is v.__rmul__(2) -> v * Value(2): back to 2 * v
        self.made[id(v)] = (len(self.keep), kids, self._loc(frame))
        self.keep.append(v)

    def _loc(self, frame) -> Loc | None:
        """The model-file line that made a Value (else the innermost line outside gradgen and the engine)."""
        other = None
        f = frame
        kinds = self.file_kinds
        cache = self.frame_locs
        while f is not None:
            code = f.f_code
            if code not in self.class_codes:
                name = code.co_filename
                kind = kinds.get(name)
                if kind is None:
                    kind = kinds[name] = _file_kind(name, self.file)
                if kind == "model":
                    return Loc(name, f.f_lineno)
                if not code.co_flags & _GENERATOR:  # (a generator's f_back is whoever resumes it)
                    hit = cache.get(id(f))
                    if hit is None or hit[0] is not f or hit[1] != f.f_lineno:
                        if len(cache) > 256:
                            cache.clear()
                        hit = cache[id(f)] = (f, f.f_lineno, self._walk_loc(f))
                    found = hit[2]
                    return found[0] or other or found[1]
                if kind == "other" and other is None:
                    other = Loc(name, f.f_lineno)
            f = f.f_back
        return other

    def _walk_loc(self, f) -> tuple:
        """(the first model-file Loc from frame f outwards, the first other file's Loc): the same while
        f runs (its callers wait at their lines), so `_loc` keeps it per frame and line."""
        other = None
        kinds = self.file_kinds
        while f is not None:
            code = f.f_code
            if code not in self.class_codes:
                name = code.co_filename
                kind = kinds.get(name)
                if kind is None:
                    kind = kinds[name] = _file_kind(name, self.file)
                if kind == "model":
                    return Loc(name, f.f_lineno), other
                if kind == "other" and other is None:
                    other = Loc(name, f.f_lineno)
            f = f.f_back
        return None, other

    def _emulated(self, v) -> bool:
        """An output of a neuron the layer path emulated (a leaf that stands for a computed Value)."""
        return self.known.get(id(v)) in self.layer_elems

    def loc_of(self, v) -> Loc | None:
        m = self.made.get(id(v))
        return m[2] if m else None

    def fail(self, message: str, loc: Loc | None) -> GradgenError:
        return GradgenError(message, loc.file if loc else self.file, loc.line if loc else def_line(self.fn))

    # -- naming ------------------------------------------------------------------------------------
    def namer(self):
        classes = tuple(self.classes)

        def name_locals(frame):
            for var, val in frame.f_locals.items():
                if isinstance(val, classes) and id(val) not in self.names:
                    self.names[id(val)] = var

        def watch(start: int, helper: str | None):
            def local(frame, event, arg):
                if event in ("line", "return"):
                    name_locals(frame)
                    if event == "return":
                        if frame.f_code is self.fn.__code__:
                            self.t.return_line = frame.f_lineno
                        elif helper is not None and isinstance(arg, classes):
                            made = self.made.get(id(arg))
                            if made is not None and made[0] >= start and (made[1] or self._emulated(arg)):
                                self.helper_names.setdefault(id(arg), helper)
                return local

            return local

        def global_(frame, event, arg):
            code = frame.f_code
            if code in self.class_codes:
                return None
            kind = self.file_kinds.get(code.co_filename)
            if kind is None:
                kind = self.file_kinds[code.co_filename] = _file_kind(code.co_filename, self.file)
            if kind != "model":
                return None
            return watch(len(self.keep), None if code is self.fn.__code__ else helper_name(code))

        return global_

    # -- arguments ---------------------------------------------------------------------------------
    def arguments(self, names: list[str], shapes: dict, point: dict) -> list:
        b = self.t.b
        out = []
        for a in names:
            shape = shapes.get(a, ())
            self.inputs[a] = b.add(Op.INPUT, (), name=a, origin=Origin("arg", a), shape=shape)
            value = point[a]
            self.point[a] = value
            if shape:
                arr = np.asarray(value, dtype=np.float64)
                lst = _nested(arr, a, ())
                self.arrays[id(lst)] = a
                out.append(lst)
            else:
                x = _num(float(value), ("leaf", ("arg", a)))
                if len(self.classes) == 1:
                    x = self.classes[0](x)
                    self.wrappers[id(x)] = x
                out.append(x)
        return out

    # -- gradgen.mean / gradgen.each ------------------------------------------------------------
    def batch(self, what: str, fn, arrays, mean: bool):
        t = self.t
        loc = self._loc(sys._getframe(2))
        names = []
        for a in arrays:
            name = self.arrays.get(id(a))
            if name is None:
                raise self.fail(
                    f"gradgen.{what} needs whole array arguments of the exported function "
                    "(each with an array `example`), all batched along their first axis",
                    loc,
                )
            names.append(name)
        rows = {len(self.point[n]) for n in names}
        if len(rows) != 1 or (t.batch_rows is not None and t.batch_rows[0] not in rows):
            raise self.fail(f"gradgen.{what} over arrays with different numbers of rows; a function has one batch axis", loc)
        n_rows = rows.pop()
        for n in names:
            nid = self.inputs[n]
            if nid in t.plain_used:
                raise self.fail(f"{n} is indexed directly and also passed to gradgen.{what}; use one or the other", loc)
            if nid not in t.batched:
                t.batched.add(nid)
                t.batch_rows = (n_rows, n)
                t.b.nodes[nid] = replace(t.b.nodes[nid], shape=(BATCH,) + tuple(np.shape(self.point[n])[1:]))
        first = [_row(np.asarray(self.point[n], dtype=np.float64)[0], n, ()) for n in names]
        result = fn(*first)
        if not isinstance(result, tuple(self.classes)):
            raise self.fail(
                f"the function given to gradgen.{what} returned {type(result).__name__}; "
                "it must return one Value computed from its example",
                loc,
            )
        nid = self.node_of(result, loc)
        if t.b.nodes[nid].shape != (BATCH,):
            raise self.fail(f"the function given to gradgen.{what} returned a Value that does not depend on its example", loc)
        state = self.layer_state
        if state is not None:
            state.data_only = True  # the other rows give numbers only: their layers need no IR
        try:
            values = [float(result.data)] + [
                float(fn(*(_plain(np.asarray(self.point[n], dtype=np.float64)[k]) for n in names)).data)
                for k in range(1, n_rows)
            ]
        finally:
            if state is not None:
                state.data_only = False
        cls = type(result)
        if mean:
            total = t.b.add(Op.SUM, (nid,), (0,), loc=loc)
            inv = t.b.add(Op.DIV, (t.b.const(1.0), t.b.add(Op.BATCH, (), loc=loc)), loc=loc)
            nid = t.b.add(Op.MUL, (total, inv), loc=loc)
            out = cls(sum(values) * (1.0 / len(values)))
        else:
            out = cls(values[0])  # (row 0; the replay compares row 0 of a per-example array)
        self.known[id(out)] = nid
        return out

    # -- the walk ----------------------------------------------------------------------------------
    def node_of(self, root, loc: Loc | None = None) -> int:
        """The IR node of an engine Value: its graph walked iteratively (children first)."""
        memo = self.memo
        leaf = self._leaf(root, loc)
        if leaf is not None:
            memo[id(root)] = leaf
            return leaf
        stack = [root]
        while stack:
            v = stack[-1]
            if id(v) in memo:
                stack.pop()
                continue
            kids = self._children(v)
            pending = []
            for c in kids:
                if id(c) in memo:
                    continue
                nid = self._leaf(c, self.loc_of(v))
                if nid is not None:
                    memo[id(c)] = nid
                else:
                    pending.append(c)
            if pending:
                stack.extend(reversed(pending))
                continue
            stack.pop()
            memo[id(v)] = self._emit(v, kids)
            self.walked.append((v, memo[id(v)]))
        return memo[id(root)]

    def _children(self, v) -> tuple:
        made = self.made.get(id(v))
        if made is not None and made[1] is not None:
            return made[1]
        return tuple(v._prev)

    def _leaf(self, v, used_at: Loc | None) -> int | None:
        """The node of a leaf (known result, parameter, argument element, constant); None for a computed Value."""
        if id(v) in self.known:
            return self.known[id(v)]
        if id(v) in self.memo:
            return self.memo[id(v)]
        if not is_engine_value(v):
            raise self.fail(
                f"a {type(v).__name__} is among the children of a Value; an engine's _prev must hold its Values",
                used_at,
            )
        p = foreign_layers.param_node(self.t, v)
        if p is not None:
            return p
        if v._prev:
            return None
        data = v.data
        if isinstance(data, _Num):
            return self.num(data, self.loc_of(v) or used_at)
        if id(v) in self.made and isinstance(data, numbers.Real) and not isinstance(data, bool):
            return self.t.b.const(float(data))
        raise self.fail(
            f"uses a {type(v).__name__} (data={_short(data)}) that is neither an argument, a parameter of a "
            "module among the model file's globals, nor made inside the function; pass it in as an argument, "
            "make it a module parameter, or use a plain float for a constant",
            used_at,
        )

    def num(self, x: _Num, loc: Loc | None) -> int:
        """The node of an argument element or of arithmetic on one (iteratively: chains can be long)."""
        memo = self.memo
        stack = [x]
        while stack:
            n = stack[-1]
            if id(n) in memo:
                stack.pop()
                continue
            if n._e[0] == "leaf":
                memo[id(n)] = self._element(n._e[1], loc)
            else:
                op, operands, attr = n._e
                pending = [o for o in operands if isinstance(o, _Num) and id(o) not in memo]
                if pending:
                    stack.extend(reversed(pending))
                    continue
                ids = [memo[id(o)] if isinstance(o, _Num) else self.t.b.const(float(o)) for o in operands]
                memo[id(n)] = self.t.b.add(op, ids, attr, loc=loc)
            self.keep.append(n)
            stack.pop()
        return memo[id(x)]

    def _element(self, key, loc: Loc | None) -> int:
        kind, name = key[0], key[1]
        nid = self.inputs[name]
        if kind == "arg":
            return nid
        index = key[2]
        if kind == "row":
            return self.t.elem(nid, index) if index else nid
        if nid in self.t.batched:
            raise self.fail(f"{name} is passed to gradgen.mean and also indexed directly; use one or the other", loc)
        self.t.plain_used.add(nid)
        return self.t.elem(nid, index)

    def _emit(self, v, kids) -> int:
        loc = self.loc_of(v)
        parsed = parse_op(v._op)
        if parsed is None:
            raise self.fail(
                f"{type(v).__name__} op {v._op!r} is not one gradgen knows ({_known()}); "
                "write the model with those ops, or add the string to gradgen.frontend.engines.OP_STRINGS",
                loc,
            )
        op, attr = parsed
        if op is Op.POW:
            attr = int(attr) if float(attr).is_integer() else attr
        if op in _BINARY and len(kids) == 1:
            kids = (kids[0], kids[0])  # `a + a`: one child in a set
        want = 2 if op in _BINARY else 1
        if len(kids) != want:
            raise self.fail(
                f"{type(v).__name__} op {v._op!r} has {len(kids)} children, but {op.value} takes {want}; "
                "the engine's _prev must hold the op's operands",
                loc,
            )
        ids = [self.memo[id(c)] for c in kids]
        nid = self.t.b.add(op, ids, attr, loc=loc)
        label = getattr(v, "label", None)
        if isinstance(label, str) and label.isidentifier():
            self.t.b.set_meta(nid, name=label)
        return nid

    def apply_names(self) -> None:
        nodes = self.t.b.nodes
        for names in (self.names, self.helper_names):
            for vid, var in names.items():
                nid = self.memo.get(vid, self.known.get(vid))
                if nid is None or nodes[nid].name is not None:
                    continue
                if nodes[nid].op not in (Op.INPUT, Op.ELEM, Op.CONST) or nid in self.layer_elems:
                    self.t.b.set_meta(nid, name=var)


def _file_kind(name: str, model: str) -> str:
    if is_internal(name) or name.startswith("<"):
        return "skip"
    return "model" if os.path.abspath(name) == model else "other"


def _short(x) -> str:
    return repr(float(x)) if isinstance(x, numbers.Real) else f"a {type(x).__name__}"


def _known() -> str:
    return "+ * - / ** tanh exp log ReLU sigmoid ..."


def _nested(arr: np.ndarray, name: str, index: tuple):
    if arr.ndim == 0:
        return _num(float(arr), ("leaf", ("elem", name, index)))
    return [_nested(arr[k], name, index + (k,)) for k in range(arr.shape[0])]


def _row(arr: np.ndarray, name: str, index: tuple):
    if arr.ndim == 0:
        return _num(float(arr), ("leaf", ("row", name, index)))
    return [_row(arr[k], name, index + (k,)) for k in range(arr.shape[0])]


def _plain(arr: np.ndarray):
    return float(arr) if arr.ndim == 0 else [_plain(a) for a in arr]


# -- the whole front end -------------------------------------------------------------------------
def _classes(fn, found: list) -> list:
    out = []
    for _, v in _globals(fn):
        if _engine_class(v) and v not in out:
            out.append(v)
    for m in found:
        try:  # the layout (cached while tracing) has the parameters in order, without naming them again
            values = [v for arr in params_mod.arrays(m.module, m.prefix) for v in arr.values]
        except ValueError:
            values = [p for _, p in params_mod.named_values(m.module)]
        for t in dict.fromkeys(map(type, values)):
            if t not in out and is_foreign_value(next(v for v in values if type(v) is t)):
                out.append(t)
    return out


def modules(fn, params) -> tuple[list[FoundModule], bool]:
    if params is not None:
        mods = list(params) if isinstance(params, (list, tuple)) else [params]
        names = {id(v): k for k, v in reversed(list(fn.__globals__.items()))}
        found = [(names.get(id(m), f"m{k}"), m) for k, m in enumerate({id(m): m for m in mods}.values())]
        eager = True
    else:
        found, seen = [], set()
        for k, v in _globals(fn):
            if _holds_foreign(v) and id(v) not in seen:
                seen.add(id(v))
                found.append((k, v))
        eager = False
    if len(found) == 1:
        return [FoundModule(found[0][0], "", found[0][1])], eager
    return [FoundModule(k, f"{k}_", m) for k, m in found], eager


def _point(fn, names, defaults, example, shapes) -> dict:
    if isinstance(example, (list, tuple)):
        example = dict(zip(names, example))
    example = example or {}
    out = {}
    for a in names:
        if a in example:
            out[a] = np.asarray(example[a], dtype=np.float64) if a in shapes else float(example[a])
        elif defaults[a] is not inspect.Parameter.empty:
            out[a] = float(defaults[a])
        else:
            out[a] = NO_EXAMPLE
    return out


def _perturbed(point: dict) -> dict:
    out = {}
    for k, (a, v) in enumerate(point.items()):
        arr = np.asarray(v, dtype=np.float64)
        wiggle = 0.1 + 0.05 * ((np.arange(arr.size).reshape(arr.shape) + 3 * k) % 7)
        out[a] = (arr + wiggle * (1.0 + np.abs(arr))) if arr.shape else float(arr + wiggle * (1.0 + abs(float(arr))))
    return out


def trace_foreign(fn, name: str, example, params, file: str):
    """(Graph, Signature) of `fn`, written on a foreign engine: run, walked, replayed, re-run."""
    from gradgen.frontend.arrays import example_shapes

    sig = arguments(fn, file)
    names = [a for a, _ in sig]
    defaults = dict(sig)
    shapes = example_shapes(fn, names, example, file)
    for a in names:
        if a in shapes and defaults[a] is not inspect.Parameter.empty:
            raise GradgenError(
                f"argument {a} of {name} is an array (its example is one) and has a default; "
                "drop the default: array arguments are always passed",
                file,
                def_line(fn),
            )
    found, eager = modules(fn, params)
    bad = [v for _, v in _globals(fn) if _engine_class(v) is False]
    classes = _classes(fn, found)
    if not classes:
        what = bad[0].__name__ if bad else "its Value class"
        raise GradgenError(
            f"{name} computes on {what}, which has no _prev/_op: gradgen reads micrograd-style graphs "
            "(each Value's data, _prev: its children, _op: the op string); store those in __init__, "
            "or write the model with gradgen.engine.Value",
            file,
            def_line(fn),
        )
    point = _point(fn, names, defaults, example, shapes)
    neurons = foreign_layers.neurons(found)
    run, graph = _run_once(fn, name, file, classes, found, eager, names, shapes, point, neurons)
    _replay(run, graph, found, names, point)
    run2, graph2 = _run_once(fn, name, file, classes, found, eager, names, shapes, _perturbed(point), neurons)
    _same_structure(run, graph, graph2)
    from gradgen.frontend.trace import _signature

    return graph, _signature(graph, run.t, found, defaults)


def _run_once(fn, name, file, classes, found, eager, names, shapes, point, neurons):
    from gradgen.frontend.trace import _model_raised

    run = _Run(fn, name, file, classes)
    t = run.t
    taken = set()
    t.set_modules([(m.prefix, m.module) for m in found], eager)
    for m in found:
        taken |= {arr.name for arr in params_mod.arrays(m.module, m.prefix)}
    args = run.arguments(names, shapes, point)
    for a in names:
        if a in taken:
            raise GradgenError(
                f"argument {a} of {name} has the name of a parameter array of the model; rename the argument",
                file,
                def_line(fn),
            )
    saved = []
    for c in classes:
        saved.append((c, c.__dict__.get("__init__")))
        init = c.__init__

        def wrapped(self, *a, _init=init, **k):
            if a and id(a[0]) in run.wrappers:
                a = (a[0].data,) + a[1:]  # `V(x)` of an argument: the Value of its number, as for a float
            _init(self, *a, **k)
            run.made_value(self, a, k)

        c.__init__ = wrapped
    calls = foreign_layers.patch(run, neurons)
    old = sys.gettrace()
    _ACTIVE.append(run)
    sys.settrace(run.namer())
    try:
        result = fn(*args)
        if isinstance(result, tuple(classes)):
            out = run.node_of(result, Loc(file, t.return_line or def_line(fn)))
    except (GradgenError, KeyboardInterrupt):
        raise
    except BaseException as e:
        raise _model_raised(e, name, file) from e
    finally:
        sys.settrace(old)
        _ACTIVE.pop()
        foreign_layers.restore(calls)
        for c, init in saved:
            if init is None:
                del c.__init__
            else:
                c.__init__ = init
    line = t.return_line or def_line(fn)
    if not isinstance(result, tuple(classes)):
        what = f"a {type(result).__name__} of {len(result)} values" if isinstance(result, (list, tuple)) else type(result).__name__
        raise GradgenError(
            f"{name} returns {what}, not one {classes[0].__name__}; gradgen compiles scalar-valued "
            "functions: return one Value computed from the arguments (a sum or mean, say)",
            file,
            line,
        )
    arg_inputs = [run.inputs[a] for a in names]
    if t.b.nodes[out].op is Op.CONST:
        raise GradgenError(
            f"{name} returns a Value that does not depend on its arguments; compute the result from the arguments",
            file,
            line,
        )
    run.apply_names()
    if t.b.nodes[out].name is None:
        t.b.set_meta(out, name="out")
    graph = t.b.build(t.param_inputs() + arg_inputs, [(VALUE, out)])
    return run, graph


def _replay(run: _Run, graph, found, names, point) -> None:
    """Every walked Value's .data against the IR at the example: the op strings mean what gradgen reads."""
    from gradgen.ir.interp import node_values

    arrays = {}
    for m in found:
        arrays.update(params_mod.read(m.module, m.prefix))
    args = []
    for i in graph.inputs:
        n = graph[i]
        args.append(arrays[n.origin.name] if n.origin.kind == "param" else point[n.origin.name])
    with np.errstate(all="ignore"):
        vals = node_values(graph, args)
    emulated = run.layer_state.emulated if run.layer_state is not None else []
    for v, nid in emulated + run.walked:  # (an emulated neuron first: the walked Values use it)
        got = vals[nid]
        got = float(np.asarray(got).reshape(-1)[0]) if graph[nid].shape else float(got)
        want = float(v.data)
        if math.isnan(want) and math.isnan(got):
            continue
        if not abs(got - want) <= RTOL * max(1.0, abs(got), abs(want)):
            if nid in run.layer_elems:  # (cannot happen: the emulation sums as the IR does)
                raise run.fail(
                    f"a neuron the layer path emulated gives {want!r} at the example, but gradgen's "
                    f"layer gives {got!r}; compile with GRADGEN_LAYERS=0 (the scalar path) and report this",
                    run.loc_of(v),
                )
            raise run.fail(
                f"{type(v).__name__} op {v._op!r} computed {want!r} at the example, but gradgen's "
                f"{graph[nid].op.value} of its children gives {got!r}: the op does not compute what its "
                "string says; fix the op or give it its own _op string",
                run.loc_of(v),
            )


def _same_structure(run: _Run, a, b) -> None:
    """Refuse when the graph at the second point differs: control flow on the data."""
    diff = None
    for x, y in zip(a.nodes, b.nodes):
        if (x.op, x.args, x.shape) != (y.op, y.args, y.shape) or (x.attr != y.attr and not _both_nan(x.attr, y.attr)):
            diff = x if x.loc else (y if y.loc else x)
            break
    if diff is None and len(a.nodes) == len(b.nodes) and a.outputs == b.outputs:
        return
    loc = diff.loc if diff is not None else None
    if loc is None:
        locs = [n.loc for n in (a.nodes[len(b.nodes) :] or b.nodes[len(a.nodes) :]) if n.loc]
        loc = locs[0] if locs else None
    raise run.fail(
        f"{run.name} builds a different graph at a second point than at the example (first difference here): "
        "control flow or a constant depends on the data; compute both sides with Values (relu, say), or "
        "make the choice outside the exported function",
        loc,
    )


def _both_nan(x, y) -> bool:
    return isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
