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

INPUT, COPY, CONST, ADD, MUL = Op.INPUT, Op.COPY, Op.CONST, Op.ADD, Op.MUL  # module constants (fast)


def cse(graph: Graph) -> Graph:
    b = Builder(graph.name)
    out = b.nodes
    new: list[int] = []  # old id -> new id
    seen: dict[tuple, int] = {}
    same = True  # every node so far kept its id: no renumbering needed
    for n in graph.nodes:
        if same:
            args = n.args
            adj = n.adj
            if adj is not None and adj >= n.id:
                adj = None  # an adjoint of a later node: dropped, as a renumbering drops it
        else:
            args = tuple([new[a] for a in n.args])
            adj = new[n.adj] if n.adj is not None and n.adj < len(new) else None
            n = remap_terms(n, new)
        op = n.op
        key = None
        if op is not INPUT and op is not COPY and op is not CONST:
            if (op is ADD or op is MUL) and args[0] > args[1]:
                key_args = (args[1], args[0])  # add and mul commute exactly
            else:
                key_args = args
            attr = n.attr
            key = (op, key_args) if attr is None else (op, key_args, repr(attr))
            hit = seen.get(key)
            if hit is not None:
                nid = alias(b, hit, n, adj)
                new.append(nid)
                same = same and nid == n.id
                continue
        if same and op is not CONST and len(out) == n.id:
            out.append(n)  # what copy_node does for a node that keeps its id and arguments
            nid = n.id
        else:
            nid = b.copy_node(n, args, adj)
            same = same and nid == n.id
        new.append(nid)
        if key is not None:
            seen[key] = nid
    if b.unchanged(graph):
        return graph  # nothing changed: the same graph (optimize stops at a fixed point)
    return b.build([new[i] for i in graph.inputs], [(r, new[i]) for r, i in graph.outputs])
