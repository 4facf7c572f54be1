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
    nodes = graph.nodes
    # old id -> new id; None while every node so far kept its id (`out` then lags behind: the
    # nodes passed over are appended as one slice when a node needs the builder, or at the end)
    new: list[int] | None = None
    # arguments -> the first node over them (an id), or {(op, repr(attr)): id} once two nodes over the
    # same arguments differ in op or attribute: keyed by the argument tuple the node already holds,
    # so a node with no twin costs no key of its own (and no repr)
    seen: dict[tuple, int | dict] = {}
    setdefault = seen.setdefault
    for n in nodes:
        if new is None:
            # the read-only sweep's usual node, inlined: a node with no earlier node over its
            # arguments (one `setdefault` both asks and records) is passed over as itself
            op = n.op
            adj = n.adj
            if adj is None or adj < n.id:
                if op is not INPUT and op is not COPY and op is not CONST:
                    args = n.args
                    if (op is ADD or op is MUL) and args[0] > args[1]:
                        key = (args[1], args[0])
                    else:
                        key = args
                    nid = n.id
                    if setdefault(key, nid) == nid:
                        continue
                elif op is not CONST:
                    continue  # an input or a copy: never merged
            if len(out) < n.id:
                out.extend(nodes[len(out) : n.id])
            args = n.args
            if adj is not None and adj >= n.id:
                adj = None  # an adjoint of a later node: dropped, as a renumbering drops it
        else:
            args = tuple([new[a] for a in n.args])
            adj = new[n.adj] if n.adj is not None and n.adj < len(new) else None
            n = remap_terms(n, new)
        op = n.op
        key = None
        nid = None
        if op is not INPUT and op is not COPY and op is not CONST:
            if (op is ADD or op is MUL) and args[0] > args[1]:
                key = (args[1], args[0])  # add and mul commute exactly
            else:
                key = args
            hit = seen.get(key)
            if hit is not None:
                twin = _twin(seen, key, hit, out, n)
                if twin is not None:
                    nid = alias(b, twin, n, adj)
                    key = None  # merged: nothing to record
        if nid is None:
            if new is None and op is not CONST:
                out.append(n)  # what copy_node does for a node that keeps its id and arguments
                nid = n.id
            else:
                nid = b.copy_node(n, args, adj)
            if key is not None:
                hit = seen.get(key)
                if hit is None:
                    seen[key] = nid
                else:  # a second node over these arguments: keep both, by (op, attribute)
                    if type(hit) is int:
                        hit = seen[key] = {_kind(out[hit]): hit}
                    hit.setdefault(_kind(n), nid)
        if new is not None:
            new.append(nid)
        elif nid != n.id:
            new = list(range(n.id))  # the nodes before this one kept their ids
            new.append(nid)
    if new is None:
        out.extend(nodes[len(out) :])
        if b.unchanged(graph):
            return graph  # nothing changed: the same graph (optimize stops at a fixed point)
        new = range(len(nodes))
    return b.build([new[i] for i in graph.inputs], [(r, new[i]) for r, i in graph.outputs])


def _kind(n) -> tuple:
    """What besides its arguments makes two nodes the same value: op and attribute (by repr,
    so 0.0 and -0.0 differ and all NaNs agree)."""
    return (n.op, None) if n.attr is None else (n.op, repr(n.attr))


def _twin(seen: dict, key: tuple, hit, out: list, n):
    """The earlier node computing what `n` computes (same op, arguments, attribute), or None."""
    if type(hit) is int:
        m = out[hit]
        if m.op is n.op and (m.attr is None if n.attr is None else (m.attr is not None and repr(m.attr) == repr(n.attr))):
            return hit
        return None
    return hit.get(_kind(n))
