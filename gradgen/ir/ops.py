"""The op registry: every IR op declared once, with everything about it side by side.

Each `op(...)` below declares one op (in the order of the `Op` enum it
builds) and, used as a decorator, gives it its derivative rule, the function
right below it.  `OPS[op]` (an `OpInfo`) carries:

* `arity` (-1: any number, `pack`) and `attr`, what the attribute means
  (`"exponent"` of `pow`, `"value"` of `const`, `"index"`, `"axes"`, ...);
* `shape`: the shape rule, `(argument shapes, attr) -> shape`, from
  `gradgen.ir.shapes` (elementwise ops broadcast like NumPy);
* `evaluate`: the float semantics, `(*args, attr) -> float`, the very
  functions the engine runs (the IR interpreter and constant folding use
  it); `array`: the semantics on NumPy arrays (same signature);
* `rule` and `comments`: the derivative rule (see "Rules" below) and one
  comment template per argument, the text of the emitted backward line,
  with the placeholders of `gradgen.autodiff.comments` (`{a}` `{b}`
  operands of a binary op, `{x}` of a unary one, `{out}` the result, `{k}`
  the attribute, `{k1}` k - 1); `differentiable=False` for ops reverse mode
  never differentiates (`input`, `const`, `batch`);
* `spell`: how each backend writes the op, `{"python": Format, "numpy":
  Format, "torch": Format}` -- a template, its precedence and the least
  precedence each operand may have unparenthesised, plus the module-level
  `helper` it calls (`_sigmoid`), if any.  Backends read an elementwise
  op's spelling only from here; the structural ops (`input const elem pack
  sum expand bcast batch`) have none and stay special cases there;
* `method`: the `Value` method that records it (`"tanh"`), from which the
  tracer's methods are generated (and `__abs__` for `abs`, the operator
  Python calls for `abs(v)`);
* `fresh`: the NumPy result is a new array, which generated code may update
  in place (`g_W += ...`); views and aliases (`copy`, `.T`, `x[0]`) are not.

Forward traces use `input const add sub mul neg pow exp log tanh relu
sigmoid abs sin cos`; derivative rules may also use `div`, `step` (relu's)
and `sign` (abs's); reverse mode uses `copy` to give an adjoint its own
name where a rule passes a gradient through unchanged (the `add` rule).

`abs` at 0: its derivative there is taken to be 0 (`sign(0) = 0`), as in
PyTorch (`torch.abs`'s gradient at 0 is 0) and the engine.  `sign` of a NaN
is 0.0 on floats (the engine's `(x > 0) - (x < 0)`) and NaN on arrays
(`np.sign`).

Array ops (the elementwise ops above broadcast like NumPy):

* `elem x [i, j]` -- an element (or a row) of an array: the index covers the
  leading non-batch axes; a batched array keeps its batch axis.  It has no
  rule: reverse mode gathers the adjoints of all reads of one array into
  one `pack` itself;
* `pack a b ... [shape, indices]` -- zeros plus each piece at its index: the
  inverse of `elem`, and its reverse (a scatter-add: pieces whose indices
  overlap, a row `W[0]` and its elements `W[0, j]`, add up);
* `sum x [axes]`, `expand x [axes]` (insert size-1 axes), `bcast x [shape]`;
* `matmul a b` (NumPy's `@` on 1-D/2-D operands), `transpose x` (2-D);
* `batch` -- the batch size `B`, the length of the symbolic first axis.

Rules: a rule receives an emitter `e` (which builds IR nodes tagged with the
rule and the model line: `e.mul(x, y)`, `e.const(1.0)`, any op as `e.<op>`),
the forward node's argument ids, its output `out` (so tanh's backward reuses
the forward value), the output's adjoint `g`, and the attribute `k`; it
returns one contribution per argument (`None`: no gradient flows there).
The formulas match the engine's `_backward` closures operation for
operation (up to commuting a product), so compiled gradients equal the
engine's.  For array ops `g` has the forward node's exact shape (reverse
mode broadcasts it first) and reverse mode sums each contribution down to
its argument's shape, so those rules only undo the op's own reshaping.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np

from gradgen import mathfn
from gradgen.ir import shapes as S

BACKENDS = ("python", "numpy", "torch")
ATOM, POW, UNARY, MUL, ADD = 100, 90, 80, 70, 60  # precedences of emitted expressions


@dataclass(frozen=True)
class Format:
    template: str  # {0}, {1}: operands; {k}: the attribute
    prec: int
    operand_prec: tuple[int, ...]  # the least precedence an operand may have unparenthesised
    helper: str | None = None  # a module-level helper the spelling calls (`_sigmoid`)


def call(name: str, helper: str | None = None) -> Format:
    """`name(x)`: a one-argument function call."""
    return Format(f"{name}({{0}})", ATOM, (0,), helper)


def infix(symbol: str, prec: int) -> Format:
    """`a <symbol> b`, left-associative."""
    return Format(f"{{0}} {symbol} {{1}}", prec, (prec, prec + 1))


def spell(python, numpy, torch) -> dict[str, Format]:
    """One spelling per backend; a str is a function name (`"math.tanh"`), None: not spelled there."""
    given = dict(python=python, numpy=numpy, torch=torch)
    return {b: call(f) if isinstance(f, str) else f for b, f in given.items() if f is not None}


def everywhere(f: Format) -> dict[str, Format]:
    return {b: f for b in BACKENDS}


@dataclass(frozen=True, eq=False)
class OpInfo:
    name: str
    arity: int  # -1: any number of arguments (pack)
    attr: str | None  # None, "value" (const), "exponent" (pow), "index", "axes", "shape", "layout"
    evaluate: Callable | None  # (*args, attr) -> float; None for the array and structural ops
    differentiable: bool = True
    array: Callable | None = None  # (*args, attr) -> ndarray: semantics on NumPy arrays
    elementwise: bool = False
    shape: Callable = S.scalar  # (arg shapes, attr) -> shape
    rule: Callable | None = None  # (e, *args, out, g, k) -> one contribution per argument
    comments: tuple[str, ...] = ()  # one template per argument (or one for all)
    spell: dict = field(default_factory=dict)  # backend name -> Format
    method: str | None = None  # the Value method recording it
    fresh: bool = False  # NumPy result is a new array (may be updated in place)


@dataclass(frozen=True)
class Rule:
    """An op's row of the rule table (what reverse mode applies)."""

    comments: tuple[str, ...]
    fn: Callable


_DECLARED: dict[str, dict] = {}


def op(name, arity, *, attr=None, evaluate=None, array=None, **facts):
    """Declare an op.  `evaluate`/`array` take the operands (and the attribute if the op has one).

    Returns a decorator that makes the function it decorates the op's derivative rule.
    """
    if attr is None:  # stored in the uniform (*args, attr) form
        evaluate = evaluate and _drop_attr(evaluate)
        array = array and _drop_attr(array)
    decl = _DECLARED[name] = dict(name=name, arity=arity, attr=attr, evaluate=evaluate, array=array, **facts)

    def rule(fn):
        decl["rule"] = fn
        return fn

    return rule


def _drop_attr(f):
    return lambda *args: f(*args[:-1])


def elementwise(name, arity, evaluate, array, spelled, comments, **facts):
    """An op applied element by element (broadcasting like NumPy); a float on floats."""
    return op(name, arity, evaluate=evaluate, array=array, elementwise=True, shape=S.elementwise,
              spell=spelled, comments=comments, **facts)


# -- leaves ------------------------------------------------------------------------------
op("input", 0, differentiable=False)
op("const", 0, attr="value", differentiable=False)


# -- arithmetic --------------------------------------------------------------------------
@elementwise("add", 2, operator.add, operator.add, everywhere(infix("+", ADD)),
             ("add: d({a} + {b})/d{a} = 1", "add: d({a} + {b})/d{b} = 1"), fresh=True)
def _add(e, a, b, *, out, g, k):
    return g, g


@elementwise("sub", 2, operator.sub, operator.sub, everywhere(infix("-", ADD)),
             ("sub: d({a} - {b})/d{a} = 1", "sub: d({a} - {b})/d{b} = -1"), fresh=True)
def _sub(e, a, b, *, out, g, k):
    return g, e.neg(g)


@elementwise("mul", 2, operator.mul, operator.mul, everywhere(infix("*", MUL)),
             ("mul: d({a} * {b})/d{a} = {b}", "mul: d({a} * {b})/d{b} = {a}"), fresh=True)
def _mul(e, a, b, *, out, g, k):
    return e.mul(g, b), e.mul(g, a)


@elementwise("div", 2, operator.truediv, operator.truediv, everywhere(infix("/", MUL)),
             ("div: d({a} / {b})/d{a} = 1 / {b}", "div: d({a} / {b})/d{b} = -{out} / {b}"), fresh=True)
def _div(e, a, b, *, out, g, k):
    return e.div(g, b), e.neg(e.div(e.mul(g, out), b))


# -(x**2): black's spelling of -x**2
@elementwise("neg", 1, operator.neg, operator.neg, everywhere(Format("-{0}", UNARY, (UNARY + 1,))),
             ("neg: d(-{a})/d{a} = -1",), fresh=True)
def _neg(e, a, *, out, g, k):
    return (e.neg(g),)


@op("pow", 1, attr="exponent", evaluate=lambda x, k: x**k, array=lambda x, k: x**k, elementwise=True,
    shape=S.elementwise, spell=everywhere(Format("{0}**{k}", POW, (ATOM,))),
    comments=("pow: d({x}**{k})/d{x} = {k} * {x}**{k1}",), fresh=True)
def _pow(e, x, *, out, g, k):
    if k == 0:
        return (None,)
    return (e.mul(g, e.mul(e.const(k), e.pow(x, k - 1))),)


# -- functions (the Value methods) ---------------------------------------------------------
@elementwise("exp", 1, math.exp, np.exp, spell("math.exp", "np.exp", "torch.exp"),
             ("exp: d(exp {x})/d{x} = {out}",), method="exp", fresh=True)
def _exp(e, x, *, out, g, k):
    return (e.mul(g, out),)


@elementwise("log", 1, math.log, np.log, spell("math.log", "np.log", "torch.log"),
             ("log: d(log {x})/d{x} = 1 / {x}",), method="log", fresh=True)
def _log(e, x, *, out, g, k):
    return (e.div(g, x),)


@elementwise("tanh", 1, math.tanh, np.tanh, spell("math.tanh", "np.tanh", "torch.tanh"),
             ("tanh: 1 - {out}**2",), method="tanh", fresh=True)
def _tanh(e, x, *, out, g, k):
    return (e.mul(g, e.sub(e.const(1.0), e.mul(out, out))),)


@elementwise("relu", 1, mathfn.relu, lambda x: np.maximum(x, 0.0),
             spell(Format("max({0}, 0.0)", ATOM, (0,)), Format("np.maximum({0}, 0.0)", ATOM, (0,)), "torch.relu"),
             ("relu: 1 where {out} > 0, else 0",), method="relu", fresh=True)
def _relu(e, x, *, out, g, k):
    return (e.mul(g, e.step(out)),)


@elementwise("sigmoid", 1, mathfn.sigmoid, mathfn.np_sigmoid,
             spell(call("_sigmoid", "_sigmoid"), call("_np_sigmoid", "_np_sigmoid"), "torch.sigmoid"),
             ("sigmoid: {out} * (1 - {out})",), method="sigmoid", fresh=True)
def _sigmoid(e, x, *, out, g, k):
    return (e.mul(g, e.mul(out, e.sub(e.const(1.0), out))),)


@elementwise("abs", 1, abs, np.abs, spell("abs", "np.abs", "torch.abs"),
             ("abs: d|{x}|/d{x} = sign({x}), 0 at 0",), method="abs", fresh=True)
def _abs(e, x, *, out, g, k):
    return (e.mul(g, e.sign(x)),)


@elementwise("sin", 1, math.sin, np.sin, spell("math.sin", "np.sin", "torch.sin"),
             ("sin: d(sin {x})/d{x} = cos {x}",), method="sin", fresh=True)
def _sin(e, x, *, out, g, k):
    return (e.mul(g, e.cos(x)),)


@elementwise("cos", 1, math.cos, np.cos, spell("math.cos", "np.cos", "torch.cos"),
             ("cos: d(cos {x})/d{x} = -sin {x}",), method="cos", fresh=True)
def _cos(e, x, *, out, g, k):
    return (e.mul(g, e.neg(e.sin(x))),)


# -- used by rules only ------------------------------------------------------------------
@elementwise("step", 1, mathfn.step, lambda x: (x > 0.0).astype(float),
             spell(Format("float({0} > 0.0)", ATOM, (0,)), Format("({0} > 0.0).astype(float)", ATOM, (0,)),
                   Format("({0} > 0.0).to({0}.dtype)", ATOM, (ATOM,))),  # a float mask, as the IR says
             ("step: derivative 0 (almost everywhere)",))
def _step(e, x, *, out, g, k):
    return (None,)


@elementwise("sign", 1, mathfn.sign, np.sign,
             spell(Format("float({0} > 0.0) - float({0} < 0.0)", ADD, (0,)), "np.sign", "torch.sign"),
             ("sign: derivative 0 (almost everywhere)",), fresh=True)
def _sign(e, x, *, out, g, k):
    return (None,)


@elementwise("copy", 1, lambda x: x, lambda x: x, everywhere(Format("{0}", ATOM, (0,))),
             ("copy: d({a})/d{a} = 1",))
def _copy(e, x, *, out, g, k):
    return (g,)


# -- arrays --------------------------------------------------------------------------------
# these depend on the node's shape (batched or not): see gradgen.ir.interp
op("elem", 1, attr="index", shape=S.elem)  # reverse mode gathers its adjoints itself


@op("pack", -1, attr="layout", shape=S.pack, comments=("pack: each piece gets its slice of g",), fresh=True)
def _pack(e, *pieces, out, g, k):
    _, _, indices = k
    return tuple(e.elem(g, idx) for idx in indices)


@op("sum", 1, attr="axes", shape=S.sum_, comments=("sum: every summed element gets g",), fresh=True)
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


@op("expand", 1, attr="axes", shape=S.expand, comments=("expand: sum over the inserted axes",))
def _expand(e, x, *, out, g, k):
    return (e.sum(g, k),)


@op("bcast", 1, attr="shape", shape=S.bcast, comments=("bcast: sum over the broadcast axes",), fresh=True)
def _bcast(e, x, *, out, g, k):
    return (g,)  # reverse mode sums it down to x's shape


@op("matmul", 2, array=operator.matmul, shape=S.matmul,
    spell=dict(numpy=infix("@", MUL), torch=infix("@", MUL)),
    comments=("matmul: d({a} @ {b})/d{a} = g @ {b}.T", "matmul: d({a} @ {b})/d{b} = {a}.T @ g"),
    fresh=True)
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


@op("transpose", 1, array=lambda x: x.T, shape=S.transpose,
    spell=dict(numpy=Format("{0}.T", ATOM, (ATOM,)), torch=Format("{0}.T", ATOM, (ATOM,))),
    comments=("transpose: d({a}.T)/d{a} = g.T",))
def _transpose(e, a, *, out, g, k):
    return (e.transpose(g),)


op("batch", 0, differentiable=False)


# -- the tables built from the declarations ------------------------------------------------
class _OpEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


Op = _OpEnum("Op", [(name.upper(), name) for name in _DECLARED], module=__name__, qualname="Op")
Op.__doc__ = "The closed set of IR ops, one member per registry entry: `Op.TANH`, `Op('tanh')`."

OPS: dict[Op, OpInfo] = {Op(name): OpInfo(**decl) for name, decl in _DECLARED.items()}
RULES: dict[Op, Rule] = {o: Rule(info.comments, info.rule) for o, info in OPS.items() if info.rule is not None}
METHODS: dict[str, Op] = {info.method: o for o, info in OPS.items() if info.method}

_missing = [o for o, info in OPS.items() if info.differentiable and o not in RULES and o is not Op.ELEM]
assert not _missing, f"ops without a derivative rule: {_missing}"


def spelling(o: Op, backend: str) -> Format | None:
    """How `backend` writes the elementwise or matrix op `o` (None: a structural op)."""
    return OPS[o].spell.get(backend)


def evaluate(o: Op, args, attr=None):
    """Apply `o` to float arguments with the IR's semantics."""
    return OPS[o].evaluate(*args, attr)
