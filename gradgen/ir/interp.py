"""Evaluate an IR graph on floats and NumPy arrays: the IR's executable semantics.

Scalar nodes (shape `()`, scalar arguments) use the float semantics of
`OPS[op].evaluate`, the same functions as the engine; array nodes use NumPy.
The batch size `B` is read from the first batched input.  Every value has
its node's shape and a float dtype, as compiled code computes it: a scalar
is a float (never a 0-d array), an array is float64 (array inputs are
converted, as the generated prologue does).
"""

from __future__ import annotations

import numpy as np

from gradgen.ir.graph import Graph, Node
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched


def _concrete(shape, B):
    return tuple(B if d == "B" else d for d in shape)


def _array(n: Node, args, B):
    op, attr = n.op, n.attr
    if op is Op.ELEM:
        (x,) = args
        lead = (slice(None),) if batched(n.shape) else ()
        return np.asarray(x)[lead + tuple(attr)]
    if op is Op.PACK:
        is_batched, _, indices = attr
        out = np.zeros(_concrete(n.shape, B))
        lead = (slice(None),) if is_batched else ()
        for piece, idx in zip(args, indices):
            out[lead + tuple(idx)] += piece  # pieces may overlap (a row and its elements): they add
        return out
    if op is Op.SUM:
        return np.sum(args[0], axis=tuple(attr))
    if op is Op.EXPAND:
        return np.expand_dims(args[0], tuple(attr))
    if op is Op.BCAST:
        return np.broadcast_to(args[0], _concrete(attr, B)).copy()
    return OPS[op].array(*args, attr)


def node_values(graph: Graph, args) -> list:
    """The value of every node of `graph` at `args` (one float or array per input).

    An op that raises re-raises its own exception with `.node` set to the node
    and `.values` to the values computed before it.
    """
    if len(args) != len(graph.inputs):
        raise TypeError(f"{graph.name} takes {len(graph.inputs)} inputs, got {len(args)}")
    vals: list = [None] * len(graph.nodes)
    B = None
    for i, a in zip(graph.inputs, args):
        vals[i] = np.asarray(a, dtype=np.float64) if graph.nodes[i].shape else float(a)
        if B is None and batched(graph.nodes[i].shape):
            B = np.shape(a)[0]
    for n in graph.nodes:
        if n.op is Op.INPUT:
            continue
        if n.op is Op.CONST:
            vals[n.id] = n.attr
            continue
        try:
            if n.op is Op.BATCH:
                vals[n.id] = B
                continue
            info = OPS[n.op]
            if info.evaluate is not None and not n.shape and not any(graph.nodes[a].shape for a in n.args):
                vals[n.id] = info.evaluate(*(vals[a] for a in n.args), n.attr)
            else:
                v = _array(n, [vals[a] for a in n.args], B)
                vals[n.id] = v if n.shape else float(v)  # np.sum(..., axis=()) etc. give 0-d arrays
        except Exception as e:
            e.node, e.values = n, vals  # values computed so far, for error reports
            raise
    return vals


def evaluate(graph: Graph, args) -> dict:
    """Outputs of `graph` at `args` (one float or array per input), keyed by role."""
    vals = node_values(graph, args)
    return {str(role): vals[i] for role, i in graph.outputs}
