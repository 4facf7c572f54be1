"""The layer path of the foreign front end: a foreign engine's neuron, recognised and emulated.

Run on micrograd's own Values, a 784-128 layer builds 200,704 `Value`s (a
product and a sum per weight) that the walk turns into 200,704 IR nodes and
re-rolling groups back into one matrix product; that was most of the 77 CPU
s a 784-128-64-10 MLP took to compile.  `neurons(found)` finds the model's
*neuron-like* objects, `patch(run, neurons)` puts a wrapper on their classes'
`__call__` for the duration of one foreign run (as `__init__` is wrapped,
`restore` takes it off), and the wrapper records instead
what re-rolling would have built, as `gradgen.frontend.layers` does for
`gradgen.nn`:

    z = V @ W.T + b        (transpose, matmul, add)
    h = act(z)             (relu or tanh, when the neuron has one)

returning, for neuron j, a Value of the user's class whose node is
`elem h (j,)` (and whose `.data` is computed in plain floats, in the same
order), so the module is byte for byte the scalar path's.

Nothing about the code is trusted; everything is checked:

* A neuron-like object is found by structure, not by names: an object among
  the model's attributes holding exactly one list of engine Values (its
  weights, whatever the attribute is called) and exactly one engine Value
  (its bias), whose weights and bias are row j of one parameter array
  `W (nout, nin)` and element j of one `b (nout,)` (`gradgen.params`'s
  layout of the module).
* The first call of each (class, `__call__` function, input size, the
  neuron's other plain attributes) on each layer, in each run (the example
  point and the second point), runs the user's code for real, and the graph
  it builds must be exactly `act(((b + w0*x0) + w1*x1) + ...)` -- micrograd's
  and the lecture's `sum((wi*xi for ...), self.b)` -- over those very Value
  objects (the weights, the bias, the inputs given), every intermediate
  Value made by that call, the products and sums on one line, nothing
  stored on the neuron; and the emulated data must equal the real one (to
  the replay's tolerance).  Only then are that key's later calls emulated.
* The inputs must be a whole row of one array (every element `k` of `V`'s
  last axis once, in order): the elements of an example row of
  `gradgen.mean`, of a vector argument, or the outputs of the previous
  emulated layer; as the user's Values (`list(map(Value, x))`) or as the
  argument's floats themselves.
* A class any of whose functions (or its bases', nested code included)
  names `data` is never emulated: a branch on the numbers (`act.relu() if
  self.w[0].data > 0 else act`) could take another way on another neuron of
  the same layer, which neither the first call nor the second point shows.
* Each emulated output is replayed against the IR with the walked Values
  (`foreign._replay`), and the second run compares structures as before.

Anything else -- a subclass whose forward differs (its graph is not the
pattern), a partial or computed row, a neuron called inside another wrapped
call, one or zero inputs, parameters outside the layout -- runs the user's
code as before (the scalar path).  What is still trusted: that a neuron's
code without `.data` in it builds the same graph on every call with the same
plain attributes (it could read a global that changes between calls).
`.data` of an emulated output is a plain float, not the argument-remembering
float of the scalar path: a constant made from it (`Value(h.data)`) differs
between the two points and is refused there.

`gradgen.frontend.layers.ENABLED` (`GRADGEN_LAYERS=0` turns it off) switches
this path too.
"""

from __future__ import annotations

import math
import operator
import sys

import numpy as np

from gradgen.frontend import layers as nn_layers
from gradgen.frontend.engines import is_engine_value, parse_op
from gradgen.ir.ops import Op
from gradgen.ir.shapes import BATCH

_ACTS = {Op.RELU, Op.TANH}  # the activations whose scalar path re-rolls to the same module (tested)
_SIMPLE = (bool, int, float, str, type(None))
_MAX_OBJECTS = 1_000_000


def neurons(found) -> dict:
    """id(object) -> (object, weights attribute, bias attribute) of the neuron-like objects of
    `found`'s modules (none when the layer path is off)."""
    return _neurons([m.module for m in found]) if nn_layers.ENABLED else {}


def patch(run, neurons: dict) -> list:
    """Wrap the `__call__` of the classes of `neurons` for `run`; returns what `restore` undoes."""
    if not neurons:
        return []
    state = _State(run, neurons)
    run.layer_state = state
    saved = []
    classes = [c for c in {type(o): None for o, _, _ in neurons.values()} if not _reads_data(c)]
    state.neurons = {k: v for k, v in neurons.items() if type(v[0]) in classes}
    for cls in classes:
        orig = cls.__call__
        if not hasattr(orig, "__code__"):
            continue
        saved.append((cls, cls.__dict__.get("__call__")))
        cls.__call__ = _wrapper(state, orig)
    return saved


def restore(saved: list) -> None:
    for cls, call in reversed(saved):
        if call is None:
            del cls.__call__
        else:
            cls.__call__ = call


def _wrapper(state, orig):
    def __call__(self, *args, **kwargs):
        if state.depth or kwargs or len(args) != 1 or id(self) not in state.neurons:
            return state.plain(orig, self, args, kwargs)
        return state.call(orig, self, args[0])

    __call__.__wrapped__ = orig
    return __call__


# -- finding neurons ---------------------------------------------------------------------------------
def _neurons(modules) -> dict:
    """id(object) -> (object, weights attribute, bias attribute) of the neuron-like objects reachable."""
    from gradgen.params import _NOT_MODULES, _children

    out, seen = {}, set()
    stack = list(reversed(modules))
    while stack and len(seen) < _MAX_OBJECTS:
        x = stack.pop()
        if id(x) in seen or is_engine_value(x) or isinstance(x, (str, bytes, int, float, type, _NOT_MODULES)):
            continue
        seen.add(id(x))
        if isinstance(x, (list, tuple)):
            if x and is_engine_value(x[0]):
                continue  # a list of Values: parameters, not modules
            stack.extend(reversed(x))
            continue
        if isinstance(x, dict):
            stack.extend(reversed([v for _, v in _children(x)]))
            continue
        if not hasattr(x, "__dict__"):
            continue
        kids = _children(x)
        lists = [k for k, v in kids if isinstance(v, list) and len(v) > 1 and _values(v)]
        single = [k for k, v in kids if is_engine_value(v)]
        if len(lists) == 1 and len(single) == 1 and callable(getattr(type(x), "__call__", None)):
            out[id(x)] = (x, lists[0], single[0])
            continue
        stack.extend(reversed([v for _, v in kids]))
    return out


# -- one run's state ---------------------------------------------------------------------------------
class _State:
    def __init__(self, run, neurons: dict):
        self.run = run
        self.neurons = neurons
        self.depth = 0  # inside a wrapped call: nested ones run as written
        self.verified: dict = {}  # key -> _Seen, or None when the key's graph was not the pattern
        self.checked: set = set()  # (key, W name): layers whose first call ran for real in this run
        self.places: dict = {}  # id(neuron) -> (W input, b input, row j, W name), or None
        self.layers: dict = {}  # (W input, V, act) -> the layer's output node (z or h)
        self.emulated: list = []  # (Value, node) of every emulated output (replayed)
        self.data_only = False  # the batch's later rows: data, no IR
        self.matrices: dict = {}  # W name -> (W.T, b) as float64 arrays (the parameters' data)
        self.sums: dict = {}  # W name -> (x, ids of x's items, the layer's sums): its latest input
        self.rows: tuple | None = None  # (x, ids of x's items, _row's answer): the latest input

    def plain(self, orig, self_, args, kwargs):
        self.depth += 1
        try:
            return orig(self_, *args, **kwargs)
        finally:
            self.depth -= 1

    def call(self, orig, neuron, x):
        _, wname, bname = self.neurons[id(neuron)]
        w, b = getattr(neuron, wname), getattr(neuron, bname)
        if not isinstance(x, (list, tuple)) or len(x) != len(w) or len(w) < 2:
            return self.plain(orig, neuron, (x,), {})
        key = _key(neuron, orig, wname, bname, len(w))
        if key is None or self.verified.get(key, 0) is None:
            return self.plain(orig, neuron, (x,), {})
        place = self._place(neuron, w, b)
        if place is None:
            return self.plain(orig, neuron, (x,), {})
        if self.data_only:
            if (key, place[3]) not in self.checked or not all(map(_is_number_or_value, x)):
                return self.plain(orig, neuron, (x,), {})
            return self._out(neuron, self._data(place, x, self.verified[key].act), None)
        row = self._row(x)
        if row is None:
            return self.plain(orig, neuron, (x,), {})
        caller = sys._getframe(2)  # (above the wrapper)
        if (key, place[3]) not in self.checked:
            return self._verify(orig, neuron, w, b, x, key, place, row, caller)
        return self._emulate(neuron, w, b, x, self.verified[key], place, row, caller)

    # -- the first call on a layer: run for real, and check the graph ------------------------
    def _verify(self, orig, neuron, w, b, x, key, place, row, frame):
        from gradgen.frontend.foreign import RTOL

        run = self.run
        before = _attrs(neuron)
        start = len(run.keep)
        out = self.plain(orig, neuron, (x,), {})
        self.checked.add((key, place[3]))
        seen = _match(run, out, w, b, x, start) if _attrs(neuron) == before else None
        if seen is not None:
            want = self._data(place, x, seen.act)
            got = float(out.data)
            if not abs(want - got) <= RTOL * max(1.0, abs(want), abs(got)):
                seen = None
        if seen is None:
            self.verified[key] = None
            return out
        seen.name, seen.helper = run.names.get(id(out)), run.helper_names.get(id(out))  # (from its own code)
        caller = run._loc(frame)
        seen.z_here = seen.z_loc == caller
        seen.h_here = seen.h_loc == caller
        old = self.verified.get(key)
        if old is not None and (old.act, old.z_here, old.h_here) != (seen.act, seen.z_here, seen.h_here):
            self.verified[key] = None  # the same code built another graph on another layer
            return out
        self.verified[key] = seen
        return self._emulate(neuron, w, b, x, seen, place, row, frame)

    # -- the emulated call -------------------------------------------------------------------------
    def _emulate(self, neuron, w, b, x, seen, place, row, frame):
        run = self.run
        t = run.t
        W, B, j = place[:3]
        V, nodes = row
        caller = run._loc(frame) if (seen.z_here or seen.h_here) else None
        z_loc = caller if seen.z_here else seen.z_loc
        h_loc = caller if seen.h_here else seen.h_loc
        key = (W, V, seen.act, z_loc, h_loc)
        top = self.layers.get(key)
        if top is None:
            for k, xk in enumerate(x):  # the inputs' nodes (argument elements), as the walk makes them
                if nodes[k] is None:
                    run.memo[id(xk)] = run.num(xk if not is_engine_value(xk) else xk.data, z_loc)
            add = t.b.add
            mm = add(Op.MATMUL, (V, add(Op.TRANSPOSE, (W,), loc=z_loc)), loc=z_loc)
            top = add(Op.ADD, (mm, B), loc=z_loc)
            if seen.act is not None:
                top = add(seen.act, (top,), loc=h_loc)
            self.layers[key] = top
        nid = t.elem(top, (j,))
        v = self._out(neuron, self._data(place, x, seen.act), nid)
        if seen.name is not None:  # the local of the neuron's own code that held its output
            run.names[id(v)] = seen.name
        if seen.helper is not None:
            run.helper_names[id(v)] = seen.helper
        return v

    def _out(self, neuron, data: float, nid):
        cls = type(getattr(neuron, self.neurons[id(neuron)][2]))
        v = cls(data)
        if nid is not None:
            self.run.known[id(v)] = nid
            self.run.layer_elems.add(nid)
            self.emulated.append((v, nid))
        return v

    def _data(self, place, x, act) -> float:
        """Neuron j's value in float64, summed in the order the engine sums (b + w0*x0 + ...):
        the whole layer's sums at once, kept for its other neurons (called with the same `x`)."""
        Wa, Ba, j, name = place[4], place[5], place[2], place[3]
        ids = tuple(map(id, x))
        hit = self.sums.get(name)
        if hit is None or hit[0] is not x or hit[1] != ids:
            m = self.matrices.get(name)
            if m is None:
                WT = np.array([v.data for v in Wa.values], dtype=np.float64).reshape(Wa.shape).T.copy()
                m = self.matrices[name] = (WT, np.array([v.data for v in Ba.values], dtype=np.float64))
            WT, s = m
            xs = [float(xi.data if is_engine_value(xi) else xi) for xi in x]
            for i, xi in enumerate(xs):
                s = s + WT[i] * xi
            hit = self.sums[name] = (x, ids, s)
        s = float(hit[2][j])
        if act is Op.RELU:
            return 0.0 if s < 0 else s
        if act is Op.TANH:
            return math.tanh(s)
        return s

    # -- where the weights and the inputs are -------------------------------------------------------
    def _place(self, neuron, w, b):
        """(W input, b input, row j, W name, W's ParamArray, b's) when `w` is row j of one W (nout, nin) and `b` is b[j]."""
        hit = self.places.get(id(neuron), False)
        if hit is not False:
            return hit
        t = self.run.t
        pw, pb = _lookup(t, w[0]), _lookup(t, b)
        hit = None
        if pw is not None and pb is not None and pw[0] == pb[0] and len(pw[2]) == 2 and len(pb[2]) == 1:
            (m, Wa, (j, _)), Ba = pw, pb[1]
            nin = len(w)
            if (
                pw[2] == (j, 0)
                and pb[2] == (j,)
                and Wa.shape[1:] == (nin,)
                and Ba.shape == Wa.shape[:1]
                and all(map(operator.is_, Wa.values[j * nin : (j + 1) * nin], w))
                and Ba.values[j] is b
            ):
                inputs = t._module_inputs(m)
                hit = (inputs[Wa.name], inputs[Ba.name], j, Wa.name, Wa, Ba)
        self.places[id(neuron)] = hit
        return hit

    def _row(self, x):
        """(V, [node or None per input]) when `x` is every element of V's last axis, in order."""
        ids = tuple(map(id, x))
        if self.rows is not None and self.rows[0] is x and self.rows[1] == ids:
            return self.rows[2]
        out = self._find_row(x)
        self.rows = (x, ids, out)
        return out

    def _find_row(self, x):
        run = self.run
        t = run.t
        n = len(x)
        nodes = []
        V = None
        for k, xk in enumerate(x):
            nid = run.known.get(id(xk))
            if nid is not None:
                node = t.b.nodes[nid]
                if node.op is not Op.ELEM or node.attr != (k,):
                    return None
                a = node.args[0]
                nodes.append(nid)
            else:
                num = xk.data if is_engine_value(xk) else xk
                if is_engine_value(xk) and (xk._prev or id(xk) not in run.made):
                    return None
                e = getattr(num, "_e", None)
                if e is None or e[0] != "leaf" or e[1][0] not in ("row", "elem") or e[1][2] != (k,):
                    return None
                a = run.inputs[e[1][1]]
                nodes.append(None)
            if V is None:
                V = a
                if t.b.nodes[V].shape not in ((n,), (BATCH, n)):
                    return None
            elif a != V:
                return None
        if any(nid is None for nid in nodes) and any(nid is not None for nid in nodes):
            return None
        if nodes[0] is not None and any(t._elems.get((V, (k,))) != nid for k, nid in enumerate(nodes)):
            return None
        return V, nodes


def _values(xs: list) -> bool:
    """A list of engine Values of one class."""
    first = type(xs[0])
    return is_engine_value(xs[0]) and all(type(x) is first for x in xs)


class _Seen:
    """What a verified call built: its activation op, the lines of its sums and activation (or
    whether they are the caller's line), and the names its own code gave its output."""

    __slots__ = ("act", "z_loc", "h_loc", "z_here", "h_here", "name", "helper")

    def __init__(self, act, z_loc, h_loc):
        self.act, self.z_loc, self.h_loc = act, z_loc, h_loc
        self.z_here = self.h_here = False
        self.name = self.helper = None


def param_node(t, v) -> int | None:
    """The node of parameter `v` (an element of its array), or None: the tracer's `_param`, looked
    up in the layout's per-array indexes (kept across the two runs) when the arrays are few."""
    if sum(map(len, t.layouts)) > 16:
        return t._param(v)
    hit = _lookup(t, v)
    if hit is None:
        return None
    m, a, index = hit
    array = t._module_inputs(m)[a.name]
    return t.elem(array, index) if index else array


def _lookup(t, v):
    """(module no, ParamArray, index) of parameter `v`: the first module's, as the walk takes it."""
    for m, layout in enumerate(t.layouts):
        for a in layout:
            index = a.index_of.get(id(v))
            if index is not None:
                return m, a, index
    return None


def _key(neuron, orig, wname: str, bname: str, nin: int):
    """(class, function, input size, the neuron's other plain attributes), or None when one is not plain."""
    rest = []
    for k, v in vars(neuron).items():
        if k in (wname, bname):
            continue
        if not isinstance(v, _SIMPLE):
            return None
        rest.append((k, type(v), v))
    return (type(neuron), orig, nin, tuple(rest))


def _reads_data(cls) -> bool:
    """Does a function of `cls` (or of a base) name `data`: a branch on the numbers, maybe.
    (Methods, static and class methods, properties, decorated functions' originals, nested code.)"""
    codes = []
    for k in cls.__mro__:
        if k is object:
            continue
        for f in vars(k).values():
            for g in (f, getattr(f, "__func__", None), getattr(f, "fget", None), getattr(f, "fset", None)):
                for _ in range(8):  # (a decorator's chain of __wrapped__, bounded)
                    if g is None:
                        break
                    if hasattr(g, "__code__"):
                        codes.append(g.__code__)
                    g = getattr(g, "__wrapped__", None)
    while codes:
        code = codes.pop()
        if "data" in code.co_names:
            return True
        codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return False


def _attrs(neuron) -> list:
    return [(k, id(v), len(v) if isinstance(v, list) else None) for k, v in vars(neuron).items()]


def _is_number_or_value(x) -> bool:
    return is_engine_value(x) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _match(run, out, w, b, x, start: int):
    """A `_Seen` when `out` is exactly act(((b + w0*x0) + w1*x1) + ...) made from `start` on, else None."""
    made = run.made

    def fresh(v):
        m = made.get(id(v))
        return m is not None and m[0] >= start and m[1] is not None

    def op_of(v):
        p = parse_op(getattr(v, "_op", None))
        return None if p is None or p[1] is not None else p[0]

    if not is_engine_value(out) or not fresh(out):
        return None
    act, h_loc, v = None, None, out
    if op_of(v) in _ACTS:
        kids = made[id(v)][1]
        if len(kids) != 1:
            return None
        act, h_loc, v = op_of(v), made[id(v)][2], kids[0]
    z_loc = made[id(v)][2] if fresh(v) else None
    for i in range(len(w) - 1, -1, -1):
        if not fresh(v) or op_of(v) is not Op.ADD or made[id(v)][2] != z_loc:
            return None
        kids = made[id(v)][1]
        if len(kids) != 2:
            return None
        s, m = kids
        if not fresh(m) or op_of(m) is not Op.MUL or made[id(m)][2] != z_loc:
            return None
        if len(made[id(m)][1]) != 2:
            return None
        mw, mx = made[id(m)][1]
        if mw is not w[i] or not _is_input(run, mx, x[i], start):
            return None
        v = s
    if v is not b:
        return None
    return _Seen(act, z_loc, h_loc)


def _is_input(run, child, given, start: int) -> bool:
    """`child` is the input `given`: the Value itself, or the leaf the engine wrapped a float in."""
    if child is given:
        return True
    if is_engine_value(given):
        return False
    m = run.made.get(id(child))
    return m is not None and m[0] >= start and not child._prev and child.data is given
