"""Each pass (fold, cse, dce) on small hand-built graphs: before/after, negative cases included.

Every case states in its docstring what it checks, builds a graph with
`gradgen.ir.graph.Builder`, runs one pass, runs the verifier, compares the
printed IR (`format_graph`) with the expected text, and checks that the
numbers did not change: the IR interpreter gives the same floats before and
after, bit for bit (sign of zero included), at ordinary and special points.

The expected texts are golden output: if the printer changes on purpose,
update them here by running the failing case and reviewing the new text.
"""

from __future__ import annotations

import math
import struct

import pytest

from gradgen.autodiff.reverse import grad
from gradgen.ir.graph import Builder, Graph, Origin
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import Op
from gradgen.ir.printer import format_graph
from gradgen.ir.verify import VerifyError, verify
from gradgen.passes import cse, dce, fold, optimize

INF, NAN = math.inf, math.nan
POINTS = [-1.5, -0.0, 0.0, 0.75, 2.25, 1e300, -INF, INF, NAN]


class G:
    """A tiny front end over `Builder`: `g = G("x", "y")`, `g.mul(g.x, g.y)`, `g.build(out)`."""

    def __init__(self, *inputs, name="f"):
        self._b = Builder(name)
        self.ins = []
        for n in inputs:
            nid = self._b.add(Op.INPUT, (), name=n, origin=Origin("arg", n))
            setattr(self, n, nid)
            self.ins.append(nid)

    def c(self, value, **meta):
        return self._b.const(value, **meta)

    def __getattr__(self, opname):
        op = Op(opname.rstrip("_"))

        def make(*args, attr=None, **meta):
            return self._b.add(op, args, attr, **meta)

        return make

    def build(self, *outs) -> Graph:
        roles = ["value"] + [f"out{i}" for i in range(1, len(outs))]
        return verify(self._b.build(self.ins, list(zip(roles, outs))))


def bits(v: float):
    return "nan" if math.isnan(v) else struct.pack("<d", v)


def run(graph, point):
    try:
        return {k: bits(v) for k, v in evaluate(graph, point).items()}
    except (ArithmeticError, ValueError) as e:
        return type(e).__name__


def check(pass_fn, before: Graph, after_text: str, points=POINTS) -> Graph:
    """Run `pass_fn`; verify; compare the printed IR; compare numbers before vs after (bits)."""
    after = verify(pass_fn(before))
    assert format_graph(after) == after_text, "\n" + format_graph(after)
    n = len(before.inputs)
    grid = [(p,) * n for p in points] + [
        tuple(points[(i + k) % len(points)] for k in range(n))
        for i in range(len(points))
    ]
    for point in grid:
        want, got = run(before, point), run(after, point)
        assert got == want, (point, want, got)
    return after


# --- fold -------------------------------------------------------------------------------


def test_fold_evaluates_ops_on_constants():
    """fold replaces an op whose arguments are all constants by its value (tanh(0.5) * 4 + 1)."""
    g = G("x")
    t = g.tanh(g.c(0.5))
    s = g.add(g.mul(t, g.c(4.0)), g.c(1.0))
    before = g.build(g.mul(g.x, s))
    want = math.tanh(0.5) * 4.0 + 1.0
    after = check(fold, before, f"def f(x):\n  mul = mul x {want!r}\n  return mul\n")
    assert len(dce(after)) == 3  # fold leaves the dead constants to DCE


def test_fold_removes_multiplication_by_one():
    """fold turns x * 1 and 1 * x into x, exactly (also for -0.0, inf and nan)."""
    g = G("x", "y")
    before = g.build(g.add(g.mul(g.x, g.c(1.0)), g.mul(g.c(1.0), g.y)))
    check(fold, before, "def f(x, y):\n  add = add x y\n  return add\n")


def test_fold_removes_power_one():
    """fold turns x ** 1 into x."""
    g = G("x")
    before = g.build(g.tanh(g.pow(g.x, attr=1)))
    check(fold, before, "def f(x):\n  tanh = tanh x\n  return tanh\n")


def test_fold_removes_subtracting_zero():
    """fold turns x - 0 into x, exactly (-0.0 - 0.0 is -0.0)."""
    g = G("x")
    before = g.build(g.exp(g.sub(g.x, g.c(0.0))))
    check(fold, before, "def f(x):\n  exp = exp x\n  return exp\n")


def test_fold_removes_adding_zero_to_a_value_that_is_never_minus_zero():
    """fold turns x*x + 0 and 0 + exp(x) into their argument: neither can be -0.0, so + 0.0 is exact."""
    g = G("x")
    sq, e = g.mul(g.x, g.x), g.exp(g.x)
    before = g.build(g.mul(g.add(sq, g.c(0.0)), g.add(g.c(0.0), e)))
    check(fold, before, "def f(x):\n  sq_x = mul x x\n  exp = exp x\n  mul = mul sq_x exp\n  return mul\n")


def test_fold_keeps_adding_zero_to_a_value_that_may_be_minus_zero():
    """fold keeps x + 0 and x - (-0.0) for an input x: -0.0 + 0.0 is 0.0, not x (negative case)."""
    g = G("x")
    before = g.build(g.mul(g.add(g.x, g.c(0.0)), g.sub(g.x, g.c(-0.0))))
    check(fold, before, format_graph(before))


def test_fold_removes_adding_minus_zero():
    """fold turns x + -0.0 and -0.0 + x into x: adding -0.0 is exact, -0.0 + -0.0 included."""
    g = G("x")
    before = g.build(g.mul(g.add(g.x, g.c(-0.0)), g.add(g.c(-0.0), g.x)))
    check(fold, before, "def f(x):\n  sq_x = mul x x\n  return sq_x\n")


def test_fold_turns_times_minus_one_into_negation():
    """fold turns x * -1 and -1 * x into -x (the engine's spelling of -x)."""
    g = G("x", "y")
    before = g.build(g.add(g.mul(g.x, g.c(-1.0)), g.mul(g.c(-1.0), g.y)))
    # the new negs are anonymous, so the add then becomes a sub in the same pass;
    # the dead `neg y` is left for DCE
    check(
        fold,
        before,
        "def f(x, y):\n  neg_x = neg x\n  neg_y = neg y\n  sub = sub neg_x y\n  return sub\n",
    )


def test_fold_removes_double_negation():
    """fold turns -(-x) into x."""
    g = G("x")
    before = g.build(g.exp(g.neg(g.neg(g.x))))
    check(fold, before, "def f(x):\n  neg_x = neg x\n  exp = exp x\n  return exp\n")


def test_fold_turns_adding_a_negation_into_subtraction():
    """fold turns a + (-b) into a - b, (-a) + b into b - a, and a - (-b) into a + b."""
    g = G("a", "b")
    p = g.add(g.a, g.neg(g.b))
    q = g.add(g.neg(g.a), g.b)
    r = g.sub(g.a, g.neg(g.b))
    before = g.build(p, q, r)
    check(
        fold,
        before,
        "def f(a, b):\n  neg_b = neg b\n  sub = sub a b\n  neg_a = neg a\n  sub_1 = sub b a\n"
        "  neg_b_1 = neg b\n  add = add a b\n  return sub, sub_1, add\n",
    )


def test_fold_does_not_fold_times_zero():
    """fold does not fold x * 0: it is nan for x = inf and -0.0 for x < 0."""
    g = G("x")
    before = g.build(g.mul(g.x, g.c(0.0)))
    check(fold, before, "def f(x):\n  mul = mul x 0.0\n  return mul\n")


def test_fold_does_not_turn_zero_minus_x_into_negation():
    """fold keeps 0 - x: it is 0.0 at x = 0 where -x is -0.0."""
    g = G("x")
    before = g.build(g.sub(g.c(0.0), g.x))
    check(fold, before, "def f(x):\n  sub = sub 0.0 x\n  return sub\n")


def test_fold_keeps_a_constant_division_that_raises():
    """fold keeps 1.0 / 0.0, so the program still raises ZeroDivisionError at run time."""
    g = G("x")
    before = g.build(g.add(g.x, g.div(g.c(1.0), g.c(0.0))))
    after = check(
        fold,
        before,
        "def f(x):\n  div = div 1.0 0.0\n  add = add x div\n  return add\n",
    )
    with pytest.raises(ZeroDivisionError):
        evaluate(after, [1.0])


@pytest.mark.parametrize(
    "op, value, attr, error",
    [
        ("log", 0.0, None, ValueError),
        ("log", -1.0, None, ValueError),
        ("exp", 1000.0, None, OverflowError),
        ("pow", 0.0, -1, ZeroDivisionError),
    ],
)
def test_fold_keeps_constant_ops_that_raise(op, value, attr, error):
    """fold keeps log(0), log(-1), exp(1000) and 0 ** -1: each raises at run time as in the engine."""
    g = G("x")
    bad = getattr(g, op)(g.c(value), attr=attr)
    before = g.build(g.mul(g.x, bad))
    after = verify(fold(before))
    assert len(after) == len(before)
    assert [n.op for n in after.nodes] == [n.op for n in before.nodes]
    with pytest.raises(error):
        evaluate(after, [1.0])


def test_fold_keeps_a_constant_power_with_a_complex_result():
    """fold keeps (-8.0) ** 0.5: Python gives a complex number, which is no IR constant."""
    g = G("x")
    before = g.build(g.add(g.x, g.pow(g.c(-8.0), attr=0.5)))
    after = verify(fold(before))
    assert (
        format_graph(after)
        == "def f(x):\n  pow_ = pow -8.0 0.5\n  add = add x pow_\n  return add\n"
    )
    assert all(n.op is not Op.CONST or isinstance(n.attr, float) for n in after.nodes)


def test_fold_keeps_a_named_negation():
    """fold does not absorb a neg that has a name into a sub: the named line would disappear."""
    g = G("a", "b")
    n = g.neg(g.b, name="nb")
    before = g.build(g.add(g.a, n))
    check(fold, before, "def f(a, b):\n  nb = neg b\n  add = add a nb\n  return add\n")


def test_fold_hands_an_adjoint_name_to_the_node_it_aliases():
    """g = 1.0 * t for an anonymous backward node t becomes t itself, named g_x (no extra line)."""
    g = G("x")
    t = g.tanh(g.x, rule="r", step=1)
    g_x = g.mul(g.c(1.0), t, adj=g.x, rule="r", step=1)
    before = g.build(g_x)
    after = check(fold, before, "def f(x):\n  g_x = tanh x  # r\n  return g_x\n")
    assert after[after.output("value")].adj == 0


def test_fold_names_a_gradient_equal_to_a_forward_value_with_a_copy():
    """g = 1.0 * t for a forward node t gets a copy named g_x; t stays a forward node."""
    g = G("x")
    t = g.exp(g.x)
    g_x = g.mul(g.c(1.0), t, adj=g.x, rule="exp", step=1)
    before = g.build(t, g_x)
    after = check(
        fold,
        before,
        "def f(x):\n  exp = exp x\n  g_x = copy exp  # exp\n  return exp, g_x\n",
    )
    assert after[1].rule is None and after[1].adj is None


# --- cse --------------------------------------------------------------------------------


def test_cse_merges_identical_muls():
    """CSE replaces the second x * y by the first."""
    g = G("x", "y")
    before = g.build(g.add(g.mul(g.x, g.y), g.mul(g.x, g.y)))
    check(
        cse,
        before,
        "def f(x, y):\n  x_y = mul x y\n  add = add x_y x_y\n  return add\n",
    )


@pytest.mark.parametrize("op", ["add", "mul"])
def test_cse_merges_commuted_add_and_mul(op):
    """CSE merges x op y with y op x for add and mul, which commute exactly in IEEE."""
    g = G("x", "y")
    first = getattr(g, op)(g.x, g.y)
    before = g.build(g.sub(first, getattr(g, op)(g.y, g.x)))
    name = {"add": "add", "mul": "x_y"}[op]  # a product of named values is named after them
    check(
        cse,
        before,
        f"def f(x, y):\n  {name} = {op} x y\n  sub = sub {name} {name}\n  return sub\n",
    )


def test_cse_merges_users_of_merged_nodes():
    """Once x*y and y*x merge, tanh of each merges too (one pass, in id order)."""
    g = G("x", "y")
    a = g.tanh(g.mul(g.x, g.y))
    b = g.tanh(g.mul(g.y, g.x))
    before = g.build(g.add(a, b))
    after = check(
        cse,
        before,
        "def f(x, y):\n  x_y = mul x y\n  tanh = tanh x_y\n  add = add tanh tanh\n  return add\n",
    )
    assert len(after) == len(before) - 2


def test_cse_keeps_muls_whose_arguments_differ():
    """CSE keeps two muls whose arguments differ (x * y and x * x)."""
    g = G("x", "y")
    before = g.build(g.add(g.mul(g.x, g.y), g.mul(g.x, g.x)))
    after = check(cse, before, format_graph(before))
    assert len(after) == len(before)


def test_cse_keeps_sub_and_its_reverse():
    """CSE keeps x - y and y - x apart: sub does not commute."""
    g = G("x", "y")
    before = g.build(g.mul(g.sub(g.x, g.y), g.sub(g.y, g.x)))
    check(cse, before, format_graph(before))


def test_cse_keeps_pows_with_different_exponents():
    """CSE keeps x ** 2 and x ** 3 apart: the attribute is part of the key."""
    g = G("x")
    before = g.build(g.add(g.pow(g.x, attr=2), g.pow(g.x, attr=3)))
    check(cse, before, format_graph(before))


def test_cse_keeps_copies_and_named_constants():
    """CSE merges neither two copies of one value (each names an adjoint) nor named constants."""
    g = G("x")
    c1 = g.copy(g.x)
    c2 = g.copy(g.x)
    k1 = g.c(2.0, name="k1")
    k2 = g.c(2.0, name="k2")
    before = g.build(g.add(g.mul(c1, k1), g.mul(c2, k2)))
    after = check(cse, before, format_graph(before))
    assert len(after) == len(before)


def test_cse_survivor_takes_the_name_of_a_node_it_absorbs():
    """When an anonymous x*y absorbs a later x*y named z, the survivor is printed as z."""
    g = G("x", "y")
    a = g.mul(g.x, g.y)
    b = g.mul(g.x, g.y, name="z")
    before = g.build(g.add(a, b))
    check(cse, before, "def f(x, y):\n  z = mul x y\n  add = add z z\n  return add\n")


def test_cse_keeps_the_first_name_when_both_are_named():
    """When both copies have names, the first one's name survives and the second disappears."""
    g = G("x", "y")
    a = g.mul(g.x, g.y, name="p")
    b = g.mul(g.x, g.y, name="q")
    before = g.build(g.add(a, b))
    check(cse, before, "def f(x, y):\n  p = mul x y\n  add = add p p\n  return add\n")


# --- dce --------------------------------------------------------------------------------


def test_dce_removes_an_unused_node():
    """DCE removes tanh(x), which no output uses."""
    g = G("x")
    g.tanh(g.x)
    before = g.build(g.exp(g.x))
    check(dce, before, "def f(x):\n  exp = exp x\n  return exp\n")


def test_dce_removes_a_dead_chain_transitively():
    """DCE removes a whole chain whose last node is unused, and the constants only it used."""
    g = G("x", "y")
    d1 = g.mul(g.x, g.c(3.0))
    d2 = g.tanh(d1)
    g.add(d2, g.y)
    before = g.build(g.mul(g.x, g.y))
    after = check(dce, before, "def f(x, y):\n  x_y = mul x y\n  return x_y\n")
    assert [n.op for n in after.nodes] == [Op.INPUT, Op.INPUT, Op.MUL]


def test_dce_keeps_unused_inputs():
    """DCE keeps an input no output uses: the signature does not change."""
    g = G("x", "unused")
    before = g.build(g.exp(g.x))
    after = check(dce, before, "def f(x, unused):\n  exp = exp x\n  return exp\n")
    assert len(after.inputs) == 2


def test_dce_keeps_everything_outputs_need():
    """DCE keeps every node an output reaches, through any path (nothing removed)."""
    g = G("x", "y")
    a = g.mul(g.x, g.y)
    b = g.tanh(a)
    before = g.build(g.add(a, b), b)
    after = check(dce, before, format_graph(before))
    assert len(after) == len(before)


def test_dce_names_an_adjoint_whose_forward_node_is_gone():
    """An adjoint of a removed forward node keeps the hint g_<name>; its adj becomes None."""
    g = G("x")
    t = g.tanh(g.x, name="t")
    gt = g.mul(g.x, g.c(2.0), adj=t, rule="r", step=1)
    before = g.build(gt)
    after = check(dce, before, "def f(x):\n  g_t = mul x 2.0  # r\n  return g_t\n")
    assert after[after.output("value")].adj is None


# --- the pipeline ---------------------------------------------------------------------


def _neuron_grad(redundant: bool = False) -> Graph:
    g = G("x1", "x2", "w1", "w2", "b")
    b = g.mul(g.b, g.c(1.0)) if redundant else g.b  # b * 1.0: something for fold, and its gradient
    n = g.add(g.add(g.mul(g.x1, g.w1), g.mul(g.x2, g.w2)), b, name="n")
    o = g.tanh(n, name="o")
    return grad(g.build(o))


def test_optimize_shrinks_the_neuron_gradient_and_keeps_its_numbers():
    """optimize (fold, cse, dce with the verifier after each) shrinks the graph, numbers unchanged
    (a neuron with a redundant `b * 1.0`: reverse mode alone leaves no `1.0 *` of the seed)."""
    before = verify(_neuron_grad(redundant=True))
    stats = []
    after = optimize(before, check=True, stats=stats)
    assert len(after) < len(before)
    assert [s.name for s in stats[:3]] == ["fold", "cse", "dce"]
    point = [2.0, 0.0, -3.0, 1.0, 6.881373587019543]
    want, got = evaluate(before, point), evaluate(after, point)
    assert want == got
    # the lecture's neuron: o = 0.7071..., dx1 = -1.5, dw1 = 1.0, dx2 = 0.5, dw2 = 0.0
    assert math.isclose(got["value"], 0.7071067811865476, rel_tol=1e-15)
    assert [round(got[f"grad:{n}"], 12) for n in ["x1", "x2", "w1", "w2", "b"]] == [
        -1.5,
        0.5,
        1.0,
        0.0,
        0.5,
    ]


def test_optimize_is_idempotent():
    """A second optimize changes nothing: the pipeline stops at a fixed point."""
    once = optimize(_neuron_grad(), check=True)
    twice = optimize(once, check=True)
    assert format_graph(twice) == format_graph(once)
    assert twice == once


def test_verifier_rejects_a_malformed_graph():
    """The verifier the passes rely on names the node: an argument defined after its user."""
    g = G("x")
    good = g.build(g.tanh(g.x))
    nodes = list(good.nodes)
    from dataclasses import replace

    nodes[1] = replace(nodes[1], args=(5,))
    bad = Graph(good.name, tuple(nodes), good.inputs, good.outputs)
    with pytest.raises(VerifyError, match=r"%1 \(tanh\)"):
        verify(bad)
