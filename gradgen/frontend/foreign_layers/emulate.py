"""Emulating a verified neuron: later calls record `V @ W.T + b` (+ act) instead of running.

    saved = patch(run, neurons)   # wrap the neuron classes' `__call__` for one foreign run
    restore(saved)                # take the wrappers off

A wrapped call dispatches: a nested call, keyword or extra arguments, an
object that is not a recognised neuron, a key whose first call was not the
pattern, weights or inputs outside the layout (`places`), run as written;
the first call of a key on a layer is run for real and checked (`verify`);
any later one records, once per layer,

    z = V @ W.T + b        (transpose, matmul, add)
    h = act(z)             (relu or tanh, when the neuron has one)

and returns, for neuron j, a Value of the user's class whose node is
`elem h (j,)` and whose `.data` is computed in plain floats, summed in the
engine's order (`_State._data`).  On the batch's later rows (`data_only`)
only the data is computed.  A class that reads `.data` is never wrapped
(`recognise.reads_data`).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from gradgen.frontend.engines import is_engine_value
from gradgen.frontend.foreign_layers import places, verify
from gradgen.frontend.foreign_layers.recognise import key as call_key
from gradgen.frontend.foreign_layers.recognise import reads_data
from gradgen.ir.ops import Op


def patch(run, neurons: dict) -> list:
    """Wrap the `__call__` of the classes of `neurons` for `run`; returns what `restore` undoes."""
    if not neurons:
        return []
    state = _State(run, neurons)
    run.layer_state = state
    saved = []
    classes = [c for c in {type(o): None for o, _, _ in neurons.values()} if not reads_data(c)]
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


def _is_number_or_value(x) -> bool:
    return is_engine_value(x) or (isinstance(x, (int, float)) and not isinstance(x, bool))


class _State:
    """One foreign run's layer path: the neurons, what was verified, the layers recorded."""

    def __init__(self, run, neurons: dict):
        self.run = run
        self.neurons = neurons
        self.depth = 0  # inside a wrapped call: nested ones run as written
        self.verified: dict = {}  # key -> verify.Seen, or None when the key's graph was not the pattern
        self.checked: set = set()  # (key, W name): layers whose first call ran for real in this run
        self.places: dict = {}  # id(neuron) -> (W input, b input, row j, W name), or None
        self.layers: dict = {}  # (W input, V, act) -> the layer's output node (z or h)
        self.emulated: list = []  # (Value, node) of every emulated output (replayed)
        self.data_only = False  # the batch's later rows: data, no IR
        self.matrices: dict = {}  # W name -> (W.T, b) as float64 arrays (the parameters' data)
        self.sums: dict = {}  # W name -> (x, ids of x's items, the layer's sums): its latest input
        self.rows: tuple | None = None  # (x, ids of x's items, places.row's answer): the latest input

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
        key = call_key(neuron, orig, wname, bname, len(w))
        if key is None or self.verified.get(key, 0) is None:
            return self.plain(orig, neuron, (x,), {})
        place = places.place(self, neuron, w, b)
        if place is None:
            return self.plain(orig, neuron, (x,), {})
        if self.data_only:
            if (key, place[3]) not in self.checked or not all(map(_is_number_or_value, x)):
                return self.plain(orig, neuron, (x,), {})
            return self._out(neuron, self._data(place, x, self.verified[key].act), None)
        row = places.row(self, x)
        if row is None:
            return self.plain(orig, neuron, (x,), {})
        caller = sys._getframe(2)  # (above the wrapper)
        if (key, place[3]) not in self.checked:
            out, seen = verify.first_call(self, orig, neuron, w, b, x, key, place, caller)
            return out if seen is None else self._emulate(neuron, w, b, x, seen, place, row, caller)
        return self._emulate(neuron, w, b, x, self.verified[key], place, row, caller)

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
