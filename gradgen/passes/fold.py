"""Constant folding and exact algebraic simplification.

Contract: a rewrite never changes a value, bit for bit (every NaN counts as
equal to every NaN, the sign of a zero counts), and the gradient reverse
mode later derives from a rewritten forward node equals the engine's
gradient of the original, operation for operation.  The one exception is
marked (*) below: it needs an intermediate of the original to underflow.
Each rule, with the one-line argument for it:

* an op whose arguments are all constants becomes its value, computed by
  the same Python float operation the engine runs (`gradgen.ir.ops`); where
  that raises (`math.exp(1000)`, `math.log(0)`, `0.0 ** -1`) or gives no
  float (`(-8.0) ** 0.5` is complex) the op is kept, so the program raises
  (or computes) at run time as the engine does;
* `x * 1 -> x`, `1 * x -> x` (IEEE multiplication by 1 is exact, also for
  inf, nan and -0.0); `x ** 1 -> x` (Python's `x ** 1` is `x`);
* `x - 0.0 -> x` (`-0.0 - 0.0` is `-0.0`), `x + -0.0 -> x` and
  `-0.0 + x -> x` (adding -0.0 is exact);
* `x + 0.0 -> x`, `0.0 + x -> x` and `x - (-0.0) -> x` only where `x` can
  never be -0.0 (`-0.0 + 0.0` is `0.0`): a constant other than -0.0, `y * y`,
  `y ** k` for k not an odd integer, `exp`, `log`, `sigmoid`, `step`, an add
  with such an argument, and relu/tanh of such a value (both keep -0.0 only
  for -0.0).  So `sum(p * p for ...)`'s leading `0 +` goes, a general
  `0 + y` stays;
* `x + x -> 2.0 * x` (both round the exact 2x once; overflow alike); the
  engine's gradient `g + g` is `2.0 * g` too;
* `x * -1 -> -x`, `-(-x) -> x`, `a + (-b) -> a - b`, `(-a) + b -> b - a`,
  `a - (-b) -> a + b` (IEEE defines a - b as a + (-b); negation is exact),
  only where the inner `-` has no name of its own, so no named line
  disappears;
* (*) in the backward pass only, `k * (c * y) -> (k * c) * y` for `k` a power
  of two with `|k| >= 1` and `k * c` finite (so exact): `k * round(c*y)` and
  `round(k*c*y)` are equal unless `c * y` underflows (is subnormal or zero
  while c*y != 0), where the folded one is the better rounded; an overflow
  of either side overflows the other (|k| >= 1), and inf, nan and signed
  zeros agree.  This is what makes the L2 term's gradient
  `2.0 * (alpha * p)` one `(2 * alpha) * p`.  Not in the forward pass: the
  gradient of the folded node would be `(k*c) * g` where the engine computes
  `c * (k * g)`, which overflows differently, and with |k| < 1
  (`(x * 3) * 0.5` at 1e308) or an inexact k * c (`5e-324 * 0.5`) the
  value itself would change;
* arrays: `transpose(transpose(x)) -> x`, `x[None].T -> x[:, None]` (x 1-D), and
  `transpose(a @ b) -> b.T @ a.T` (both 2-D), so a weight gradient reads
  `g_z.T @ x` rather than `(x.T @ g_z).T`; the shape never changes (the
  same products, summed by BLAS in its own order: array code is exact only
  to rounding anyway); `a @ c` with a (n, 1) and c (1, m) (the gradient of a
  one-output layer's input, `g_z2 @ W2`) -> `a * c`: each element is the one
  product, as BLAS computes it with nothing to sum, and broadcasting is faster.

Not folded, because they are not exact: `x * 0` (nan for inf, -0.0 for
x < 0), `0 - x -> -x` (0.0 vs -0.0 at x = 0), `x / c -> x * (1/c)`, and any
reassociation.

A node replaced by an existing anonymous node hands its metadata (name,
adjoint, rule) over, so `g_n = 1.0 * t` becomes `g_n = t` rather than losing
the name `g_n`.
"""

from __future__ import annotations

import math

from gradgen.ir.graph import Builder, Graph, Node, _replace
from gradgen.ir.ops import OPS, Op, evaluate
from gradgen.ir.shapes import batched


WEIGHT_GRAD = "matmul: d({a} @ {b}.T)/d{b} = g.T @ {a}"

# module constants: an enum member's attribute lookup (`Op.MUL`) costs ~0.15 us, and a pass
# makes a dozen of them per node
INPUT, CONST, COPY, TRANSPOSE, EXPAND, MATMUL = Op.INPUT, Op.CONST, Op.COPY, Op.TRANSPOSE, Op.EXPAND, Op.MATMUL
MUL, ADD, SUB, NEG, POW = Op.MUL, Op.ADD, Op.SUB, Op.NEG, Op.POW
_EVALUABLE = frozenset(o for o in Op if OPS[o].evaluate is not None)


def _const(b: Builder, i: int, value: float) -> bool:
    """Node i is the constant `value`; a zero's sign counts (0.0 and -0.0 differ)."""
    n = b.nodes[i]
    if n.op is not CONST or n.attr != value:
        return False
    return value != 0.0 or math.copysign(1.0, n.attr) == math.copysign(1.0, value)


class _Zeros:
    """Which nodes of a builder can never be -0.0 (computed once per node, in id order)."""

    _ALWAYS = frozenset((Op.EXP, Op.LOG, Op.SIGMOID, Op.STEP))
    _PASS = frozenset((Op.RELU, Op.TANH, Op.COPY))

    def __init__(self, b: Builder):
        self.b = b
        self.flags: list[bool] = []

    def never_negative_zero(self, i: int) -> bool:
        nodes, flags = self.b.nodes, self.flags
        always, passes = self._ALWAYS, self._PASS
        while len(flags) <= i:
            n = nodes[len(flags)]
            op, args = n.op, n.args
            if op is CONST:
                v = n.attr
                ok = isinstance(v, (int, float)) and not (v == 0.0 and math.copysign(1.0, v) < 0)
            elif op is MUL:
                ok = args[0] == args[1]  # y * y is +0.0, positive, inf or nan
            elif op is POW:
                k = n.attr
                ok = not (isinstance(k, (int, float)) and float(k).is_integer() and int(k) % 2 == 1)
            elif op in always:
                ok = True
            elif op is ADD:
                ok = flags[args[0]] or flags[args[1]]  # a sum is -0.0 only for -0.0 + -0.0
            elif op in passes:
                ok = flags[args[0]]
            else:
                ok = False
            flags.append(ok)
        return flags[i]


def _simplify(b: Builder, n: Node, args, zeros: _Zeros):
    """('alias', id) | ('const', value) | ('new', op, args, attr[, rule]) | None."""
    nodes = b.nodes
    op = n.op
    if op is COPY:
        if nodes[args[0]].op is CONST:
            return ("const", nodes[args[0]].attr)  # a named copy of a constant is that constant
        return None
    if op is INPUT or op is CONST:
        return None
    if op is TRANSPOSE:
        return _transpose_rule(b, n, args)
    if args and op in _EVALUABLE:
        for a in args:
            if nodes[a].op is not CONST:
                break
        else:
            try:
                value = evaluate(op, [nodes[a].attr for a in args], n.attr)
            except (ArithmeticError, ValueError):
                return None  # kept: it raises at run time, as in the engine
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return ("const", float(value))
            return None
    rule = _ALGEBRA.get(op)
    return rule(b, n, args, zeros) if rule is not None else None


def _transpose_rule(b: Builder, n: Node, args):
    nodes = b.nodes
    x = nodes[args[0]]
    if x.op is TRANSPOSE:
        return ("alias", x.args[0])
    if x.op is EXPAND and x.attr == (0,) and len(nodes[x.args[0]].shape) == 1 and not batched(x.shape):
        return ("new", EXPAND, [x.args[0]], (1,))  # g[None].T is g[:, None]: a row as a column
    if x.op is MATMUL and all(len(nodes[a].shape) == 2 for a in x.args):
        # (a @ b).T -> b.T @ a.T: the new product takes this node's place (and
        # metadata); DCE drops the old one when nothing else reads it
        if n.rule is None:
            rule, terms = None, ()
        elif len(n.terms) == 2 and len(x.terms) == 3:
            # the weight gradient of z = x @ W.T: terms (x, W, z)
            rule, terms = WEIGHT_GRAD, (x.terms[0], n.terms[0], x.terms[2])
        else:
            rule, terms = "matmul: d(x @ W.T)/dW = g.T @ x", ()
        meta = dict(loc=n.loc, rule=rule, step=n.step, second=n.second, terms=terms)
        t_b, t_a = _transposed(b, x.args[1], meta), _transposed(b, x.args[0], meta)
        return ("new", MATMUL, [t_b, t_a], None, (rule, terms))
    return None


def _matmul_rule(b: Builder, n: Node, args, zeros):
    nodes = b.nodes
    sa, sc = nodes[args[0]].shape, nodes[args[1]].shape
    if len(sa) == 2 and len(sc) == 2 and sa[1] == 1 and sc[0] == 1:
        return ("new", MUL, list(args), None)  # an outer product: one product per element
    return None


def _mul_rule(b: Builder, n: Node, args, zeros):
    nodes = b.nodes
    a, c = args
    na, nc = nodes[a], nodes[c]
    if na.op is not CONST and nc.op is not CONST:
        return None  # every rule below needs a constant factor
    if _const(b, c, 1.0):
        return ("alias", a)
    if _const(b, a, 1.0):
        return ("alias", c)
    if _const(b, c, -1.0):
        return ("new", NEG, [a], None)
    if _const(b, a, -1.0):
        return ("new", NEG, [c], None)
    k, x = (a, c) if na.op is CONST else (c, a)
    inner = nodes[x]
    if n.rule is not None and nodes[k].op is CONST and inner.op is MUL and anonymous(inner):
        for p, q in (inner.args, inner.args[::-1]):
            if nodes[p].op is CONST:
                kc = _exact_scaling(nodes[k].attr, nodes[p].attr)
                if kc is not None:
                    return ("new", MUL, [b.const(kc), q], None)
                break
    return None


def _pow_rule(b: Builder, n: Node, args, zeros):
    return ("alias", args[0]) if n.attr == 1 else None


def _add_rule(b: Builder, n: Node, args, zeros):
    nodes = b.nodes
    a, c = args
    if a == c:  # x + x == 2.0 * x exactly
        return ("new", MUL, [b.const(2.0), a], None)
    na, nc = nodes[a], nodes[c]
    if na.op is not CONST and nc.op is not CONST and na.op is not NEG and nc.op is not NEG:
        return None
    for x, zero in ((a, c), (c, a)):
        if _const(b, zero, -0.0) or (_const(b, zero, 0.0) and zeros.never_negative_zero(x)):
            return ("alias", x)
    if nc.op is NEG and anonymous(nc):
        return ("new", SUB, [a, nc.args[0]], None)
    if na.op is NEG and anonymous(na):
        return ("new", SUB, [c, na.args[0]], None)
    return None


def _sub_rule(b: Builder, n: Node, args, zeros):
    nodes = b.nodes
    a, c = args
    nc = nodes[c]
    if nc.op is CONST:
        if _const(b, c, 0.0) or (_const(b, c, -0.0) and zeros.never_negative_zero(a)):
            return ("alias", a)
    elif nc.op is NEG and anonymous(nc):
        return ("new", ADD, [a, nc.args[0]], None)
    return None


def _neg_rule(b: Builder, n: Node, args, zeros):
    x = b.nodes[args[0]]
    if x.op is NEG and anonymous(x):
        return ("alias", x.args[0])
    return None


# the algebraic rules, by op (constant folding and copy/transpose are handled before)
_ALGEBRA = {MATMUL: _matmul_rule, MUL: _mul_rule, POW: _pow_rule, ADD: _add_rule, SUB: _sub_rule, NEG: _neg_rule}


def _exact_scaling(k, c):
    """k * c when `k * (c * y) -> (k * c) * y` keeps every value (see the docstring), else None."""
    if not isinstance(k, float) or not isinstance(c, float) or not math.isfinite(k) or abs(k) < 1.0:
        return None
    if math.frexp(abs(k))[0] != 0.5:
        return None  # not a power of two
    kc = k * c
    return kc if math.isfinite(kc) else None  # |k| >= 1: finite means exact


def _transposed(b: Builder, i: int, meta: dict) -> int:
    n = b.nodes[i]
    if n.op is TRANSPOSE:
        return n.args[0]
    return b.add(TRANSPOSE, [i], **meta)


def anonymous(node: Node) -> bool:
    """A node that no name depends on: safe to take over another node's metadata."""
    return node.op is not INPUT and node.name is None and node.adj is None


def alias(b: Builder, target: int, n: Node, adj: int | None) -> int:
    """Make `target` stand for `n`; move `n`'s naming metadata onto it if it has none."""
    t = b.nodes[target]
    if n.adj is None and n.name is None:
        return target
    if n.rule is not None and t.rule is None and t.op is not CONST:
        # a gradient equal to a forward value: name it with a copy rather
        # than turning the forward value into a backward line
        meta = dict(name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step, second=n.second, terms=n.terms)
        return b.add(COPY, (target,), **meta)
    meta = dict(name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step, second=n.second, terms=n.terms)
    if t.op is CONST and anonymous(t):
        return b.add(CONST, (), t.attr, **meta)
    if anonymous(t):
        if max((*n.terms, adj if adj is not None else -1), default=-1) >= target:
            # its comment or adjoint names later nodes (a second-order rule folding onto an earlier
            # value): a copy keeps ids ordered
            return b.add(COPY, (target,), **meta)
        b.set_meta(target, **meta)
    return target


def remap_terms(n: Node, new) -> Node:
    """`n` with its comment terms (forward node ids) renumbered as the pass renumbered them
    (`new`: old id -> new id, a list or a dict)."""
    if not n.terms:
        return n
    terms = tuple([new[t] for t in n.terms])
    return n if terms == n.terms else _replace(n, {"terms": terms})


# ops no rule rewrites unless an argument is a constant or a negation (for sub: its second
# argument, as `_sub_rule` reads only that one; for add: or both arguments are one node):
# the quiet test of `fold`'s read-only sweep.  Not here: constants
# (shared by value, `Builder.copy_node`) and the ops with rules of their own
# (transpose, matmul, pow) -- see `_simplify`, which this must never contradict.
_QUIET = frozenset(Op) - {CONST, TRANSPOSE, MATMUL, POW}


def fold(graph: Graph) -> Graph:
    b = Builder(graph.name)
    out = b.nodes
    nodes = graph.nodes
    zeros = _Zeros(b)
    # old id -> new id; None while every node so far kept its id (`out` then lags behind: the
    # nodes passed over are appended as one slice when a node needs the builder, or at the end)
    new: list[int] | None = None
    # while new is None: the ids of the constants and negations so far.  A quiet node (op in
    # _QUIET, none of its arguments in `loud`, not `x + x`, no adjoint of a later node) is one
    # `_simplify` leaves alone, so it is passed over as itself without the call: the usual
    # node of a graph at the fixed point costs a few tests (inlined for that reason).
    loud: set[int] = set()
    quiet = _QUIET
    for n in nodes:
        if new is None:
            op = n.op
            if op in quiet:
                args = n.args
                if (args[1] not in loud if op is SUB else loud.isdisjoint(args)) and (op is not ADD or args[0] != args[1]):
                    adj = n.adj
                    if adj is None or adj < n.id:
                        if op is NEG:
                            loud.add(n.id)
                        continue
            if len(out) < n.id:
                out.extend(nodes[len(out) : n.id])
            args = n.args
            adj = n.adj
            if adj is not None and adj >= n.id:
                adj = None  # an adjoint of a later node: dropped, as a renumbering drops it
        else:
            args = tuple([new[a] for a in n.args])
            adj = new[n.adj] if n.adj is not None and n.adj < len(new) else None
            n = remap_terms(n, new)
        r = _simplify(b, n, args, zeros)
        if r is None:
            if new is None and n.op is not CONST:
                out.append(n)  # what copy_node does for a node that keeps its id and arguments
                if n.op is NEG:
                    loud.add(n.id)
                continue
            nid = b.copy_node(n, args, adj)
        elif r[0] == "alias":
            nid = alias(b, r[1], n, adj)
        elif r[0] == "const":
            plain = n.adj is None and n.name is None
            meta = {} if plain else dict(name=n.name, loc=n.loc, adj=adj, rule=n.rule, step=n.step, second=n.second, terms=n.terms)
            nid = b.const(r[1], **meta)
        else:
            _, op, nargs, attr, *rule = r
            rule, terms = rule[0] if rule else (n.rule, n.terms)
            meta = dict(name=n.name, loc=n.loc, adj=adj, rule=rule, step=n.step, second=n.second, terms=terms)
            nid = b.add(op, nargs, attr, **meta)
        if new is not None:
            new.append(nid)
        elif nid != n.id:
            new = list(range(n.id))  # the nodes before this one kept their ids
            new.append(nid)
        elif out[nid].op is CONST or out[nid].op is NEG:
            loud.add(nid)
    if new is None:
        out.extend(nodes[len(out) :])
        if b.unchanged(graph):
            return graph  # nothing changed: the same graph (optimize stops at a fixed point)
        new = range(len(nodes))
    return b.build([new[i] for i in graph.inputs], [(r, new[i]) for r, i in graph.outputs])
