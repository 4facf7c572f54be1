"""Common-subexpression elimination by hash-consing.

Two nodes with the same op, the same arguments (in either order for `add`
and `mul`, which commute exactly) and the same attribute compute the same
float, so the later one is replaced by the earlier.  Not merged: inputs,
`copy` nodes (each names a different adjoint) and constants that carry a
name.  The survivor takes over the metadata of the node it absorbs if it
has none of its own.
"""

from __future__ import annotations

from gradgen.ir.graph import Builder, Graph
from gradgen.ir.ops import Op
from gradgen.passes.fold import alias, remap_terms

_COMMUTATIVE = (Op.ADD, Op.MUL)


def cse(graph: Graph) -> Graph:
    b = Builder(graph.name)
    new: dict[int, int] = {}
    seen: dict[tuple, int] = {}
    for n in graph.nodes:
        args = [new[a] for a in n.args]
        adj = new.get(n.adj) if n.adj is not None else None
        n = remap_terms(n, new)
        key = None
        if n.op not in (Op.INPUT, Op.COPY, Op.CONST):
            key_args = tuple(sorted(args)) if n.op in _COMMUTATIVE else tuple(args)
            key = (n.op, key_args, repr(n.attr))
        if key is not None and key in seen:
            new[n.id] = alias(b, seen[key], n, adj)
            continue
        new[n.id] = b.copy_node(n, args, adj)
        if key is not None:
            seen[key] = new[n.id]
    if b.unchanged(graph):
        return graph  # nothing changed: the same graph (optimize stops at a fixed point)
    return b.build([new[i] for i in graph.inputs], [(r, new[i]) for r, i in graph.outputs])
