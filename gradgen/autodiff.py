"""Reverse mode as an IR transform: forward graph -> forward + backward graph.

Walk the forward nodes from the output back to the inputs.  For each node
whose adjoint is known, apply its row of `rules.RULES` to build the
contributions to its arguments' adjoints, as IR.  A value used more than
once gets an explicit `add` per extra use (emitted as `g_x += ...`).  Every
backward node records which forward node's adjoint it is (`adj`), the rule
that produced it, the model line it differentiates, and its step (one rule
application = one emitted line).  Gradients of inputs the output does not
depend on are the constant 0.0.

The result still contains every forward node; DCE, CSE and folding (in
`gradgen.passes`) clean it up like any other graph.
"""

from __future__ import annotations

from gradgen.ir.graph import Builder, Graph, rebuild
from gradgen.ir.ops import Op
from gradgen.rules import RULES

SEED = "seed: d(out)/d(out) = 1"
FANOUT = "fan-out: a value used twice sums its gradients"


class _Emitter:
    """Builds backward nodes, all tagged with one step's rule and location."""

    def __init__(self, b: Builder):
        self.b = b
        self.meta: dict = {}

    def _add(self, op: Op, *args, attr=None) -> int:
        return self.b.add(op, args, attr, **self.meta)

    def const(self, v):
        return self.b.const(v)

    def add(self, x, y):
        return self._add(Op.ADD, x, y)

    def sub(self, x, y):
        return self._add(Op.SUB, x, y)

    def mul(self, x, y):
        return self._add(Op.MUL, x, y)

    def div(self, x, y):
        return self._add(Op.DIV, x, y)

    def neg(self, x):
        return self._add(Op.NEG, x)

    def pow(self, x, k):
        return self._add(Op.POW, x, attr=k)

    def step(self, x):
        return self._add(Op.STEP, x)


def _label_step_nodes(b: Builder, root: int, first: int, comment: str) -> None:
    """Give the nodes this step built for one contribution (ids >= first) that argument's comment."""
    stack = [root]
    while stack:
        i = stack.pop()
        if i >= first and b.nodes[i].rule != comment:
            b.set_meta(i, rule=comment)
            stack.extend(b.nodes[i].args)


def grad(fwd: Graph, output: str = "value") -> Graph:
    """The graph of `fwd`'s output and its gradient with respect to every input.

    Outputs: ("value", out), then ("grad:<arg>", g) for each input in order.
    """
    b = Builder(fwd.name + "_grad")
    for n in fwd.nodes:  # forward part, verbatim (same ids)
        b.nodes.append(n)
        if n.op is Op.CONST and n.name is None and n.adj is None:
            b._consts.setdefault(repr(float(n.attr)), n.id)
    out = fwd.output(output)
    e = _Emitter(b)
    adjoint: dict[int, int] = {out: b.const(1.0, adj=out, rule=SEED, step=0)}
    step = 0
    for node in reversed(fwd.nodes[: out + 1]):
        g = adjoint.get(node.id)
        if g is None or node.op in (Op.INPUT, Op.CONST):
            continue
        r = RULES[node.op]
        step += 1
        e.meta = dict(rule=r.comments[0], loc=node.loc, step=step)
        args = node.args
        first = len(b.nodes)
        contribs = r.fn(e, *args, out=node.id, g=g, k=node.attr)
        for i, c in enumerate(contribs):
            if c is not None and len(r.comments) > 1:
                _label_step_nodes(b, c, first, r.comments[min(i, len(r.comments) - 1)])
        for i, (a, c) in enumerate(zip(args, contribs)):
            if c is None or fwd.nodes[a].op is Op.CONST:
                continue
            comment = r.comments[min(i, len(r.comments) - 1)]
            meta = dict(rule=comment, loc=node.loc, step=step)
            if c < len(fwd.nodes) or b.nodes[c].adj is not None or b.nodes[c].step != step:
                # passed through unchanged (add's rule): give the adjoint its own node
                c = b.add(Op.COPY, (c,), **meta)
            if a in adjoint:
                adjoint[a] = b.add(Op.ADD, (adjoint[a], c), adj=a, **meta)
                b.set_meta(c, rule=comment)
            else:
                b.set_meta(c, adj=a, rule=comment)
                adjoint[a] = c
    outputs = [(output, out)]
    for i in fwd.inputs:
        outputs.append((f"grad:{fwd.nodes[i].name}", adjoint.get(i, b.const(0.0))))
    return b.build(fwd.inputs, outputs)


__all__ = ["grad", "rebuild"]
