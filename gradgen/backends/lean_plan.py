"""The lean step's plan (gradgen.backends.lean): which nodes of a gradient schedule the
NumPy step writes into preallocated arrays (`out=`), and what it fuses.

`Plan(sched, ns)` reads the schedule once: each node's statement kind (`matmul`,
`matmul+` for a product and the bias added to it, `mask` for relu's backward, `outer` for a
column times a row, `ones` for a batch sum, `binary` / `ufunc` for an elementwise result of
at least `WIDE` elements per example), the gradients' first partials (their views of the
flat buffer), the whole sums of a batch vector (`np.dot(ones, v)`), an L2 term every
gradient ends with (`g_p += c * p`) and a sum of squares of every parameter (one
`np.vdot(theta, theta)`).  Each choice is measured in docs/architecture.md.
"""

from __future__ import annotations

import re

from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched
from gradgen.names import Namespace

_CALL = re.compile(r"np\.\w+\(\{0\}(, [\w.]+)?\)")  # a one-argument ufunc spelling: np.tanh({0}), np.maximum({0}, 0.0)
BINARY = {Op.ADD: "np.add", Op.SUB: "np.subtract", Op.MUL: "np.multiply", Op.DIV: "np.divide"}

WIDE = 64  # elementwise results get out= from this many elements per example (or in all, unbatched)


def outer(a, b) -> bool:
    """Whether a product of shapes a and b broadcasts a column against a row ((B, 1) * (1, 16))."""
    return len(a) == len(b) == 2 and a[1] == 1 and b[0] == 1 and 1 not in (a[0], b[1])


def wide(shape) -> bool:
    """Whether an elementwise result is wide enough for `out=` to pay (docs/architecture.md)."""
    size = 1
    for d in shape:
        size *= 1 if d == "B" else d
    return size >= WIDE


class Plan:
    """Which nodes of a gradient schedule get a preallocated array, and what the step fuses."""

    def __init__(self, sched, ns: Namespace):
        self.sched, g = sched, sched.graph
        nodes, line, rebind = g.nodes, sched.line, sched.rebind
        self.out: dict[int, str] = {}  # node -> the statement kind that writes it with out=
        self.masks: dict[int, str] = {}  # a step node inlined into a multiply -> its bool mask's name
        self.ones: str | None = None
        # the gradients: each output's first partial is written into its view of `grad`
        self.roots: list[int] = []
        for _, o in g.grads():
            while rebind[o]:
                o = nodes[o].args[0]
            self.roots.append(o)
        self.grad_roots = set(self.roots)
        for n in nodes:
            if not line[n.id] or rebind[n.id] or not n.shape or n.op is Op.INPUT:
                continue
            kind = self._kind(n, nodes, line)
            if kind:
                self.out[n.id] = kind
                if kind == "mask":
                    s = next(a for a in n.args if nodes[a].op is Op.STEP)
                    self.masks[s] = ns.create("mask_" + (sched.names[nodes[s].args[0]] or "x"))
                if kind == "ones" and self.ones is None:
                    self.ones = ns.create("ones")
        # whole sums of a batch vector (`svm_loss.sum()`) as `ones @ svm_loss` too
        self.dots = {n.id for n in nodes if n.op is Op.SUM and tuple(n.attr) == (0,) and nodes[n.args[0]].shape == ("B",)}
        if self.dots and self.ones is None:
            self.ones = ns.create("ones")
        self.ok = all(r in self.out for r in self.roots) and len(self.grad_roots) == len(self.roots)
        self.l2 = self._l2(g, nodes, rebind)
        self.vdot, self.skip = self._norm(g, nodes)

    def _norm(self, g, nodes):
        """(the node, its chain's other lines) of a sum of `sum(p * p)` over every parameter, in
        order (an L2 term: one `np.vdot(theta, theta)`), or (None, set())."""
        params = [i for role, _ in g.grads() for i in g.inputs if nodes[i].name == role.of]
        uses, line = self.sched.uses, self.sched.line
        for n in reversed(nodes):
            if n.op is not Op.ADD or n.shape:
                continue
            leaves, inner, stack = [], set(), [n.id]
            while stack:
                m = nodes[stack.pop()]
                if m.op is Op.ADD and not m.shape and (m.id == n.id or uses[m.id] == 1):
                    inner.add(m.id)
                    stack += reversed(m.args)
                elif m.op is Op.SUM and nodes[m.args[0]].op is Op.MUL and not line[m.args[0]]:
                    a, b = nodes[m.args[0]].args
                    leaves.append(a if a == b and len(m.attr) == len(nodes[a].shape) else None)
                else:
                    leaves.append(None)
            if leaves == params:
                return n.id, {i for i in inner if i != n.id and line[i]}
        return None, set()

    def _kind(self, n, nodes, line) -> str | None:
        op = n.op
        if op is Op.MATMUL:
            return "matmul"
        if op is Op.ADD and not line[n.args[0]] and nodes[n.args[0]].op is Op.MATMUL:
            if nodes[n.args[0]].shape == n.shape:
                return "matmul+"  # np.dot(X, W0.T, out=z0); z0 += b0
        if op is Op.MUL and any(nodes[a].op is Op.STEP and not line[a] and nodes[a].shape == n.shape for a in n.args):
            return "mask"
        if op is Op.MUL and outer(*(nodes[a].shape for a in n.args)):
            return "outer"  # np.dot(g_z2, W2, out=g_h1): a column times a row, one product each
        if op is Op.SUM and tuple(n.attr) == (0,) and len(nodes[n.args[0]].shape) == 2 and batched(nodes[n.args[0]].shape):
            return "ones"  # np.dot(ones, g, out=g_b)
        if not (wide(n.shape) or n.id in self.grad_roots):
            return None  # a small elementwise result: `a * b` allocates as fast as out= writes
        if op in BINARY:
            return "binary"
        f = OPS[op].spell.get("numpy")
        if f is not None and not getattr(f, "helper", None) and _CALL.fullmatch(f.template):
            return "ufunc"
        return None

    def _l2(self, g, nodes, rebind):
        """(c, the output nodes) when every gradient's last line is `g_p += c * p` with one c."""
        by_name = {nodes[i].name: i for i in g.inputs}
        cs, outs = set(), []
        for role, o in g.grads():
            n = nodes[o]
            if not (rebind[o] and n.op is Op.ADD and self.sched.uses[o] == 2):
                return None
            m = nodes[n.args[1]]
            if m.op is not Op.MUL or self.sched.line[m.id]:
                return None
            consts = [a for a in m.args if nodes[a].op is Op.CONST]
            rest = [a for a in m.args if nodes[a].op is not Op.CONST]
            if len(consts) != 1 or rest != [by_name.get(role.of)]:
                return None
            cs.add(float(nodes[consts[0]].attr))
            outs.append(o)
        return (cs.pop(), outs) if len(cs) == 1 else None
