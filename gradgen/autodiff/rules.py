"""The derivative rules: one row per op, written in the IR's own primitives.

A rule receives an emitter `e` (which builds IR nodes tagged with the rule
and the model line), the forward node's argument ids, its output `out` (so
tanh's backward reuses the forward value instead of recomputing it), the
output's adjoint `g`, and the op's attribute `k`.  It returns one
contribution per argument (`None`: no gradient flows there).  The comment
strings are what the emitted backward lines say: templates whose
placeholders ({a} {b} {x} {out}) the backend fills with the operands' emitted
names (`gradgen.autodiff.comments`).

The formulas match the interpreted engine's `_backward` closures operation
for operation (up to commuting a product), so compiled gradients equal the
engine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gradgen.ir.ops import OPS, Op


@dataclass(frozen=True)
class Rule:
    comments: tuple[str, ...]  # one per argument, shown on the emitted line
    fn: Callable


RULES: dict[Op, Rule] = {}


def rule(op: Op, *comments: str):
    def register(fn):
        RULES[op] = Rule(tuple(comments), fn)
        return fn

    return register


@rule(Op.ADD, "add: d({a} + {b})/d{a} = 1", "add: d({a} + {b})/d{b} = 1")
def _add(e, a, b, *, out, g, k):
    return g, g


@rule(Op.SUB, "sub: d({a} - {b})/d{a} = 1", "sub: d({a} - {b})/d{b} = -1")
def _sub(e, a, b, *, out, g, k):
    return g, e.neg(g)


@rule(Op.MUL, "mul: d({a} * {b})/d{a} = {b}", "mul: d({a} * {b})/d{b} = {a}")
def _mul(e, a, b, *, out, g, k):
    return e.mul(g, b), e.mul(g, a)


@rule(Op.DIV, "div: d({a} / {b})/d{a} = 1 / {b}", "div: d({a} / {b})/d{b} = -{out} / {b}")
def _div(e, a, b, *, out, g, k):
    return e.div(g, b), e.neg(e.div(e.mul(g, out), b))


@rule(Op.NEG, "neg: d(-{x})/d{x} = -1")
def _neg(e, a, *, out, g, k):
    return (e.neg(g),)


@rule(Op.POW, "pow: d({x}**k)/d{x} = k * {x}**(k - 1)")
def _pow(e, x, *, out, g, k):
    if k == 0:
        return (None,)
    return (e.mul(g, e.mul(e.const(k), e.pow(x, k - 1))),)


@rule(Op.EXP, "exp: d(exp {x})/d{x} = {out}")
def _exp(e, x, *, out, g, k):
    return (e.mul(g, out),)


@rule(Op.LOG, "log: d(log {x})/d{x} = 1 / {x}")
def _log(e, x, *, out, g, k):
    return (e.div(g, x),)


@rule(Op.TANH, "tanh: 1 - {out}**2")
def _tanh(e, x, *, out, g, k):
    return (e.mul(g, e.sub(e.const(1.0), e.mul(out, out))),)


@rule(Op.RELU, "relu: 1 where {out} > 0, else 0")
def _relu(e, x, *, out, g, k):
    return (e.mul(g, e.step(out)),)


@rule(Op.SIGMOID, "sigmoid: {out} * (1 - {out})")
def _sigmoid(e, x, *, out, g, k):
    return (e.mul(g, e.mul(out, e.sub(e.const(1.0), out))),)


@rule(Op.STEP, "step: derivative 0 (almost everywhere)")
def _step(e, x, *, out, g, k):
    return (None,)


@rule(Op.COPY, "copy: d({x})/d{x} = 1")
def _copy(e, x, *, out, g, k):
    return (g,)


# -- array ops ------------------------------------------------------------------
# `g` has the forward node's exact shape here (reverse mode broadcasts it
# first), and reverse mode sums each contribution down to its argument's
# shape, so these rules only undo the op's own reshaping.


@rule(Op.MATMUL, "matmul: d({a} @ {b})/d{a} = g @ {b}.T", "matmul: d({a} @ {b})/d{b} = {a}.T @ g")
def _matmul(e, a, b, *, out, g, k):
    sa, sb = e.shape(a), e.shape(b)
    if len(sb) == 2:
        ga = e.matmul(g, e.transpose(b))
    elif len(sa) == 2:  # matrix @ vector: g_a[i, j] = g[i] * b[j]
        ga = e.mul(e.expand(g, (1,)), b)
    else:
        ga = e.mul(g, b)
    if len(sa) == 2:
        gb = e.matmul(e.transpose(a), g)
    elif len(sb) == 2:  # vector @ matrix: g_b[i, j] = a[i] * g[j]
        gb = e.mul(e.expand(a, (1,)), g)
    else:
        gb = e.mul(g, a)
    return ga, gb


@rule(Op.TRANSPOSE, "transpose: d({x}.T)/d{x} = g.T")
def _transpose(e, a, *, out, g, k):
    return (e.transpose(g),)


@rule(Op.SUM, "sum: every summed element gets g")
def _sum(e, x, *, out, g, k):
    lead = 0
    while lead in k:
        lead += 1  # summed leading axes broadcast back by themselves
    rest = tuple(ax for ax in k if ax >= lead)
    if not e.shape(g):
        return (g,)  # a scalar gradient broadcasts to x by itself
    # may stay smaller than x (broadcasting does the rest): reverse mode
    # materialises it where a term of x was itself broadcast and must be summed
    return (e.expand(g, rest) if rest else g,)


@rule(Op.EXPAND, "expand: sum over the inserted axes")
def _expand(e, x, *, out, g, k):
    return (e.sum(g, k),)


@rule(Op.BCAST, "bcast: sum over the broadcast axes")
def _bcast(e, x, *, out, g, k):
    return (g,)  # reverse mode sums it down to x's shape


@rule(Op.ELEM, "elem: g goes back to its place in the array")
def _elem(e, x, *, out, g, k):
    return (e.place(x, [(k, g)]),)


@rule(Op.PACK, "pack: each piece gets its slice of g")
def _pack(e, *pieces, out, g, k):
    _, _, indices = k
    return tuple(e.elem(g, idx) for idx in indices)


_missing = [op for op, info in OPS.items() if info.differentiable and op not in RULES]
assert not _missing, f"ops without a derivative rule: {_missing}"
