"""Constant folding and exact algebraic simplification.

Rewrites, each exact in IEEE arithmetic (so compiled code still matches the
engine), except where noted:

* an op whose arguments are all constants becomes a constant (unless
  evaluating it raises: then the program raises at run time, as the engine does);
* `x * 1 -> x`, `x ** 1 -> x`, `x - 0 -> x`, `x + 0 -> x` (the last may turn
  -0.0 into 0.0, a difference only visible through the sign of a zero);
* `x + x -> 2.0 * x`, `2**j * (c * y) -> (2**j * c) * y` (exact barring
  overflow: scaling by a power of two only moves the exponent);
* `x * -1 -> -x`, `-(-x) -> x`, `a + (-b) -> a - b`, `(-a) + b -> b - a`,
  `a - (-b) -> a + b` (only where the inner `-` has no name of its own, so
  no named line disappears);
* arrays: `transpose(transpose(x)) -> x` and
  `transpose(a @ b) -> b.T @ a.T` (both 2-D), so a weight gradient reads
  `g_z.T @ x` rather than `(x.T @ g_z).T`; the shape never changes.

A node replaced by an existing anonymous node hands its metadata (name,
adjoint, rule) over, so `g_n = 1.0 * t` becomes `g_n = t` rather than losing
the name `g_n`.
"""

from __future__ import annotations

from gradgen.ir.graph import Builder, Graph, Node
from gradgen.ir.ops import OPS, Op, evaluate


def _const(b: Builder, i: int, value: float) -> bool:
    n = b.nodes[i]
    return n.op is Op.CONST and n.attr == value


def _simplify(b: Builder, n: Node, args: list[int]):
    """('alias', id) | ('new', op, args, attr) | None."""
    nodes = b.nodes
    op = n.op
    if op is Op.COPY and nodes[args[0]].op is Op.CONST:
        return ("const", nodes[args[0]].attr)  # a named copy of a constant is that constant
    if op in (Op.INPUT, Op.CONST, Op.COPY):
        return None
    if op is Op.TRANSPOSE:
        x = nodes[args[0]]
        if x.op is Op.TRANSPOSE:
            return ("alias", x.args[0])
        if x.op is Op.MATMUL and all(len(nodes[a].shape) == 2 for a in x.args):
            # (a @ b).T -> b.T @ a.T: the new product takes this node's place (and
            # metadata); DCE drops the old one when nothing else reads it
            t_b, t_a = _transposed(b, x.args[1], n), _transposed(b, x.args[0], n)
            rule = "matmul: d(x @ W.T)/dW = g.T @ x" if n.rule else None
            return ("new", Op.MATMUL, [t_b, t_a], None, rule)
        return None
    if OPS[op].evaluate is not None and args and all(nodes[a].op is Op.CONST for a in args):
        try:
            value = evaluate(op, [nodes[a].attr for a in args], n.attr)
        except (ArithmeticError, ValueError):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return ("const", float(value))
        return None
    if op is Op.MUL:
        a, c = args
        if _const(b, c, 1.0):
            return ("alias", a)
        if _const(b, a, 1.0):
            return ("alias", c)
        if _const(b, c, -1.0):
            return ("new", Op.NEG, [a], None)
        if _const(b, a, -1.0):
            return ("new", Op.NEG, [c], None)
        k, x = (a, c) if nodes[a].op is Op.CONST else (c, a)
        inner_ = nodes[x]
        if nodes[k].op is Op.CONST and _power_of_two(nodes[k].attr) and inner_.op is Op.MUL and anonymous(inner_):
            # 2**j * (c * y) == (2**j * c) * y exactly: scaling by a power of two only moves the exponent
            for p, q in (inner_.args, inner_.args[::-1]):
                if nodes[p].op is Op.CONST:
                    return ("new", Op.MUL, [b.const(nodes[k].attr * nodes[p].attr), q], None)
    elif op is Op.POW and n.attr == 1:
        return ("alias", args[0])
    elif op is Op.ADD:
        a, c = args
        if a == c:  # x + x == 2.0 * x exactly
            return ("new", Op.MUL, [b.const(2.0), a], None)
        if _const(b, c, 0.0):
            return ("alias", a)
        if _const(b, a, 0.0):
            return ("alias", c)
        if nodes[c].op is Op.NEG and anonymous(nodes[c]):
            return ("new", Op.SUB, [a, nodes[c].args[0]], None)
        if nodes[a].op is Op.NEG and anonymous(nodes[a]):
            return ("new", Op.SUB, [c, nodes[a].args[0]], None)
    elif op is Op.SUB:
        a, c = args
        if _const(b, c, 0.0):
            return ("alias", a)
        if nodes[c].op is Op.NEG and anonymous(nodes[c]):
            return ("new", Op.ADD, [a, nodes[c].args[0]], None)
    elif op is Op.NEG and nodes[args[0]].op is Op.NEG and anonymous(nodes[args[0]]):
        return ("alias", nodes[args[0]].args[0])
    return None


def _transposed(b: Builder, i: int, like: Node) -> int:
    n = b.nodes[i]
    if n.op is Op.TRANSPOSE:
        return n.args[0]
    return b.add(Op.TRANSPOSE, [i], loc=like.loc, rule=like.rule, step=like.step)


def _power_of_two(v) -> bool:
    import math

    if not isinstance(v, float) or not math.isfinite(v) or v == 0.0:
        return False
    m, _ = math.frexp(abs(v))
    return m == 0.5


def anonymous(node: Node) -> bool:
    """A node that no name depends on: safe to take over another node's metadata."""
    return node.op is not Op.INPUT and node.name is None and node.adj is None


def alias(b: Builder, target: int, n: Node, adj: int | None) -> int:
    """Make `target` stand for `n`; move `n`'s naming metadata onto it if it has none."""
    t = b.nodes[target]
    if n.adj is None and n.name is None:
        return target
    if n.rule is not None and t.rule is None and t.op is not Op.CONST:
        # a gradient equal to a forward value: name it with a copy rather
        # than turning the forward value into a backward line
        return b.add(Op.COPY, (target,), name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step)
    if t.op is Op.CONST and anonymous(t):
        return b.add(Op.CONST, (), t.attr, name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step)
    if anonymous(t):
        b.set_meta(target, name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step)
    return target


def fold(graph: Graph) -> Graph:
    b = Builder(graph.name)
    new: dict[int, int] = {}
    for n in graph.nodes:
        args = [new[a] for a in n.args]
        adj = new.get(n.adj) if n.adj is not None else None
        r = _simplify(b, n, args)
        if r is None:
            new[n.id] = b.copy_node(n, args, adj)
        elif r[0] == "alias":
            new[n.id] = alias(b, r[1], n, adj)
        elif r[0] == "const":
            plain = n.adj is None and n.name is None
            meta = {} if plain else dict(name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step)
            new[n.id] = b.const(r[1], **meta)
        else:
            _, op, nargs, attr, *rule = r
            meta = dict(name=n.name, loc=n.loc, adj=adj, rule=rule[0] if rule else n.rule, step=n.step)
            new[n.id] = b.add(op, nargs, attr, **meta)
    return b.build([new[i] for i in graph.inputs], [(r, new[i]) for r, i in graph.outputs])
