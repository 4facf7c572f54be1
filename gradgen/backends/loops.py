"""The numba backend's loops: a function's elementwise work as explicit loops, fused.

`arrange(statements, ctx)` (the `Backend.arrange` hook of gradgen.backends.base) rewrites
the body the shared renderer wrote, statement by statement, keeping its names, order and
rule comments:

* an elementwise statement on an array (`h0 = np.maximum(z0, 0.0)`, `g_z0 = g_h0 * mask`,
  `g_W0 += 0.0002 * W0`) becomes a loop nest over its shape, `h0[i, j] = max(z0[i, j], 0.0)`,
  its operands indexed as NumPy broadcasts them (`b0[j]`, `g_s[i]` for `g_s[:, None]`,
  `W0[j, i]` for `W0.T`, `z2[i, 0]` for `z2[:, 0]`) and its ops in the scalar spelling
  (the engine's functions, `(1.0 if x > 0.0 else 0.0)` for relu's mask);
* a product that heads one (`z0 = X @ W0.T + b0`) stays one BLAS call writing the result,
  `z0 = X @ W0.T`, and the loop adds the rest in place (`z0[i, j] += b0[j]`);
* a sum over axes (`g_b0 = g_z0.sum(axis=0)`) is an accumulation in the nest over its
  operand's shape (`g_b0[j] += g_z0[i, j]`);
* a product whose fixed dimensions are small (`SMALL`: the moons' `X @ W0.T`, 2 inputs)
  is loops too (`z0[i, j] += X[i, k] * W0[j, k]`), a big one a BLAS call (numba's `@`);
* consecutive nests over the same shape are fused into one (the bias add, the activation
  and the next layer's mask in one pass over the batch), hopping over statements they do
  not depend on, as long as no statement reads another's result at a different index or
  a sum before it is complete;
* loops read through a view (`score = z2[:, 0]` is `z2[i, 0]`, `g_z2 = g_score[:, None]`
  is `g_score[i]`), so it separates no nests; a backward one's line goes once nothing
  reads it (a forward one keeps the model's name);
* everything else (big products, stacks, floats) stays as it was.

This module turns each statement into a nest or a plain statement (`Renderer`);
gradgen.backends.loop_nests holds the nests, their fusion and their printing.
"""

from __future__ import annotations

from gradgen.backends.base import _SIMPLE, ADD, ATOM, literal
from gradgen.backends.loop_nests import Nest, Plain, Section, fuse, render, unused_views
from gradgen.backends.python import PYTHON
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched

# a product is loops when the product of its fixed (non-batch) dimensions is at most this
SMALL = 32
INDEX = ("i", "j", "k", "l", "m", "p", "q")
# a statement of these is a view (`score = z2[:, 0]`, `g[:, None]`, `W.T`): a loop reads through it
VIEWS = (Op.ELEM, Op.EXPAND, Op.TRANSPOSE)


def small(nodes, n) -> bool:
    """Whether a 2-D product `a @ b` is loops: its fixed dimensions multiply to at most SMALL."""
    a, b = (nodes[i] for i in n.args)
    if len(a.shape) != 2 or len(b.shape) != 2:
        return False
    size = 1
    for d in (a.shape[0], a.shape[1], b.shape[1]):
        size *= 1 if d == "B" else d
    return size <= SMALL


class NotLoop(Exception):
    """The statement stays an array statement."""

def shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _paren(tp, need: int) -> str:
    text, prec = tp
    return f"({text})" if prec < need else text


class Renderer:
    """Statements of one function as nests or plain statements (see the module docstring)."""

    def __init__(self, ctx):
        self.ctx, self.sched = ctx, ctx.sched
        self.nodes, self.names = self.sched.graph.nodes, self.sched.names
        taken = {nm for nm in self.names if nm}
        self.vars = [v for v in INDEX if v not in taken] + [f"i{d}" for d in range(8)]
        self.acc = next(nm for nm in ("acc", "acc_1", "acc_2") if nm not in taken)

    # -- one statement ------------------------------------------------------------------

    def statement(self, nid, lines):
        n = self.nodes[nid]
        try:
            if n.shape and (self.sched.rebind[nid] or OPS[n.op].elementwise):
                return self.elementwise(n)
            if n.shape and n.op is Op.SUM and n.attr:
                return self.reduction(n)
            if n.op is Op.MATMUL and self.small(n):
                return self.product(n)
        except NotLoop:
            pass
        outputs = {i for _, i in self.sched.graph.outputs}
        # a backward view goes once unused; a forward one keeps the model's name (`score`)
        view = n.op in VIEWS and bool(n.shape) and nid not in outputs and n.rule is not None
        return Plain(lines, {self.names[nid]}, self.tree_reads(nid, top=True), view)

    def tree_reads(self, i, top=False) -> set:
        if not top and self.sched.named(i):
            return {self.names[i]}
        return set().union(*(self.tree_reads(a) for a in self.nodes[i].args)) if self.nodes[i].args else set()

    def index(self, shape):
        """The loop space (extents of shape other than 1) and shape's index in it."""
        space, idx = [], []
        for d in shape:
            if d == 1:
                idx.append("0")
            else:
                idx.append(self.vars[len(space)])
                space.append(d)
        return tuple(space), tuple(idx)

    def elementwise(self, n):
        name, nid = self.names[n.id], n.id
        space, idx = self.index(n.shape)
        reads: set = set()
        if self.sched.rebind[nid]:
            op = "+=" if n.op is Op.ADD else "-="
            text = self.at(n.args[1], self.broadcast(n.args[1], n.shape, idx), reads, {})[0]
            return self.nest(
                space, [], [f"{name}[{', '.join(idx)}] {op} {text}"], nid, {name: idx}, set(), reads, set()
            )
        head, first = {}, []
        pre = [f"{name} = np.empty({shape_text(n.shape)})"]
        pre_reads: set = set()
        at = f"{name}[{', '.join(idx)}]"
        for a in n.args:
            m = self.nodes[a]
            if not self.sched.named(a) and m.op is Op.MATMUL and m.shape == n.shape:
                if self.small(m):  # the product's loop right here, into `acc`, the rest added to it
                    first, _ = self.dot(m, idx, len(space), reads)
                    head = {a: self.acc}
                else:  # the BLAS product written into the result, the rest added in the loop
                    head = {a: at}
                    pre = [f"{name} = {self.ctx.operand(a, 0)}"]
                    pre_reads = self.tree_reads(a)
                break
        if head and n.op in (Op.ADD, Op.SUB) and n.args[0] in head and not first:
            rest = self.at(n.args[1], self.broadcast(n.args[1], n.shape, idx), reads, {})
            stmt = f"{at} {'+=' if n.op is Op.ADD else '-='} {_paren(rest, ADD + 1) if n.op is Op.SUB else rest[0]}"
        else:
            stmt = f"{at} = {self.at(nid, idx, reads, head, top=True)[0]}"
        return self.nest(space, pre, ["\n".join(first + [stmt])], nid, {name: idx}, set(), reads, pre_reads)

    def reduction(self, n):
        x = self.nodes[n.args[0]]
        name = self.names[n.id]
        space, idx = self.index(x.shape)
        out = tuple(v for t, v in enumerate(idx) if t not in n.attr)
        reads: set = set()
        text = self.at(x.id, idx, reads, {})[0]
        if n.shape:
            pre, stmt = [f"{name} = np.zeros({shape_text(n.shape)})"], f"{name}[{', '.join(out)}] += {text}"
        else:
            pre, stmt = [f"{name} = 0.0"], f"{name} += {text}"
        return self.nest(space, pre, [stmt], n.id, {}, {name}, reads, set())

    def small(self, n) -> bool:
        return small(self.nodes, n)

    def product(self, n):
        """`c = a @ b` as loops: over c's shape with the contraction innermost, or, when the
        contraction is over the batch, over (batch, c's shape) accumulating into c."""
        a, b = n.args
        (m, k), (_, p) = self.nodes[a].shape, self.nodes[b].shape
        name = self.names[n.id]
        reads: set = set()
        if k == "B":  # g_W0 = g_z0.T @ X: c[j, l] += a[j, i] * b[i, l], the batch outermost
            space, (vi, vj, vl) = self.index(("B", m, p))
            ta = self.at(a, (vj, vi), reads, {})
            tb = self.at(b, (vi, vl), reads, {})
            stmt = f"{name}[{vj}, {vl}] += {_paren(ta, 70)} * {_paren(tb, 71)}"
            return self.nest(
                space, [f"{name} = np.zeros({shape_text(n.shape)})"], [stmt], n.id, {}, {name}, reads, set()
            )
        space, idx = self.index(n.shape)
        stmt, _ = self.dot(n, idx, len(space), reads)
        pre = [f"{name} = np.empty({shape_text(n.shape)})"]
        return self.nest(
            space,
            pre,
            ["\n".join(stmt + [f"{name}[{', '.join(idx)}] = {self.acc}"])],
            n.id,
            {name: idx},
            set(),
            reads,
            set(),
        )

    def dot(self, n, idx, depth, reads):
        """The lines computing element idx of the product n (contracted over a fixed axis) into `acc`."""
        a, b = n.args
        k = self.nodes[a].shape[1]
        vk = self.vars[depth]
        ta = self.at(a, (idx[0], vk), reads, {})
        tb = self.at(b, (vk, idx[1]), reads, {})
        return [
            f"{self.acc} = 0.0",
            f"for {vk} in range({k}):",
            f"    {self.acc} += {_paren(ta, 70)} * {_paren(tb, 71)}",
        ], vk

    def nest(self, space, pre, body, nid, maps, sums, reads, pre_reads):
        note = self.ctx.notes.get(nid)
        return Nest(space, pre, [(b, note, ()) for b in body], maps, sums, reads, pre_reads)

    # -- an expression at an index -------------------------------------------------------

    def at(self, i, idx, reads, head, top=False):
        """(text, precedence) of node i's element at `idx` (its own index, len(shape) entries)."""
        n, names = self.nodes[i], self.names
        if i in head:
            return head[i], ATOM
        if not top and self.sched.named(i) and not (n.op in VIEWS and n.shape):
            if not n.shape:
                return names[i], ATOM
            reads.add((names[i], tuple(idx)))
            return f"{names[i]}[{', '.join(idx)}]", ATOM
        if not n.shape:  # a float: its own expression
            return self.ctx.expr[i]
        op = n.op
        if op is Op.CONST:
            return literal(n.attr)
        if op is Op.EXPAND:
            return self.at(n.args[0], [v for t, v in enumerate(idx) if t not in n.attr], reads, head)
        if op is Op.TRANSPOSE:
            return self.at(n.args[0], list(reversed(idx)), reads, head)
        if op is Op.ELEM:
            x = self.nodes[n.args[0]]
            lead = len(x.shape) - len(n.shape)  # the indexed axes
            consts = [str(c) for c in n.attr]
            sub = ([idx[0]] + consts + list(idx[1:])) if batched(x.shape) else consts + list(idx)
            if len(sub) != len(x.shape) or lead != len(consts):
                raise NotLoop(op)
            return self.at(n.args[0], sub, reads, head)
        if op is Op.BCAST or OPS[op].elementwise:
            args = [self.at(a, self.broadcast(a, n.shape, idx), reads, head) for a in n.args]
            if op is Op.BCAST or op is Op.COPY:
                return args[0]
            return self.spell(n, args)
        raise NotLoop(op)

    def broadcast(self, a, shape, idx):
        sa = self.nodes[a].shape
        off = len(shape) - len(sa)
        return [("0" if sa[t] == 1 else idx[off + t]) for t in range(len(sa))]

    def spell(self, n, args):
        """The scalar spelling of an elementwise op on its operands' (text, precedence)."""
        op = n.op
        if op is Op.STEP:
            return f"(1.0 if {_paren(args[0], ADD)} > 0.0 else 0.0)", ATOM
        if op is Op.SIGN:
            return f"np.sign({args[0][0]})", ATOM
        f = PYTHON.spelling(op)
        if op is Op.POW:
            base, k = _paren(args[0], ATOM), literal(n.attr)[0]
            return (f"{base}**{k}" if _SIMPLE.fullmatch(base) else f"{base} ** {k}"), f.prec
        if f.helper:
            self.ctx.helpers.add(f.helper)
        if "math." in f.template:
            self.ctx.needs.add("math")
        return f.template.format(*(_paren(t, need) for t, need in zip(args, f.operand_prec)), k=n.attr), f.prec


def arrange(statements: list, ctx) -> list[str]:
    r = Renderer(ctx)
    items: list = []
    for nid, lines in statements:
        if nid is None:  # a section comment: no fusion across it
            items.append(Section(lines))
        elif lines:  # (a statement the backend writes as nothing: a step's L2 term in its update)
            items.append(r.statement(nid, lines))
    items = fuse(items, r.vars)
    return [ln for item in unused_views(items) for ln in render(item, r.vars)]
