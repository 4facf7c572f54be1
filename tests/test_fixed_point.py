"""`passes.fixed.at_fixed_point`: the one-sweep proof that fold, cse and dce would each return
a graph as it is.  It must never vouch for a graph a pass changes (then `optimize` would stop
early and the output would differ), and it should vouch for the graphs the passes leave alone
(else it only costs time).  Checked on hand-written cases and on hypothesis's random DAGs
(tests/test_property.py's generator), before and after the passes and reverse mode."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from gradgen.autodiff.reverse import grad
from gradgen.frontend.trace import trace
from gradgen.ir.graph import Builder
from gradgen.ir.ops import Op
from gradgen.passes import at_fixed_point, cse, dce, fold, optimize
from support import load_function
from test_property import programs


def chain(x, a, b):
    for _ in range(4):
        x = (x * a + b).tanh()
    return x


def untouched(graph) -> bool:
    return fold(graph) is graph and cse(graph) is graph and dce(graph) is graph


def _graph(build):
    b = Builder("f")
    x, y = b.add(Op.INPUT, (), shape=(), name="x"), b.add(Op.INPUT, (), shape=(), name="y")
    out = build(b, x, y)
    return b.build([x, y], [("value", out)])


def test_the_chain_and_its_gradient_are_at_the_fixed_point():
    """Reverse mode builds the chain's gradient at the fixed point: one sweep says so."""
    g = trace(chain)
    gg = grad(g)
    assert at_fixed_point(g) and at_fixed_point(gg)
    assert untouched(g) and untouched(gg)
    stats = []
    assert optimize(gg, stats=stats) is gg
    assert [s.name for s in stats] == ["fixed"]


def test_each_pass_s_work_is_seen():
    """Negative cases, one per pass: a product by 1.0, x + x, x - 0.0, x - (-y) (fold), the
    same product twice, in either order (cse), a node nothing reads (dce), a constant twice."""
    cases = {
        "fold: x * 1.0": lambda b, x, y: b.add(Op.MUL, (x, b.const(1.0))),
        "fold: x + x": lambda b, x, y: b.add(Op.ADD, (x, x)),
        "fold: x - 0.0": lambda b, x, y: b.add(Op.SUB, (x, b.const(0.0))),
        "fold: x - (-y)": lambda b, x, y: b.add(Op.SUB, (x, b.add(Op.NEG, (y,)))),
        "cse": lambda b, x, y: b.add(Op.ADD, (b.add(Op.MUL, (x, y)), b.add(Op.MUL, (y, x)))),
        "dce": lambda b, x, y: (b.add(Op.TANH, (x,)), b.add(Op.EXP, (y,)))[1],
        "constant twice": lambda b, x, y: b.add(
            Op.MUL, (b.add(Op.ADD, (x, b.add(Op.CONST, (), 2.0))), b.add(Op.CONST, (), 2.0))
        ),
    }
    for what, build in cases.items():
        g = _graph(build)
        assert not untouched(g), what
        assert not at_fixed_point(g), what


def test_what_the_passes_keep_is_vouched_for():
    """Positive cases: two nodes over the same arguments with different ops (cse keeps both),
    a constant factor no rule removes, 1.0 - y * y (tanh's rule), the same op with another
    attribute (pow 2 and pow 3 of x)."""
    cases = {
        "mul and add of x, y": lambda b, x, y: b.add(Op.SUB, (b.add(Op.MUL, (x, y)), b.add(Op.ADD, (x, y)))),
        "2.0 * x": lambda b, x, y: b.add(Op.MUL, (b.const(2.0), x)),
        "1 - y*y": lambda b, x, y: b.add(Op.SUB, (b.const(1.0), b.add(Op.MUL, (y, y)))),
        "x**2 + x**3": lambda b, x, y: b.add(Op.ADD, (b.add(Op.POW, (x,), 2), b.add(Op.POW, (x,), 3))),
    }
    for what, build in cases.items():
        g = _graph(build)
        assert untouched(g), what
        assert at_fixed_point(g), what


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(program=programs())
def test_it_agrees_with_the_passes_on_random_dags(program, tmp_path):
    source, _ = program
    g = trace(load_function(source, tmp_path))
    for graph in (g, fold(g), optimize(g), grad(optimize(g)), optimize(grad(optimize(g)))):
        if at_fixed_point(graph):
            assert untouched(graph), source  # never vouches for a graph a pass changes
        elif not any(n.adj is not None and n.adj >= n.id for n in graph.nodes):
            assert not untouched(graph), source  # (an adjoint of a later node it declines)
