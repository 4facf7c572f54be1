"""Is a graph already at the passes' fixed point?  One sweep instead of three.

`at_fixed_point(graph)` is True only when fold, cse and dce would each return
`graph` itself: it runs, fused into one loop over the nodes, the read-only path
each pass takes while nothing has moved --

* fold: a node is quiet (its op has no rule of its own and no argument is a
  constant or a negation -- for sub, its second -- and it is not `x + x`), or
  `fold._simplify` leaves it alone (asked of the few others, on the graph's
  own nodes);
* cse: no earlier node over the same arguments computes the same value
  (`cse._twin`: same op and attribute; add and mul in either order);
* both: a plain constant is a float, a scalar, and the first of its value;
  no adjoint names a later node;
* dce: every node is an input or feeds an output (`dce.live`).

`optimize` asks it before each round, so a graph that is built at the fixed
point -- the chain's gradient, as reverse mode makes it -- costs one sweep, not
three.  False claims nothing: the passes run as usual (a graph that changes
pays one sweep, which stops at the first node a pass would touch).
"""

from __future__ import annotations

from gradgen.ir.graph import Builder, Graph, _has_meta
from gradgen.passes.cse import _kind, _twin
from gradgen.passes.dce import live
from gradgen.passes.fold import _QUIET, _simplify, _Zeros
from gradgen.ir.ops import Op

INPUT, COPY, CONST, ADD, SUB, MUL, NEG = Op.INPUT, Op.COPY, Op.CONST, Op.ADD, Op.SUB, Op.MUL, Op.NEG  # (fast)


def at_fixed_point(graph: Graph) -> bool:
    nodes = graph.nodes
    quiet = _QUIET
    loud: set[int] = set()  # the constants and negations so far (fold's quiet test)
    consts: set[str] = set()  # the plain constants so far, by repr
    seen: dict = {}  # cse's table: argument tuple -> id (or {(op, repr(attr)): id})
    setdefault = seen.setdefault
    scratch = None  # a builder over the graph's own nodes, for fold._simplify (made when needed)
    zeros = None
    # the loop is the three passes' usual path, inlined (it is the whole cost of a graph at the
    # fixed point: a few tests and one setdefault a node)
    for n in nodes:
        nid = n.id
        adj = n.adj
        if adj is not None and adj >= nid:
            return False  # an adjoint of a later node: the passes drop it
        op = n.op
        if op is CONST:
            if not _has_meta(n):
                attr = n.attr
                if type(attr) is not float or n.shape != ():
                    return False  # made a scalar float constant
                key = repr(attr)
                if key in consts:
                    return False  # shared with the earlier constant of that value
                consts.add(key)
            loud.add(nid)
            continue
        args = n.args
        # fold
        if (
            op not in quiet
            or not (args[1] not in loud if op is SUB else loud.isdisjoint(args))
            or (op is ADD and args[0] == args[1])
        ):  # (fold's quiet test)
            if scratch is None:
                scratch = Builder(graph.name)
                scratch.nodes = list(nodes)  # read below n only; a rewrite found may append
                zeros = _Zeros(scratch)
            if _simplify(scratch, n, args, zeros) is not None:
                return False
        if op is NEG:
            loud.add(nid)
        # cse
        if op is INPUT or op is COPY:
            continue
        key = (args[1], args[0]) if (op is ADD or op is MUL) and args[0] > args[1] else args
        hit = setdefault(key, nid)
        if hit != nid:  # an earlier node over these arguments
            if _twin(seen, key, hit, nodes, n) is not None:
                return False
            if type(hit) is int:  # kept apart by op or attribute, as cse records them
                hit = seen[key] = {_kind(nodes[hit]): hit}
            hit.setdefault(_kind(n), nid)
    return all(live(graph))
