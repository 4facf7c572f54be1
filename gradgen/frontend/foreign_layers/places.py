"""Where a neuron's weights and inputs are, in the trace's parameter layout and inputs.

    place(state, neuron, w, b) -> (W input, b input, row j, W name, W's ParamArray, b's), or None
    row(state, x)              -> (V, [node or None per input]) when `x` is a whole row of V, or None
    param_node(t, v)           -> the node of parameter `v` (an element of its array), or None

A neuron's weights must be row j of one parameter array `W (nout, nin)` and
its bias element j of one `b (nout,)` (`gradgen.params`' layout of the
module, the first module holding them).  Its inputs must be every element
`k` of one array `V`'s last axis, once, in order: the elements of an example
row of `gradgen.mean`, of a vector argument, or the outputs of the previous
emulated layer; as the user's Values (`list(map(Value, x))`) or as the
argument's floats themselves.  Both answers are kept on the run's state
(per neuron; the latest input).
"""

from __future__ import annotations

import operator

from gradgen.frontend.engines import is_engine_value
from gradgen.ir.ops import Op
from gradgen.ir.shapes import BATCH


def place(state, neuron, w, b):
    """(W input, b input, row j, W name, W's ParamArray, b's) when `w` is row j of one W (nout, nin) and `b` is b[j]."""
    hit = state.places.get(id(neuron), False)
    if hit is not False:
        return hit
    t = state.run.t
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
    state.places[id(neuron)] = hit
    return hit


def row(state, x):
    """(V, [node or None per input]) when `x` is every element of V's last axis, in order."""
    ids = tuple(map(id, x))
    if state.rows is not None and state.rows[0] is x and state.rows[1] == ids:
        return state.rows[2]
    out = _find_row(state.run, x)
    state.rows = (x, ids, out)
    return out


def _find_row(run, x):
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
