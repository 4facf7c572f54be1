"""Differential fuzzing, time-bounded: compiled code vs the interpreted engine.

`GRADGEN_FUZZ_SECONDS` (default 40) is the total budget, half for scalar
programs, half for MLPs; `GRADGEN_FUZZ_SEED` (default 8) the first seed.
Each program gets its own seed (`seed + index`), so a run is deterministic
up to how many programs fit in the budget; `-s` shows the seed and counts.
On a mismatch the test prints a reproducer (the model source and the point)
and fails.

* Scalar programs: random DAGs (each node takes its arguments from all
  earlier nodes, so fan-out and repeated subexpressions are common) over
  `+ - * / ** tanh exp log relu sigmoid`, unary `-` and constants, extreme
  ones included (+-0.0, 5e-324, 1e308, inf, nan), written as a model file;
  `gradgen.compile_function` compiles it, and `f` and `f_grad` are compared
  with the engine (`Value`s and `backward()`) at random points, extreme
  values included.  The comparison is bit for bit (every NaN equals every
  NaN; a value's zero sign counts); both raising counts as agreement when
  the exception class is the same.  Anything else is a mismatch unless
  `DOCUMENTED` below names it.
* MLPs: random shapes (nin 1-4, 1-3 layers, widths 1-5), micrograd's and
  the lecture's networks and a lone `Neuron`, the losses of
  `tests/test_mlp.py`, with or without L2 over all parameters or one
  layer's weights, as `gradgen.mean` (called with B = 1..7) or micrograd's
  plain list of 1-4 examples; compiled vs engine to 1e-9 relative (re-rolled
  code sums in another order), every gradient a float64 array of its
  parameter's shape.

Every program's nodes reach its output (the sum of the nodes nobody
reads): dead code is not fuzzed (see DOCUMENTED["dead code"]).
"""

from __future__ import annotations

import math
import os
import random
import struct
import time
from dataclasses import dataclass, field

import numpy as np

import gradgen
from gradgen import Value, nn
from gradgen.engine import topological_order
from support import load_function
from test_mlp import LOSSES, REL, Case, Loss, Setup, assert_close, engine, forward, make_mlp

SECONDS = float(os.environ.get("GRADGEN_FUZZ_SECONDS", "40"))
SEED = int(os.environ.get("GRADGEN_FUZZ_SEED", "8"))
TINY = 2.2250738585072014e-308  # the smallest normal float

# Where compiled code may differ from the engine: the one list (README "Guarantees").
DOCUMENTED = {
    "dead code": "a value the output does not use is not computed, so an error in it (log of a "
    "negative number, say) does not raise",
    "zero gradient sign": "a zero gradient may be -0.0 where the engine has 0.0: the engine's .grad "
    "starts at 0.0 and adds, so it never holds -0.0 (a zero's sign changes no other number)",
    "x**0": "the gradient of x**0 is 0; the engine computes 0 * x**-1 * g, which raises "
    "(ZeroDivisionError at x = 0, OverflowError for a subnormal x) and is nan where x or g is inf or nan",
    "gradient sums": "a value used three or more times, or a subexpression written twice (CSE merges "
    "it), has its gradient contributions summed in another order or grouping than the engine's: "
    "equal up to rounding (1e-12 of the sum of their magnitudes), and with extreme values one "
    "order can overflow or underflow where the other does not",
    "underflow": "in a gradient, 2**j * (c * y) is computed as (2**j * c) * y (the L2 term's "
    "0.0002 * W0): where the engine's c * y underflows (is subnormal), the compiled result is "
    "rounded once and can differ in its last bits",
    "first error": "where a program meets several errors, compiled code may raise another one first: "
    "a value inlined into a later line is computed after values that have lines of their own, and "
    "the backward runs the chain-rule steps in another order than the engine",
    "x / 0": "dividing by the constant 0 is refused at compile time (GradgenError); the engine raises "
    "ZeroDivisionError at every point",
    "complex": "a negative number to a fractional power is a complex number in Python (engine and "
    "compiled code alike); folding assumes floats, so a complex result can differ where it has an "
    "infinite part (2.0 * z is not z + z: 0 * inf is nan)",
    "numpy": "array code (re-rolled MLPs) sums in another order (BLAS) and so agrees to rounding; "
    "NumPy gives inf or nan with a RuntimeWarning where the engine raises OverflowError or "
    "ZeroDivisionError",
}

# Open bugs the fuzzer knows: it draws those forms but skips them (GRADGEN_FUZZ_KNOWN_BUGS=run to
# see them fail).  A new entry needs a matching test in known_bug() and an issue.
KNOWN_BUGS: dict[str, str] = {}  # none open: both bugs of issue 8 are fixed (one-element arrays, bool gradients)
RUN_KNOWN_BUGS = os.environ.get("GRADGEN_FUZZ_KNOWN_BUGS") == "run"


def known_bug(spec) -> str | None:
    """The KNOWN_BUGS entry an MLP spec hits, if any."""
    relu_out = spec.kind == "neuron" and spec.act == "relu" and spec.nonlin
    if "np.bool_ gradient" in KNOWN_BUGS and relu_out and spec.loss == "output" and spec.form == "plain":
        return "np.bool_ gradient"
    widths = (spec.nin,) + spec.nouts
    one_weight = any(a == b == 1 for a, b in zip(widths, widths[1:]))  # a weight array of one element
    if "one-element array" in KNOWN_BUGS and (
        (spec.form == "plain" and spec.n == 1)
        or spec.reg == "layer"
        or (spec.reg == "all" and one_weight)
        or (spec.form == "plain" and spec.loss == "output" and spec.kind != "neuron")
    ):
        return "one-element array"
    return None


def _budget(share: float) -> float:
    return time.monotonic() + SECONDS * share


# -- scalar programs --------------------------------------------------------------------------

CONSTS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, -1.5, 0.25, 4.0, 1e-4, 1e308, -1e308, 5e-324, 1e-300, 1e300,
          1e154, math.inf, -math.inf, math.nan]  # fmt: skip
EXPONENTS = [2, 3, -1, 0.5, 0, 1, -2, 1.5, 4]
EXTREMES = [0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1e-310, TINY, 1e-300, 1e-160, 1e154, 1e300, 1e308, -1e308,
            709.0, 710.0, -745.0, math.inf, -math.inf, math.nan, 2.0, 0.5]  # fmt: skip
UNARY = ["neg", "tanh", "exp", "log", "relu", "sigmoid", "pow"]
BINARY = ["+", "-", "*", "/"]


def literal(c: float) -> str:
    if math.isnan(c):
        return "math.nan"
    if math.isinf(c):
        return "math.inf" if c > 0 else "(-math.inf)"
    return repr(c) if math.copysign(1.0, c) > 0 else f"({c!r})"


@dataclass
class Program:
    """A scalar DAG: node k < n_in is input x<k>; then (op, args, attr, inline), args index nodes or are floats."""

    n_in: int
    nodes: list = field(default_factory=list)

    def sinks(self, keep=None) -> list[int]:
        keep = range(self.n_in, self.n_in + len(self.nodes)) if keep is None else keep
        read = {a for k in keep for a in self.nodes[k - self.n_in][1] if isinstance(a, int)}
        return [k for k in keep if k not in read]

    def needs(self, k: int) -> set[int]:
        out, stack = set(), [k]
        while stack:
            i = stack.pop()
            if i >= self.n_in and i not in out:
                out.add(i)
                stack.extend(a for a in self.nodes[i - self.n_in][1] if isinstance(a, int))
        return out

    def source(self, keep=None) -> str:
        keep = sorted(range(self.n_in, self.n_in + len(self.nodes)) if keep is None else keep)
        text = {i: f"x{i}" for i in range(self.n_in)}
        lines = []
        for k in keep:
            op, args, attr, inline = self.nodes[k - self.n_in]
            a = [text[x] if isinstance(x, int) else literal(x) for x in args]
            if op in BINARY:
                expr = f"{a[0]} {op} {a[1]}"
            elif op == "neg":
                expr = f"-{a[0]}"
            elif op == "pow":
                expr = f"{a[0]} ** {attr!r}"
            else:
                expr = f"{a[0]}.{op}()"
            if inline:
                text[k] = f"({expr})"
            else:
                text[k] = f"v{k}"
                lines.append(f"    v{k} = {expr}")
        lines.append("    return " + " + ".join(text[k] for k in self.sinks(keep)))
        params = ", ".join(f"x{i}" for i in range(self.n_in))
        return f"import math\n\n\ndef f({params}):\n" + "\n".join(lines) + "\n"

    def has_pow0(self, keep=None) -> bool:
        return any(op == "pow" and attr == 0 for op, _, attr, _ in self.nodes)


def draw_program(r: random.Random) -> Program:
    p = Program(r.randint(1, 4))
    for _ in range(r.randint(1, 10)):
        n = p.n_in + len(p.nodes)
        if p.nodes and r.random() < 0.15:  # a subexpression written again (CSE merges it)
            op, args, attr, _ = r.choice(p.nodes)
            p.nodes.append((op, args, attr, r.random() < 0.5))
            continue
        # any earlier node (fan-out and sharing), or often the latest one (chains: k * (c * y))
        node = lambda: n - 1 if r.random() < 0.35 else r.randrange(n)  # noqa: E731
        if r.random() < 0.1:  # constants around an inline product: k * (c * y), (y * c) * k
            inner = [node(), r.choice(CONSTS)][:: r.choice([1, -1])]
            p.nodes.append(("*", inner, None, True))
            p.nodes.append(("*", [n, r.choice(CONSTS)][:: r.choice([1, -1])], None, r.random() < 0.5))
            continue
        if r.random() < 0.4:
            op = r.choice(UNARY)
            p.nodes.append((op, [node()], r.choice(EXPONENTS) if op == "pow" else None, r.random() < 0.5))
        else:
            args = [node(), node()]
            if r.random() < 0.4:
                args[r.randrange(2)] = r.choice(CONSTS) if r.random() < 0.7 else r.uniform(-4, 4)
            p.nodes.append((r.choice(BINARY), args, None, r.random() < 0.5))
    return p


def draw_point(r: random.Random, n: int) -> list[float]:
    mode = r.random()
    if mode < 0.3:
        return [r.uniform(-3, 3) for _ in range(n)]
    if mode < 0.5:
        return [r.choice([r.uniform(0.1, 3), r.uniform(-3, 3)]) for _ in range(n)]
    return [r.choice(EXTREMES) if r.random() < 0.6 else r.uniform(-3, 3) for _ in range(n)]


def bits(v):
    if isinstance(v, complex):
        return ("complex", bits(v.real), bits(v.imag))
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return struct.pack("<d", v) if isinstance(v, float) else repr(v)


def grad_bits(v):
    return bits(0.0) if v == 0 and not isinstance(v, complex) else bits(v)  # zero sign ignored


@dataclass
class Run:
    raised: str | None = None  # exception class, if any
    where: str | None = None  # "forward" or "backward" (engine)
    value: object = None
    grads: list | None = None


def engine_run(fn, xs) -> tuple[Run, object, list]:
    """(the engine's outcome, its output Value, its input Values)."""
    vs = [Value(x) for x in xs]
    try:
        out = fn(*vs)
    except Exception as e:  # noqa: BLE001 -- the class is what is compared
        return Run(type(e).__name__, "forward"), None, vs
    try:
        out.backward()
    except Exception as e:  # noqa: BLE001
        return Run(type(e).__name__, "backward", out.data), out, vs
    return Run(None, None, out.data, [v.grad for v in vs]), out, vs


def compiled_run(call, *xs) -> Run:
    try:
        got = call(*xs)
    except Exception as e:  # noqa: BLE001
        return Run(type(e).__name__)
    if isinstance(got, tuple):
        return Run(None, None, got[0], list(got[1]))
    return Run(None, None, got)


def _key(v, keys):
    """A structural key of an engine node, after the aliasing fold does (x * 1, -0.0 + x, x ** 1)."""
    if v._const or not v._prev:
        return ("const", bits(v.data)) if v._const else ("leaf", id(v))
    kids = [keys[id(c)] for c in v._prev]
    consts = [c.data for c in v._prev if c._const]
    others = [k for c, k in zip(v._prev, kids) if not c._const]
    if len(others) == 1 and len(consts) == 1:
        c, (k,) = consts[0], others
        if (v._op == "+" and c == 0.0) or (v._op == "*" and c == 1.0):
            return k  # folded away: the node is its argument
        if v._op == "*" and c == -1.0:
            return k[1] if k[0] == "neg" else ("neg", k)  # -x, and -(-x) -> x
    if v._op == "**1":
        return kids[0]
    if v._op in ("+", "*"):
        kids.sort(key=repr)
    return (v._op, tuple(kids))


def regroups(out) -> bool:
    """The engine graph has a value with 3+ gradient contributions, or two equal subexpressions.

    Equal up to the fold's aliasing: `(-0.0 + x) * y` reads x, so it may merge with `x * y`.
    """
    keys: dict[int, tuple] = {}
    seen: set = set()
    uses: dict[tuple, int] = {}
    for v in topological_order(out):
        k = keys[id(v)] = _key(v, keys)
        if not v._prev or v._const or (len(v._prev) == 1 and k == keys[id(v._prev[0])]):
            continue
        if any(k == keys[id(c)] for c in v._prev):
            continue  # an alias of its argument: no node of its own
        if k in seen:
            return True
        seen.add(k)
        for c in v._prev:
            if not c._const:
                uses[keys[id(c)]] = uses.get(keys[id(c)], 0) + 1
    return any(n >= 3 for n in uses.values())


def _locals(v):
    """The engine's local derivative of v with respect to each argument (its _backward formulas)."""
    a = v._prev
    if v._op == "+":
        return [1.0, 1.0]
    if v._op == "*":
        return [a[1].data, a[0].data]
    if v._op.startswith("**"):
        k = float(v._op[2:])  # the engine's op is f"**{k}"
        return [k * a[0].data ** (k - 1)]
    out = v.data
    return [{"tanh": lambda: 1.0 - out * out, "exp": lambda: out, "log": lambda: 1.0 / a[0].data,
             "ReLU": lambda: float(out > 0), "sigmoid": lambda: out * (1.0 - out)}[v._op]()]  # fmt: skip


def audit(out, xs_values) -> tuple[list | None, bool]:
    """(magnitude of each input's gradient computation, did a gradient contribution underflow).

    The magnitude T_x is the engine's backward run on absolute values (|local| * T_parent summed),
    which bounds any regrouping's rounding error by about n * eps * T_x; None where some T is
    near overflow or underflow (a regrouped partial sum could overflow or underflow there).
    """
    T: dict[int, float] = {id(out): 1.0}
    under = False
    try:
        for v in reversed(topological_order(out)):
            t = T.get(id(v), 0.0)
            if not v._prev:
                continue
            for c, loc in zip(v._prev, _locals(v)):
                T[id(c)] = T.get(id(c), 0.0) + abs(loc) * t
                contribution = loc * v.grad
                if loc != 0 and v.grad != 0 and math.isfinite(loc) and math.isfinite(v.grad) and abs(contribution) < TINY:
                    under = True
    except (ArithmeticError, ValueError, TypeError):
        return None, True
    if any(not (m == 0.0 or 1e-290 < m < 1e300) for m in T.values()):
        return None, under  # a regrouped sum could over- or underflow: no bound
    return [T.get(id(x), 0.0) for x in xs_values], under


@dataclass
class Mismatch:
    what: str
    source: str
    point: list
    engine: Run
    compiled: Run

    def __str__(self):
        return (
            f"{self.what}\n--- model.py\n{self.source}--- at {self.point!r}\n"
            f"engine:   {self.engine}\ncompiled: {self.compiled}"
        )


def compare(fn, mod, point, prog_has_pow0, source) -> tuple[list[Mismatch], str | None]:
    """Mismatches at `point`, and which documented exception excused a difference (if one did)."""
    e, out, vs = engine_run(fn, point)
    f = compiled_run(mod.f, *point)
    g = compiled_run(mod.f_grad, *point)
    found, excused = [], None
    if isinstance(e.value, complex) or any(isinstance(v, complex) for v in e.grads or []):
        return found, "complex"  # not floats: the folds' arguments do not hold
    # the forward function: the engine's forward outcome, bit for bit
    e_fwd = e.raised if e.where == "forward" else None
    if f.raised and e_fwd and f.raised != e_fwd:
        excused = "first error"  # both raise: another of the program's errors first
    elif (f.raised or e_fwd) and f.raised != e_fwd:
        found.append(Mismatch("f raises differently", source, point, e, f))
    elif not f.raised and bits(f.value) != bits(e.value):
        found.append(Mismatch("f value", source, point, e, f))
    if e.where == "forward" or e.where == "backward":
        if e.where == "forward" and g.raised and g.raised != e.raised:
            excused = "first error"  # f_grad names other values than f: another error first
        elif g.raised != e.raised:
            if e.where == "backward" and prog_has_pow0 and g.raised is None:
                excused = "x**0"
            elif e.where == "backward" and g.raised and not f.raised:
                excused = "first error"  # both backward passes raise, another error first
            else:
                found.append(Mismatch("f_grad raises differently", source, point, e, g))
        return found, excused
    if g.raised:
        found.append(Mismatch("f_grad raises, the engine does not", source, point, e, g))
        return found, excused
    if bits(g.value) != bits(e.value):
        found.append(Mismatch("f_grad value", source, point, e, g))
    if [grad_bits(v) for v in g.grads] == [grad_bits(v) for v in e.grads]:
        return found, excused
    mags, under = audit(out, vs)
    if regroups(out):
        if mags is None:
            return found, "gradient sums"  # extreme values regrouped: not compared
        ok = all(
            grad_bits(c) == grad_bits(w) or abs(c - w) <= 1e-12 * m
            for c, w, m in zip(g.grads, e.grads, mags)
            if not isinstance(c, complex)
        )
        if ok:
            return found, "gradient sums"
    if prog_has_pow0:
        return found, "x**0"
    if under:
        return found, "underflow"
    found.append(Mismatch("f_grad gradient", source, point, e, g))
    return found, excused






def check_program(prog: Program, r: random.Random, directory, keep=None, points=None):
    """(mismatches, excuses, points tried) for one program."""
    source = prog.source(keep)
    fn = load_function(source, directory, "fuzz")
    try:
        mod = gradgen.compile_function(fn)
    except gradgen.GradgenError as e:
        pt = draw_point(r, prog.n_in)
        if "division by the constant zero" in str(e) and engine_run(fn, pt)[0].raised:
            return [], ["x / 0"], [pt]  # refused at compile time; the engine raises at run time
        return [Mismatch(f"compile error: {e}", source, pt, Run(), Run())], [], []
    pts = points or [draw_point(r, prog.n_in) for _ in range(6)]
    found, excuses = [], []
    for pt in pts:
        ms, ex = compare(fn, mod, pt, prog.has_pow0(keep), source)
        found += ms
        if ex:
            excuses.append(ex)
    return found, excuses, pts


def shrink(prog: Program, r, directory, point):
    """The smallest one-output slice of `prog` that still mismatches at `point` (or the whole)."""
    best = None
    for s in prog.sinks():
        keep = prog.needs(s)
        found, _, _ = check_program(prog, r, directory, keep, [point])
        if found and (best is None or len(keep) < len(best[0])):
            best = (keep, found[0])
    return best


def test_fuzz_scalar_programs_against_the_engine(tmp_path):
    """Random scalar programs at random and extreme points: compiled == engine, bit for bit, up to DOCUMENTED."""
    deadline = _budget(0.5)
    tried = points = 0
    excuses: dict[str, int] = {}
    failures = []
    while time.monotonic() < deadline or tried == 0:
        seed = SEED + tried
        r = random.Random(seed)
        prog = draw_program(r)
        found, ex, pts = check_program(prog, r, tmp_path)
        tried += 1
        points += len(pts)
        for x in ex:
            excuses[x] = excuses.get(x, 0) + 1
        if found:
            small = shrink(prog, r, tmp_path, found[0].point) if found[0].point else None
            failures.append((seed, small[1] if small else found[0]))
            if len(failures) >= 5:
                break
    print(f"\nscalar fuzz: seed {SEED}, {tried} programs, {points} points, documented differences: {excuses}")
    for seed, m in failures:
        print(f"\n=== mismatch (program seed {seed}): {m}")
    assert not failures, f"{len(failures)} mismatches (reproducers above, run with -s)"


# -- MLPs ---------------------------------------------------------------------------------------

# test_mlp's losses, and the network's output itself (relu's step is the whole gradient of b)
FUZZ_LOSSES = {
    **LOSSES,
    "output": Loss(lambda net: lambda x, yi: forward(net, x), None, LOSSES["squared"].targets),
}
# loss -> the last layer's widths it can take
LOSS_WIDTH = {"svm": (1,), "squared": (1,), "sigmoid_bce": (1,), "softmax_ce": (2, 3, 4, 5), "tanh_gate": (2,),
              "output": (1,)}  # fmt: skip


@dataclass(frozen=True)
class MLPSpec:
    kind: str  # "micrograd", "lecture" (MLPs) or "neuron"
    nin: int
    nouts: tuple
    loss: str
    reg: str  # "none", "all", "layer"
    form: str  # "mean" or "plain"
    n: int  # plain: the number of examples
    act: str = "relu"  # neuron: its activation
    nonlin: bool = True
    seed: int = 0

    def __str__(self):
        return (
            f"MLPSpec(kind={self.kind!r}, nin={self.nin}, nouts={self.nouts}, loss={self.loss!r}, reg={self.reg!r}, "
            f"form={self.form!r}, n={self.n}, act={self.act!r}, nonlin={self.nonlin}, seed={self.seed})"
        )


def draw_mlp(r: random.Random, seed: int) -> MLPSpec:
    kind = r.choice(["micrograd", "lecture", "micrograd", "neuron"])
    nin = r.randint(1, 4)
    loss = r.choice(sorted(LOSS_WIDTH))
    if kind == "neuron":
        loss = r.choice(["svm", "squared", "sigmoid_bce", "output"])
        nouts = (1,)
    else:
        nouts = tuple(r.randint(1, 5) for _ in range(r.randint(0, 2))) + (r.choice(LOSS_WIDTH[loss]),)
    form = r.choice(["mean", "mean", "plain"])
    return MLPSpec(
        kind, nin, nouts, loss, r.choice(["none", "all", "layer"]), form, r.randint(1, 4),
        r.choice(["relu", "tanh"]), r.random() < 0.8, seed,
    )  # fmt: skip


class _AsLayers:
    """A lone Neuron seen as a one-layer network by test_mlp's `forward`."""

    def __init__(self, neuron):
        self.layers = [neuron]


def build(spec: MLPSpec):
    """(model, per-example loss, exported loss, X, y)."""
    if spec.kind == "neuron":
        random.seed(spec.seed)
        model = nn.Neuron(spec.nin, nonlin=spec.nonlin, act=spec.act)
        rng = np.random.RandomState(spec.seed)
        gradgen.params.write(model, {k: rng.uniform(-1, 1, a.shape) for k, a in gradgen.params.read(model).items()})
        net = _AsLayers(model)
        reg_params = lambda: model.w  # noqa: E731
    else:
        model = make_mlp(spec.nin, list(spec.nouts), spec.kind, spec.seed)
        net = model
        j = spec.seed % len(model.layers)
        reg_params = lambda: [w for n in model.layers[j].neurons for w in n.w]  # noqa: E731
    per_example = FUZZ_LOSSES[spec.loss].value(net)
    rng = np.random.RandomState(spec.seed + 1)
    rows = 7 if spec.form == "mean" else spec.n
    X = rng.randn(rows, spec.nin)
    y = FUZZ_LOSSES[spec.loss].targets(rng, rows, spec.nouts[-1])

    def reg():
        if spec.reg == "all":
            return 1e-4 * sum(p * p for p in model.parameters())
        return 1e-4 * sum(p * p for p in reg_params())

    if spec.form == "mean":

        def loss(X, y):
            data_loss = gradgen.mean(per_example, X, y)
            return data_loss if spec.reg == "none" else data_loss + reg()

        example = dict(X=X[:1], y=y[:1])
    else:

        def loss(X, y):
            inputs = [list(map(Value, xrow)) for xrow in X]
            losses = [per_example(x, yi) for x, yi in zip(inputs, y)]
            data_loss = sum(losses) * (1.0 / len(losses))
            return data_loss if spec.reg == "none" else data_loss + reg()

        example = dict(X=X, y=y)
    return model, gradgen.export(example=example, params=model)(loss), X, y


def check_mlp(spec: MLPSpec, r: random.Random) -> list[str]:
    model, loss, X, y = build(spec)
    try:
        mod = gradgen.compile_function(loss, check=True)
    except Exception as e:  # noqa: BLE001 -- a crash is a finding
        return [f"compile: {type(e).__name__}: {e}"]
    params = gradgen.params.read(model)
    s = Setup(Case("fuzz", spec.nin, spec.nouts, spec.kind, spec.loss), model, params, X, y, loss, mod)
    problems = []
    sizes = sorted({r.randint(1, 7), r.randint(1, 7)}) if spec.form == "mean" else [spec.n]
    for B in sizes:
        Xb, yb = X[:B], y[:B]
        try:
            got = mod.loss_grad(*params.values(), Xb, yb)
            value_only = mod.loss(*params.values(), Xb, yb)
        except Exception as e:  # noqa: BLE001
            problems.append(f"B={B}: compiled raises {type(e).__name__}: {e}")
            continue
        want = engine(s, Xb, yb)
        try:
            assert_close(got, want, f"B={B}: compiled vs engine", rel=REL)
            assert np.isclose(value_only, got[0], rtol=1e-12, atol=0.0), "f vs f_grad value"
        except AssertionError as e:
            problems.append(str(e).splitlines()[0])
        for k, (gk, p) in enumerate(zip(got[1], params.values())):
            if np.asarray(gk).dtype != np.float64 or np.shape(gk) != p.shape:
                problems.append(f"B={B}: gradient {k} is {type(gk).__name__} {np.asarray(gk).dtype} {np.shape(gk)}")
    return problems


def test_fuzz_mlps_against_the_engine():
    """Random MLP shapes, losses, L2 terms and batch forms: compiled == engine to 1e-9, float64 gradients."""
    deadline = _budget(0.5)
    tried = 0
    skipped: dict[str, int] = {}
    failures = []
    while time.monotonic() < deadline or tried == 0:
        seed = SEED + tried
        tried += 1
        r = random.Random(seed)
        spec = draw_mlp(r, seed)
        bug = known_bug(spec)
        if bug and not RUN_KNOWN_BUGS:
            skipped[bug] = skipped.get(bug, 0) + 1
            continue
        problems = check_mlp(spec, r)
        if problems:
            failures.append((spec, bug, problems))
            if len(failures) >= (50 if RUN_KNOWN_BUGS else 5):
                break
    print(f"\nMLP fuzz: seed {SEED}, {tried} networks, skipped as KNOWN_BUGS: {skipped}")
    for spec, bug, problems in failures:
        print(f"\n=== mismatch: {spec}" + (f" (KNOWN_BUGS[{bug!r}])" if bug else ""))
        print("    rebuild with tests/test_fuzz.py: build(" + str(spec) + ")")
        for p in problems[:4]:
            print("    " + p)
    assert not failures, f"{len(failures)} MLP mismatches (reproducers above, run with -s)"
