"""Second order as IR transforms: Hessian-vector products, Hessians and forward mode.

* `hvp(g)`: `g` is a gradient graph (outputs value, grad:x...).  The seeds
  become inputs: one `v_x` per differentiated input, shaped like it; the
  graph gains `dot = sum(g_x * v_x)` and reverse mode (`reverse.grad`, the
  same rules table) differentiates `dot` once more, with respect to the
  original inputs.  Outputs: value, grad:x..., hvp:x...  (reverse over
  reverse: the first backward pass is forward code of the second).
* `hessian(g)`: for functions of scalars; column j is reverse mode of the
  output `g_xj` itself (the hvp with v = e_j, no `v` needed), one second
  pass per column over the same forward and backward code, so that work is
  shared; H is symmetric, so entry (i, j) with i <= j comes from column j
  and (j, i) is the same node (column 1 keeps only h_x1_x1; DCE drops the
  rest).  Outputs: value, grad:x..., hessian:xi,xj (row-major).
* `jvp(f, wrt)`: forward mode, a tangent `t_y` per forward value, derived
  from the same rules table by linearity: for an elementwise op the reverse
  rule applied to g = 1 gives its partials, and `t_out = sum_i partial_i *
  t_ai`; the linear structural ops (`elem pack sum expand bcast transpose`)
  apply themselves to the tangents; `matmul` is bilinear (`t_a @ b + a @
  t_b`).  Outputs: value, jvp (the directional derivative).

Each second-pass node records its pass in `Node.second` ("v", the column's
input name, or "jvp"), which `gradgen.names.adjoint_hint` turns into names
that say what a line is: `hv_x`, `t_y` (a tangent), `h_x1_x2` (d2f/dx1 dx2).
Steps of a second pass are numbered after the first pass's, so each rule
application stays one line.
"""

from __future__ import annotations

from dataclasses import replace

from gradgen.autodiff.reverse import _Emitter, grad
from gradgen.errors import GradgenError
from gradgen.ir.graph import VALUE, Builder, Graph, Origin, Role
from gradgen.ir.ops import OPS, RULES, Op

DOT = Role("dot")
DOT_RULE = "hvp: dot = sum(g_x * v_x), the scalar whose gradient is H v"
SEED_V = "seed: d(dot)/d(g_x) = v_x, so t_y is y's tangent along v"


def hvp_of(name: str) -> Role:
    return Role("hvp", name)


def hessian_of(xi: str, xj: str) -> Role:
    return Role("hessian", f"{xi},{xj}")


JVP = Role("jvp")


def _last_step(g: Graph) -> int:
    return max((n.step for n in g.nodes if n.step is not None), default=0)


def _tag(g: Graph, first: int, tag: str, step0: int) -> list:
    """g's nodes, those from id `first` on that a rule built marked as pass `tag`, steps after `step0`."""
    nodes = list(g.nodes)
    for n in g.nodes[first:]:
        if n.rule is not None:
            step = n.step + step0 if n.step is not None else None
            nodes[n.id] = replace(n, second=tag, step=step)
    return nodes


def _wrt(g: Graph) -> list[tuple[str, int, int]]:
    """(input name, input id, gradient output id) for each gradient output of `g`."""
    by_name = {g.nodes[i].name: i for i in g.inputs}
    return [(r.of, by_name[r.of], i) for r, i in g.grads()]


def hvp(g: Graph) -> Graph:
    """The graph of value, gradients and H v (see the module docstring); inputs: g's, then the v's."""
    b = Builder(g.name.removesuffix("_grad") + "_hvp")
    b.nodes.extend(g.nodes)
    for n in g.nodes:
        if n.op is Op.CONST and n.name is None and n.adj is None and n.rule is None:
            b._consts.setdefault(repr(float(n.attr)), n.id)
    wrt = _wrt(g)
    step = _last_step(g) + 1
    meta = dict(rule=DOT_RULE, step=step, second="v")
    vs, dot = [], None
    for name, x, gx in wrt:
        v = b.add(Op.INPUT, (), shape=g.nodes[x].shape, name="v_" + name, origin=Origin("arg", "v_" + name))
        vs.append(v)
        term = b.add(Op.MUL, (gx, v), **meta)
        shape = b.nodes[term].shape
        if shape:
            term = b.add(Op.SUM, (term,), tuple(range(len(shape))), **meta)
        dot = term if dot is None else b.add(Op.ADD, (dot, term), **meta)
    if dot is None:
        raise GradgenError(f"{g.name}: hvp needs at least one differentiable argument")
    b.set_meta(dot, name="dot_g_v")
    inputs = list(g.inputs) + vs
    with_dot = b.build(inputs, list(g.outputs) + [(DOT, dot)])
    second = grad(with_dot, output=DOT, wrt=[x for _, x, _ in wrt])
    nodes = _tag(second, len(with_dot.nodes), "v", step)
    dots = range(len(g.nodes), len(with_dot.nodes))
    for k, n in enumerate(nodes):  # the adjoints of the g_x: the seeds v_x, not a rule on dot's terms
        if k >= len(with_dot.nodes) and n.terms and n.terms[-1] in dots:
            nodes[k] = replace(n, rule=SEED_V, terms=())
    outputs = list(g.outputs) + [(hvp_of(name), i) for (r, i), (name, _, _) in zip(second.grads(), wrt)]
    return Graph(b.name, tuple(nodes), tuple(inputs), tuple(outputs))


def hessian(g: Graph) -> Graph:
    """The graph of value, gradients and every second derivative of a function of scalars."""
    wrt = _wrt(g)
    arrays = [name for name, x, _ in wrt if g.nodes[x].shape]
    if arrays:
        raise GradgenError(
            f"{g.name.removesuffix('_grad')}: hessian=True needs a function of scalars, but {arrays[0]} is an array; "
            "use hvp=True (Hessian-vector products) for array arguments"
        )
    cur = g
    step = _last_step(g)
    entry: dict[tuple[int, int], int] = {}
    for j, (name, x, gx) in enumerate(wrt):
        if gx is None:
            continue
        with_out = Graph(cur.name, cur.nodes, cur.inputs, tuple(g.outputs) + ((Role("col"), gx),))
        col = grad(with_out, output=Role("col"), wrt=[x for _, x, _ in wrt])
        new_steps = max((n.step for n in col.nodes[len(cur.nodes) :] if n.step is not None), default=0)
        nodes = _tag(col, len(cur.nodes), name, step + 1)
        step += new_steps + 1
        for i, (_, h) in enumerate(col.grads()):
            if i <= j:
                entry[i, j] = h
        cur = Graph(g.name, tuple(nodes), g.inputs, g.outputs)
    n = len(wrt)
    outputs = list(g.outputs)
    for i in range(n):
        for j in range(n):
            outputs.append((hessian_of(wrt[i][0], wrt[j][0]), entry[min(i, j), max(i, j)]))
    return Graph(g.name.removesuffix("_grad") + "_hessian", cur.nodes, g.inputs, tuple(outputs))


LINEAR = (Op.ELEM, Op.PACK, Op.SUM, Op.EXPAND, Op.BCAST, Op.TRANSPOSE)
TANGENT = "tangent: "


def jvp(f: Graph, wrt) -> Graph:
    """The graph of value and directional derivative along tangents `t_x` (inputs after f's)."""
    b = Builder(f.name + "_jvp")
    b.nodes.extend(f.nodes)
    for n in f.nodes:
        if n.op is Op.CONST and n.name is None and n.adj is None and n.rule is None:
            b._consts.setdefault(repr(float(n.attr)), n.id)
    out = f.output(VALUE)
    tan: dict[int, int] = {}
    ts = []
    for x in wrt:
        name = f.nodes[x].name
        t = b.add(Op.INPUT, (), shape=f.nodes[x].shape, name="t_" + name, origin=Origin("arg", "t_" + name))
        tan[x] = t
        ts.append(t)
    first = len(b.nodes)
    e = _Emitter(b)
    step = 0
    for node in f.nodes[: out + 1]:
        if node.op in (Op.INPUT, Op.CONST, Op.BATCH):
            continue
        targs = [tan.get(a) for a in node.args]
        if all(t is None for t in targs):
            continue
        step += 1
        if node.op in LINEAR:
            text = f"{node.op.value} is linear: applied to the tangent"
        elif node.op is Op.MATMUL:
            text = "matmul is bilinear: t_a @ b + a @ t_b"
        else:
            comments = OPS[node.op].comments
            live = [comments[min(i, len(comments) - 1)] for i, t in enumerate(targs) if t is not None]
            text = "; ".join(dict.fromkeys(live)) + " (times the tangent)"
        e.meta = dict(rule=TANGENT + text, loc=node.loc, step=step, terms=(*node.args, node.id), second="jvp")
        t = _tangent(e, node, targs)
        if t is None:
            continue
        t = e.exact(t, node.shape)
        if t < first or b.nodes[t].adj is not None:
            t = e.copy(t)
        b.set_meta(t, adj=node.id)
        tan[node.id] = t
    result = tan.get(out, b.const(0.0))
    return b.build(list(f.inputs) + ts, [(VALUE, out), (JVP, result)])


def _tangent(e: _Emitter, node, targs) -> int | None:
    """The tangent of `node` from its arguments' tangents (None where an argument has none)."""
    op, args = node.op, node.args
    if op in LINEAR:
        if op is Op.PACK:
            pieces = [t if t is not None else e.exact(e.const(0.0), e.shape(a)) for a, t in zip(args, targs)]
            return e.b.add(Op.PACK, pieces, node.attr, **e.meta)
        return e._add(op, targs[0], attr=node.attr)
    if op is Op.MATMUL:
        terms = []
        if targs[0] is not None:
            terms.append(e.matmul(targs[0], args[1]))
        if targs[1] is not None:
            terms.append(e.matmul(args[0], targs[1]))
        return terms[0] if len(terms) == 1 else e.add(*terms)
    # elementwise: the reverse rule at g = 1 gives the partials
    partials = RULES[op].fn(e, *args, out=node.id, g=e.const(1.0), k=node.attr)
    total = None
    for p, t in zip(partials, targs):
        if p is None or t is None:
            continue
        term = e.mul(p, t)
        total = term if total is None else e.add(total, term)
    return total


__all__ = ["hvp", "hessian", "jvp", "hvp_of", "hessian_of", "JVP"]
