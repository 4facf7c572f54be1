"""Evaluate an IR graph on floats: the IR's executable semantics."""

from __future__ import annotations

from gradgen.ir.graph import Graph
from gradgen.ir.ops import OPS, Op


def node_values(graph: Graph, args) -> list:
    """The value of every node of `graph` at `args` (one float per input).

    An op that raises re-raises its own exception with `.node` set to the node
    and `.values` to the values computed before it.
    """
    if len(args) != len(graph.inputs):
        raise TypeError(f"{graph.name} takes {len(graph.inputs)} inputs, got {len(args)}")
    vals: list = [None] * len(graph.nodes)
    for i, a in zip(graph.inputs, args):
        vals[i] = a
    for n in graph.nodes:
        if n.op is Op.INPUT:
            continue
        if n.op is Op.CONST:
            vals[n.id] = n.attr
            continue
        try:
            vals[n.id] = OPS[n.op].evaluate(*(vals[a] for a in n.args), n.attr)
        except Exception as e:
            e.node, e.values = n, vals  # values computed so far, for error reports
            raise
    return vals


def evaluate(graph: Graph, args) -> dict[str, float]:
    """Outputs of `graph` at `args` (one float per input), keyed by role."""
    vals = node_values(graph, args)
    return {role: vals[i] for role, i in graph.outputs}
