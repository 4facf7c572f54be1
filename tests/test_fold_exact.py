"""Every fold rewrite keeps every value, at extreme floats: one hypothesis property per rule.

Each property builds the small IR graph a rule applies to (constants and
inputs drawn from extreme floats: subnormals, +-0.0, +-inf, nan, values
near 1e308 and 5e-324), runs `fold`, checks that the rule fired (or, for a
negative case, that it did not), and evaluates the graph before and after
the rewrite, both with the IR interpreter (`gradgen.ir.interp`, Python
floats) and through the emitted scalar code.  The results must have equal
bits (every NaN equal to every NaN, the sign of a zero counts), or both
raise the same exception, unless the original graph *underflowed*, the one
exception `gradgen.passes.fold` documents (its rule marked (*)):

* a node underflows when its exact result is nonzero but the rounded one is
  subnormal or zero (for `mul`: both arguments nonzero and finite, result
  smaller than 2**-1022 in magnitude);
* a node overflows when its arguments are finite and its result is inf or
  nan.  No rule needs this excuse: the properties assert that an overflow
  in the original is an overflow after the rewrite too.

The regression cases at the end are the issue's examples, compiled end to
end and compared with the engine; each failed before the fix.
"""

from __future__ import annotations

import math
import struct
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gradgen
from gradgen import mathfn
from gradgen.engine import Value
from gradgen.ir.graph import Builder, Graph
from gradgen.ir.interp import node_values
from gradgen.ir.ops import Op
from gradgen.ir.printer import format_graph
from gradgen.ir.verify import verify
from gradgen.passes import fold
from support import arg, run_emitted

TINY = sys.float_info.min  # 2**-1022, the smallest normal float
SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, TINY, -TINY, 1e-310, 1e308, -1e308,
           sys.float_info.max, -sys.float_info.max, 1.0, -1.0, 0.5, 3.0, 1e-4, 2.0 ** -1074 * 3]  # fmt: skip

extreme = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.floats(1e300, sys.float_info.max) | st.floats(-sys.float_info.max, -1e300),
    st.floats(-1e-300, 1e-300, allow_subnormal=True),
)
# powers of two other than +-1 (x * 1 and x * -1 have rules of their own)
pow2 = st.builds(lambda j, s: s * math.ldexp(1.0, j), st.integers(-1074, 1023).filter(bool), st.sampled_from([1.0, -1.0]))
not_one = extreme.filter(lambda c: c not in (1.0, -1.0))
PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def bits(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return struct.pack("<d", v) if isinstance(v, float) else repr(v)


def interp(graph: Graph, point) -> tuple:
    try:
        vals = node_values(graph, list(point))
    except (ArithmeticError, ValueError) as e:
        return ("raises", type(e).__name__), None
    return bits(vals[graph.output("value")]), vals


def emitted(graph: Graph, point):
    fn, _ = run_emitted(graph, "value")
    try:
        return bits(fn(*point))
    except (ArithmeticError, ValueError) as e:
        return ("raises", type(e).__name__)


def underflowed(graph: Graph, vals) -> bool:
    """Some node's exact result is nonzero while the rounded one is subnormal or zero."""
    for n in graph.nodes:
        if n.op is not Op.MUL or vals is None:
            continue
        a, b = (vals[i] for i in n.args)
        nonzero = all(isinstance(v, float) and math.isfinite(v) and v != 0.0 for v in (a, b))
        if nonzero and abs(vals[n.id]) < TINY:
            return True
    return False


def overflowed(graph: Graph, vals) -> bool:
    """Some node's arguments are finite and its result is inf or nan."""
    for n in graph.nodes:
        if vals is None or not n.args or not isinstance(vals[n.id], float):
            continue
        args = [vals[i] for i in n.args]
        if all(math.isfinite(v) for v in args) and not math.isfinite(vals[n.id]):
            return True
    return False


def assert_same(before: Graph, point, *, fired, may_underflow=False) -> Graph:
    """fold(before) has `fired`'s shape; its values equal before's at `point` (interpreter and emitted)."""
    after = verify(fold(before))
    assert fired(after), format_graph(after)
    want, vals = interp(before, point)
    got, _ = interp(after, point)
    if want != got:
        assert may_underflow and underflowed(before, vals), (point, want, got, format_graph(after))
    else:
        assert emitted(before, point) == want
    # the emitted code computes what the interpreter does, before and after
    assert emitted(after, point) == got
    return after


def ops(graph: Graph) -> list[str]:
    return [n.op.value for n in graph.nodes if n.op not in (Op.INPUT, Op.CONST)]


def live_ops(graph: Graph) -> list[str]:
    from gradgen.passes import dce

    return ops(dce(graph))


class G:
    """`g = G("x")`: a Builder with inputs; `g.mul(a, b, rule=...)`; `g.graph(out)`."""

    def __init__(self, *names):
        self.b = Builder("f")
        self.ins = [arg(self.b, n) for n in names]

    def c(self, v):
        return self.b.const(v)

    def op(self, op, *args, attr=None, **meta):
        return self.b.add(Op(op), args, attr, **meta)

    def graph(self, out) -> Graph:
        return verify(self.b.build(self.ins, [("value", out)]))


# -- constant folding ------------------------------------------------------------------------

UNARY = [("neg", None), ("exp", None), ("log", None), ("tanh", None), ("relu", None), ("sigmoid", None),
         ("step", None), ("pow", 2), ("pow", 3), ("pow", -1), ("pow", 0.5), ("pow", 0), ("pow", -2.5)]  # fmt: skip
BINARY = ["add", "sub", "mul", "div"]
ENGINE = {
    "neg": lambda a: -a, "exp": lambda a: a.exp(), "log": lambda a: a.log(), "tanh": lambda a: a.tanh(),
    "relu": lambda a: a.relu(), "sigmoid": lambda a: a.sigmoid(), "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
}  # fmt: skip


def engine_op(op, k, *xs):
    """What the engine computes for op(xs): a number, or ("raises", exception name)."""
    try:
        if op == "step":
            return mathfn.step(*xs)  # relu's local derivative, as the engine writes it
        if op == "div":
            return xs[0] / xs[1]  # the rules' division (log's g / x), plain Python
        if op == "pow":
            return (Value(xs[0]) ** k).data
        return ENGINE[op](*[Value(x) for x in xs]).data
    except (ArithmeticError, ValueError) as e:
        return ("raises", type(e).__name__)


def check_constant_fold(op, k, *cs):
    g = G("x")
    before = g.graph(g.op("copy", g.op(op, *[g.c(c) for c in cs], attr=k)))
    after = verify(fold(before))
    want, _ = interp(before, [1.0])
    assert interp(after, [1.0])[0] == want and emitted(after, [1.0]) == want
    engine = engine_op(op, k, *cs)
    if isinstance(engine, tuple):  # raises: kept, so the program raises at run time
        assert op in live_ops(after) and want == engine
    elif isinstance(engine, complex):  # no float constant: kept
        assert op in live_ops(after)
    else:
        assert op not in live_ops(after) and want == bits(float(engine))


@PROPERTY
@given(st.sampled_from(UNARY), extreme)
@example(("exp", None), 1000.0)
@example(("log", None), 0.0)
@example(("pow", -1), 0.0)
@example(("pow", 2), 1e200)
@example(("pow", 0.5), -8.0)
def test_constant_folding_of_a_unary_op_is_what_the_engine_computes(op_k, c):
    """op(c) folds to the engine's float, or stays when it raises (exp(1000), log(0), 1e200 ** 2) or is complex."""
    check_constant_fold(op_k[0], op_k[1], c)


@PROPERTY
@given(st.sampled_from(BINARY), extreme, extreme)
@example("div", 1.0, 0.0)
@example("mul", 1e308, 10.0)
@example("sub", -0.0, 0.0)
def test_constant_folding_of_a_binary_op_is_what_the_engine_computes(op, a, c):
    """a op c folds to the engine's float (1e308 * 10 is inf there too), or stays when it raises (1 / 0)."""
    check_constant_fold(op, None, a, c)


# -- identities ------------------------------------------------------------------------------


@PROPERTY
@given(extreme, st.sampled_from(["x * 1", "1 * x", "x ** 1", "x - 0.0", "x + -0.0", "-0.0 + x"]))
def test_identities_keep_every_value(x, form):
    """x * 1, 1 * x, x ** 1, x - 0.0, x + -0.0, -0.0 + x fold to x, bit for bit (inf, nan, -0.0 too)."""
    g = G("x")
    xi = g.ins[0]
    node = {
        "x * 1": lambda: g.op("mul", xi, g.c(1.0)),
        "1 * x": lambda: g.op("mul", g.c(1.0), xi),
        "x ** 1": lambda: g.op("pow", xi, attr=1),
        "x - 0.0": lambda: g.op("sub", xi, g.c(0.0)),
        "x + -0.0": lambda: g.op("add", xi, g.c(-0.0)),
        "-0.0 + x": lambda: g.op("add", g.c(-0.0), xi),
    }[form]()
    before = g.graph(g.op("tanh", node))
    assert_same(before, [x], fired=lambda a: live_ops(a) == ["tanh"])


NEVER_MINUS_ZERO = {
    "y * y": lambda g, y: g.op("mul", y, y),
    "y ** 2": lambda g, y: g.op("pow", y, attr=2),
    "y ** 0.5": lambda g, y: g.op("pow", y, attr=0.5),
    "exp(y)": lambda g, y: g.op("exp", y),
    "sigmoid(y)": lambda g, y: g.op("sigmoid", y),
    "relu(y * y)": lambda g, y: g.op("relu", g.op("mul", y, y)),
    "tanh(exp(y))": lambda g, y: g.op("tanh", g.op("exp", y)),
    "y + 1.5": lambda g, y: g.op("add", y, g.c(1.5)),
    "step(y)": lambda g, y: g.op("step", y),
}


@PROPERTY
@given(extreme, st.sampled_from(sorted(NEVER_MINUS_ZERO)), st.sampled_from(["x + 0", "0 + x", "x - -0"]))
def test_adding_zero_to_a_value_that_is_never_minus_zero_keeps_every_value(y, form, zero):
    """x + 0.0, 0.0 + x and x - (-0.0) fold to x when x can never be -0.0 (y * y, exp, ...): exact."""
    g = G("y")
    x = NEVER_MINUS_ZERO[form](g, g.ins[0])
    n_before = len(live_ops(g.graph(x)))
    node = {"x + 0": lambda: g.op("add", x, g.c(0.0)), "0 + x": lambda: g.op("add", g.c(0.0), x),
            "x - -0": lambda: g.op("sub", x, g.c(-0.0))}[zero]()  # fmt: skip
    before = g.graph(g.op("neg", node))
    assert_same(before, [y], fired=lambda a: len(live_ops(a)) == n_before + 1)


MAY_BE_MINUS_ZERO = {
    "y": lambda g, y: y,
    "-y": lambda g, y: g.op("neg", y),
    "y * 3": lambda g, y: g.op("mul", y, g.c(3.0)),
    "relu(y)": lambda g, y: g.op("relu", y),
    "y ** 3": lambda g, y: g.op("pow", y, attr=3),
    "y - 0": lambda g, y: g.op("sub", y, g.c(0.0)),
}


@PROPERTY
@given(extreme, st.sampled_from(sorted(MAY_BE_MINUS_ZERO)), st.sampled_from(["x + 0", "0 + x", "x - -0"]))
@example(-0.0, "y", "x + 0")
def test_adding_zero_to_a_value_that_may_be_minus_zero_is_kept(y, form, zero):
    """x + 0.0 stays where x may be -0.0 (an input, -y, y * 3, relu(y), y ** 3): -0.0 + 0.0 is 0.0."""
    g = G("y")
    x = NEVER_MINUS_ZERO.get(form, MAY_BE_MINUS_ZERO.get(form))(g, g.ins[0])
    node = {"x + 0": lambda: g.op("add", x, g.c(0.0)), "0 + x": lambda: g.op("add", g.c(0.0), x),
            "x - -0": lambda: g.op("sub", x, g.c(-0.0))}[zero]()  # fmt: skip
    before = g.graph(g.op("neg", node))
    assert_same(before, [y], fired=lambda a: any(o in live_ops(a) for o in ("add", "sub")))


@PROPERTY
@given(extreme)
def test_x_plus_x_is_two_times_x(x):
    """x + x folds to 2.0 * x: one rounding of 2x either way, overflow to inf alike."""
    g = G("x")
    before = g.graph(g.op("add", g.ins[0], g.ins[0]))
    assert_same(before, [x], fired=lambda a: live_ops(a) == ["mul"])


SIGNS = {
    "x * -1": (lambda g, a, b: g.op("mul", a, g.c(-1.0)), ["neg"]),
    "-1 * x": (lambda g, a, b: g.op("mul", g.c(-1.0), a), ["neg"]),
    "-(-x)": (lambda g, a, b: g.op("neg", g.op("neg", a)), []),
    "a + (-b)": (lambda g, a, b: g.op("add", a, g.op("neg", b)), ["sub"]),
    "(-a) + b": (lambda g, a, b: g.op("add", g.op("neg", a), b), ["sub"]),
    "a - (-b)": (lambda g, a, b: g.op("sub", a, g.op("neg", b)), ["add"]),
}


@PROPERTY
@given(extreme, extreme, st.sampled_from(sorted(SIGNS)))
def test_negation_rewrites_keep_every_value(a, b, form):
    """x * -1 -> -x, -(-x) -> x, a + (-b) -> a - b, (-a) + b -> b - a, a - (-b) -> a + b: exact."""
    g = G("a", "b")
    make, left = SIGNS[form]
    before = g.graph(g.op("copy", make(g, *g.ins)))
    assert_same(before, [a, b], fired=lambda after: live_ops(after) == left + ["copy"])


# -- 2**j * (c * y) ----------------------------------------------------------------------------


def scaled(k, c, y_first, backward=True, k_left=True):
    g = G("y")
    y = g.ins[0]
    meta = dict(rule="r", step=1) if backward else {}
    inner = g.op("mul", y, g.c(c)) if y_first else g.op("mul", g.c(c), y)
    outer = g.op("mul", g.c(k), inner, **meta) if k_left else g.op("mul", inner, g.c(k), **meta)
    return g.graph(outer)


def folded_scaling(after: Graph) -> bool:
    return live_ops(after) == ["mul"]


@PROPERTY
@given(pow2, not_one, extreme, st.booleans(), st.booleans())
@example(2.0, 1e308, 1e-5, False, True)  # 1e308 * (x * x)'s gradient: 2 * (1e308 * x)
@example(2.0, 1e-4, 1e-310, False, True)  # the L2 term, with a subnormal c * y
def test_power_of_two_scaling_in_the_backward_keeps_every_value_unless_c_y_underflows(k, c, y, y_first, k_left):
    """k * (c * y) -> (k * c) * y in the backward, only for |k| >= 1 and k * c finite (so exact).

    Equal bits unless c * y underflows; an overflow on either side is inf on both.
    """
    before = scaled(k, c, y_first, k_left=k_left)
    applies = abs(k) >= 1.0 and math.isfinite(k * c) and math.isfinite(c)
    after = assert_same(
        before, [y], fired=lambda a: folded_scaling(a) == applies, may_underflow=True
    )
    want, vals = interp(before, [y])
    if overflowed(before, vals):
        assert interp(after, [y])[0] == want  # an overflow stays an overflow


@PROPERTY
@given(pow2, not_one, extreme)
def test_power_of_two_scaling_is_not_done_in_the_forward(k, c, y):
    """k * (c * y) stays in the forward: the folded node's gradient (k*c) * g is not the engine's c * (k * g)."""
    before = scaled(k, c, True, backward=False)
    assert_same(before, [y], fired=lambda a: live_ops(a) == ["mul", "mul"])


@pytest.mark.parametrize(
    "k, c, y",
    [(0.5, 3.0, 1e308), (5e-324, 0.5, 4.0), (2.0, 1e308, 1e-5), (0.5, 3.0, 1.0), (2.0 ** -1074, 3.0, 1.0)],
)
def test_power_of_two_scaling_is_refused_where_it_would_round_or_overflow(k, c, y):
    """|k| < 1 ((y * 3) * 0.5 at 1e308 is inf, folded 1.5e308) and k * c inexact (5e-324 * 0.5) or inf: kept."""
    before = scaled(k, c, True)
    assert_same(before, [y], fired=lambda a: live_ops(a) == ["mul", "mul"])


# -- arrays ------------------------------------------------------------------------------------


@PROPERTY
@given(st.lists(extreme, min_size=6, max_size=6), st.lists(st.integers(-8, 8), min_size=12, max_size=12))
def test_transpose_rewrites_keep_every_value(xs, ints):
    """transpose(transpose(x)) -> x (extreme floats, bit for bit); (a @ b).T -> b.T @ a.T (exact integer sums)."""
    import numpy as np

    from gradgen.ir.graph import Origin
    from gradgen.ir.interp import evaluate

    b = Builder("f")
    x = b.add(Op.INPUT, (), name="x", origin=Origin("arg", "x"), shape=(2, 3))
    p = b.add(Op.INPUT, (), name="p", origin=Origin("arg", "p"), shape=(2, 3))
    q = b.add(Op.INPUT, (), name="q", origin=Origin("arg", "q"), shape=(3, 2))
    tt = b.add(Op.TRANSPOSE, (b.add(Op.TRANSPOSE, (x,)),))
    tm = b.add(Op.TRANSPOSE, (b.add(Op.MATMUL, (p, q)),))
    before = verify(b.build([x, p, q], [("value", tt), ("out1", tm)]))
    after = verify(fold(before))
    point = [np.array(xs).reshape(2, 3), np.array(ints[:6], float).reshape(2, 3), np.array(ints[6:], float).reshape(3, 2)]
    want, got = evaluate(before, point), evaluate(after, point)
    assert after.nodes[after.output("value")].op is Op.INPUT
    assert after.nodes[after.output("out1")].op is Op.MATMUL
    for role in want:
        assert [bits(float(v)) for v in np.ravel(want[role])] == [bits(float(v)) for v in np.ravel(got[role])]


# -- the issue's examples, end to end ----------------------------------------------------------


def _compile(tmp_path, source):
    path = tmp_path / "model.py"
    path.write_text(source)
    ns: dict = {}
    exec(compile(source, str(path), "exec"), ns)
    return ns["f"], gradgen.compile_function(ns["f"])


def _engine(f, x):
    v = Value(x)
    out = f(v)
    out.backward()
    return out.data, v.grad


@pytest.mark.parametrize(
    "body, x",
    [
        ("1e308 * (x * x)", 1e-5),  # gradient 2e303 (was inf: 2.0 * 1e308 folded to inf)
        ("5e-324 * (0.5 * x)", 4.0),  # value 1e-323 (was 0.0: 5e-324 * 0.5 folded to 0)
        ("(x * 3) * 0.5", 1e308),  # value inf (was 1.5e308: 3 * 0.5 folded to 1.5)
    ],
)
def test_the_issues_examples_match_the_engine(tmp_path, body, x):
    """The three examples of issue 8 compile to the engine's value and gradient, bit for bit."""
    f, mod = _compile(tmp_path, f"def f(x):\n    return {body}\n")
    value, g = _engine(f, x)
    c_value, (c_g,) = mod.f_grad(x)
    assert bits(c_value) == bits(value) and bits(mod.f(x)) == bits(value), (c_value, value)
    assert bits(c_g) == bits(g), (c_g, g)


def test_the_l2_terms_gradient_still_folds_to_one_product(tmp_path):
    """alpha * sum(p * p)'s gradient stays one `0.0002 * p` (the fold that moons' g_W0 += 0.0002 * W0 uses)."""
    f, mod = _compile(tmp_path, "def f(p, q):\n    return 1e-4 * sum(w * w for w in [p, q])\n")
    assert "g_p = 0.0002 * p" in mod.source and "g_q = 0.0002 * q" in mod.source, mod.source
    for p in (0.75, -3.5, 1e300, 1e-300):
        v, w = Value(p), Value(2.0)
        out = f(v, w)
        out.backward()
        c_value, (g_p, g_q) = mod.f_grad(p, 2.0)
        assert bits(c_value) == bits(out.data) and bits(g_p) == bits(v.grad) and bits(g_q) == bits(w.grad)
