"""Grading a learner's Value class op by op: each node's forward and `_backward`, alone.

Contract.  `grade_graph(out, cls, p, g)` walks the user's graph from `out`
(iteratively, each node once).  For each node with an `_op`
(`frontend.engines.parse_op`) it checks the forward (`ir.ops.evaluate` on
the children's `.data`) and then the node's `_backward` alone: the node's
grad is set to a seed, each child's to a prior grad, the closure is called,
and each child's change is compared with the seed times the op's local
derivative (`LOCAL`); twice (`TRIALS`).  Every comparison goes into
`g.row`; a mismatch is one verdict per op (`g.verdicts`), naming the op and
where its `_backward` is defined (`file:line`), with the classic bugs told
apart: `=` instead of `+=` (the prior grad is lost), a missing `_backward`
(the leaf's `lambda: None`), a backward that ignores `out.grad`.  Grads are
restored after each node.  At most `NODES_PER_OP` nodes per op are graded
per point.  Verdicts do not depend on the order a set of children iterates in.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from dataclasses import dataclass, field

from gradgen.frontend.engines import parse_op
from gradgen.autodiff.reverse import grad
from gradgen.ir.graph import VALUE, Builder, Graph, Origin
from gradgen.ir.interp import evaluate as evaluate_graph
from gradgen.ir.ops import OPS, Op, evaluate
from gradgen.tools.check.report import Row, short_error

# (the node's grad, each child's grad) while a node's _backward runs alone: twice, so that no local
# derivative makes two bugs look alike; never (1, 0), so a missing `* out.grad` and `=` show
TRIALS = ((1.5, 0.25), (-0.75, 2.0))
OP_RTOL, OP_ATOL = (
    1e-7,
    1e-12,
)  # one op's forward and local derivative, against the formula
NODES_PER_OP = 50

# the ops a learner's class is graded on, with their arity
GRADED = {
    Op.ADD: 2, Op.SUB: 2, Op.MUL: 2, Op.DIV: 2, Op.NEG: 1, Op.POW: 1, Op.EXP: 1, Op.LOG: 1,
    Op.TANH: 1, Op.RELU: 1, Op.SIGMOID: 1, Op.ABS: 1, Op.SIN: 1, Op.COS: 1,
}  # fmt: skip


@functools.lru_cache(maxsize=None)
def _rule(op: Op, attr, arity: int) -> Graph:
    """The op alone on `arity` scalar inputs, differentiated by reverse mode (the registry's rule)."""
    b = Builder(f"local_{op.value}")
    xs = [b.add(Op.INPUT, (), name=f"x{i}", origin=Origin("arg", f"x{i}")) for i in range(arity)]
    return grad(b.build(xs, [(VALUE, b.add(op, xs, attr))]))


def _local(op: Op, *xs_and_attr):
    """d out / d each operand at the operands' data: the op registry's derivative rule, evaluated
    (one table for the compiler and the grader)."""
    *xs, attr = xs_and_attr
    graph = _rule(op, attr, len(xs))
    got = evaluate_graph(graph, [float(x) for x in xs])
    return tuple(float(got[str(role)]) for role, _ in graph.outputs[1:])


# the local derivatives d out / d operand, from the operands' data and the attribute (pow's exponent)
LOCAL = {op: functools.partial(_local, op) for op in GRADED}

# where each op is recorded in a micrograd-style class
METHODS = {
    Op.ADD: ("__add__",),
    Op.SUB: ("__sub__",),
    Op.MUL: ("__mul__",),
    Op.DIV: ("__truediv__",),
    Op.NEG: ("__neg__",),
    Op.POW: ("__pow__",),
    Op.EXP: ("exp",),
    Op.LOG: ("log",),
    Op.TANH: ("tanh",),
    Op.RELU: ("relu", "ReLU"),
    Op.SIGMOID: ("sigmoid",),
    Op.ABS: ("__abs__", "abs"),
    Op.SIN: ("sin",),
    Op.COS: ("cos",),
}


def place(path: str, line: int) -> str:
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return f"{path if rel.startswith('..') else rel}:{line}"


def _method_line(cls: type, op: Op) -> str | None:
    for name in METHODS.get(op, ()):
        for klass in cls.__mro__:
            m = klass.__dict__.get(name)
            if m is not None:
                try:
                    return place(inspect.getsourcefile(m), inspect.getsourcelines(m)[1])
                except (OSError, TypeError):
                    return None
    return None


def _backward_line(node, cls: type, op: Op) -> str | None:
    """Where the node's `_backward` closure is defined (else the method that records the op)."""
    code = getattr(getattr(node, "_backward", None), "__code__", None)
    if code is not None and code.co_name != "<lambda>":
        return place(code.co_filename, code.co_firstlineno)
    return _method_line(cls, op)


def _label(op_string: str, op: Op) -> str:
    return op_string if op_string.isidentifier() else f"{op.value} ({op_string!r})"


def _walk(out):
    """Every node of the user's graph, each once (iteratively)."""
    seen, order, stack = {id(out)}, [], [out]
    while stack:
        v = stack.pop()
        order.append(v)
        for c in getattr(v, "_prev", ()) or ():
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    return order


def _operands(node, op: Op, attr):
    """The node's operands in order (a child twice for `a + a`), or None when they cannot be told."""
    kids = list(node._prev)
    distinct = list({id(c): c for c in kids}.values())
    if not isinstance(node._prev, (list, tuple)):  # a set: an order that does not depend on ids
        distinct.sort(key=lambda c: (float(c.data), float(c.grad)))
    arity = 1 if op is Op.POW else OPS[op].arity
    if arity == 1:
        return distinct if len(distinct) == 1 else None
    if len(distinct) == 1:
        return [distinct[0], distinct[0]]
    if len(distinct) != 2:
        return None
    orders = [distinct, distinct[::-1]] if not isinstance(node._prev, (list, tuple)) else [distinct]
    for pair in orders:
        try:
            if _close(evaluate(op, [float(c.data) for c in pair], attr), float(node.data)):
                return pair
        except (ArithmeticError, ValueError):
            continue
    return orders[0]


def _close(a, b, rtol=OP_RTOL, atol=OP_ATOL) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


def _g(x) -> str:
    return f"{x:.6g}"


@dataclass
class OpGrade:
    row: Row
    verdicts: dict = field(default_factory=dict)  # Op -> (verdict, the op as the class spells it, sort key)
    bad: dict = field(default_factory=dict)  # Op -> [failed nodes, graded nodes]
    notes: list = field(default_factory=list)


def grade_node(node, cls: type, p: int, g: OpGrade) -> None:
    """Grade one node's forward and `_backward` (alone) against the op's formula."""
    parsed = parse_op(node._op)
    if parsed is None:
        note = f"op {node._op!r} of {cls.__name__} is not one gradgen knows: not graded"
        if note not in g.notes:
            g.notes.append(note)
        return
    op, attr = parsed
    if op not in LOCAL:
        return
    label = _label(node._op, op)
    operands = _operands(node, op, attr)
    if operands is None:
        note = f"a {label} node has {len(node._prev)} children: not graded"
        if note not in g.notes:
            g.notes.append(note)
        return
    counts = g.bad.setdefault(op, [0, 0])
    if counts[1] >= NODES_PER_OP * (p + 1):
        return
    counts[1] += 1
    xs = [float(c.data) for c in operands]
    names = ["x"] if len(xs) == 1 else ["a", "b"]
    at = ", ".join(f"{n} = {_g(x)}" for n, x in zip(names, xs))
    line = _backward_line(node, cls, op)
    where = f", {line}" if line else ""

    def verdict(text):
        counts[0] += 1
        key = (
            p,
            node._op,
            tuple(xs),
        )  # the same verdict whatever order the sets iterate in
        if op not in g.verdicts or key < g.verdicts[op][2]:
            g.verdicts[op] = (text + where, label, key)

    try:
        want_value = evaluate(op, xs, attr)
        local = LOCAL[op](*xs, attr)
    except (ArithmeticError, ValueError):
        return
    g.row.add(float(node.data), want_value, f"{label} forward", p)
    if not _close(float(node.data), want_value):
        verdict(
            f"{label}'s forward in your Value class disagrees "
            f"({label} at {at} gives {_g(node.data)}, expected {_g(want_value)})"
        )
        return
    local_of: dict[int, float] = {}  # d out / d child, summed over the operand positions it fills
    for c, d in zip(operands, local):
        local_of[id(c)] = local_of.get(id(c), 0.0) + d
    kids = list({id(c): c for c in operands}.values())
    trials = []  # (seed, prior, {child: grad after})
    saved = [(v, v.grad) for v in [node, *kids]]
    try:
        for seed, prior in TRIALS:
            for c in kids:
                c.grad = prior
            node.grad = seed
            try:
                node._backward()
            except Exception as e:
                g.row.fail(f"{label} backward", p)
                verdict(f"{label}'s backward in your Value class raised {short_error(e)}")
                return
            trials.append((seed, prior, {id(c): float(c.grad) for c in kids}))
    finally:
        for v, grad in saved:
            v.grad = grad
    wrong, graded = None, set()
    for n, c in zip(names, operands):
        if id(c) in graded:  # a + a: one child, both contributions in one change
            continue
        graded.add(id(c))
        for seed, prior, got in trials:
            delta, want = got[id(c)] - prior, seed * local_of[id(c)]
            g.row.add(delta, want, f"{label} backward (d out/d {n})", p)
            if wrong is None and not _close(delta, want):
                wrong = (n, c)

    def every(
        test,
    ):  # `test(seed, prior, got after, local)` holds for every trial and child
        return all(test(s, pr, got[id(c)], local_of[id(c)]) for s, pr, got in trials for c in kids)

    if wrong is None:
        return
    n, c = wrong
    seed, prior, got = trials[0]
    d_name = f"d out/d {n}" if len(xs) > 1 else "d out/d x"
    want = local_of[id(c)]
    if _is_default(node, cls) and every(lambda s, pr, after, d: _close(after, pr)):
        verdict(
            f"{label} has no backward in your Value class: its _backward leaves the children's grads "
            f"unchanged ({d_name} should be {_g(want)} at {at})"
        )
    elif every(lambda s, pr, after, d: _close(after, s * d)):
        verdict(
            f"{label}'s backward in your Value class overwrites the child's grad: use += not = "
            f"(a Value used twice, as in a + a, loses a contribution)"
        )
    elif every(lambda s, pr, after, d: _close(after - pr, d)):
        verdict(
            f"{label}'s backward in your Value class ignores out.grad (multiply the local derivative "
            f"{_g(want)} by out.grad)"
        )
    else:
        verdict(
            f"{label}'s backward in your Value class disagrees ({d_name} = {_g((got[id(c)] - prior) / seed)} "
            f"expected {_g(want)}, at {at})"
        )


def _is_default(node, cls: type) -> bool:
    """The node's `_backward` is the one a leaf gets (`lambda: None` in `__init__`): never set."""
    code = getattr(getattr(node, "_backward", None), "__code__", None)
    try:
        leaf = cls(0.0)._backward.__code__
    except Exception:
        return code is None
    return code is None or code is leaf


def grade_graph(out, cls: type, p: int, g: OpGrade) -> None:
    for node in _walk(out):
        if getattr(node, "_op", "") and getattr(node, "_prev", None):
            grade_node(node, cls, p, g)
