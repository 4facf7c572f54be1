"""Every derivative rule, checked numerically: one parametrised test, one case per op.

For each op with a derivative rule in the op registry (`gradgen.ir.ops.RULES`) we build the IR graph
`out = op(x[, y]) * s` by hand (the factor `s` makes the incoming adjoint
something other than 1.0, so a rule that ignored it would fail),
differentiate it with `gradgen.autodiff.grad`, optimise it with the
verifier on, and check the gradient at a few points inside the op's domain

* through the IR interpreter and through emitted code (the two must agree
  bit for bit), against
* central finite differences (h = 1e-6, rtol 1e-6) and
* `torch.autograd.grad` in float64 (rtol 1e-12);

and where the interpreted engine has the op, that the forward value (and
the gradient) equal the engine's bit for bit, both from the hand-built
graph and from `gradgen.compile_function` on the same expression written
with Values.  `test_every_differentiable_op_has_a_rule_and_a_case` fails
when an op gains a rule (or becomes differentiable) without a case here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import gradgen
from gradgen.autodiff.reverse import SEED, grad
from gradgen.engine import Value
from gradgen.ir.graph import Builder, Graph
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import OPS, Op
from gradgen.ir.verify import verify
from gradgen.passes import optimize
from gradgen.ir.ops import RULES
from support import arg, close, run_emitted, same_float

S = -1.7  # the incoming adjoint of op(...)
H = 1e-6

POS = [(0.3,), (1.0,), (2.5,)]  # fractional powers, log
AWAY = [(-1.3,), (-0.2,), (0.4,), (2.1,)]  # kinks at 0 (relu, step), poles at 0 (x**-1)
ANY = [(-2.0,), (-0.35,), (0.1,), (1.5,)]
PAIRS = [(0.3, -1.2), (2.0, 0.5), (-1.5, -0.75)]  # second argument away from 0 (div)


@dataclass(frozen=True)
class Case:
    attr: float | int | None
    points: list[tuple[float, ...]]
    torch_fn: Callable  # the op on float64 tensors
    engine_fn: Callable | None = (
        None  # the op on Values (None: the engine has no such op)
    )
    engine_exact: bool = True  # the engine's spelling computes the same floats


def _pow_case(k):
    pts = POS if k != int(k) else AWAY
    f = lambda x, k=k: x**k  # noqa: E731
    return Case(k, pts, f, f)


CASES: dict[Op, list[Case]] = {
    Op.ADD: [Case(None, PAIRS, lambda a, b: a + b, lambda a, b: a + b)],
    Op.SUB: [Case(None, PAIRS, lambda a, b: a - b, lambda a, b: a - b)],
    Op.MUL: [Case(None, PAIRS, lambda a, b: a * b, lambda a, b: a * b)],
    # the engine's a / b is a * b**-1: equal to IR div only to an ulp or so
    Op.DIV: [
        Case(None, PAIRS, lambda a, b: a / b, lambda a, b: a / b, engine_exact=False)
    ],
    Op.NEG: [Case(None, ANY, lambda a: -a, lambda a: -a)],
    Op.POW: [_pow_case(k) for k in (2, 3, -1, 0.5, -1.5, -2, 2.5, 0, 1)],
    Op.EXP: [Case(None, ANY, torch.exp, lambda a: a.exp())],
    Op.LOG: [Case(None, POS, torch.log, lambda a: a.log())],
    Op.TANH: [Case(None, ANY, torch.tanh, lambda a: a.tanh())],
    Op.RELU: [Case(None, AWAY, torch.relu, lambda a: a.relu())],
    Op.SIGMOID: [
        Case(None, ANY + [(0.0,), (-30.0,)], torch.sigmoid, lambda a: a.sigmoid())
    ],
    # step's derivative is 0 almost everywhere; sign(relu(x)) is step with torch's zero gradient
    Op.STEP: [Case(None, AWAY, lambda a: torch.sign(torch.relu(a)))],
    Op.COPY: [Case(None, ANY, lambda a: a.clone())],
    # abs away from its kink (abs at 0: test_abs_at_zero), as a method and as abs(x)
    Op.ABS: [
        Case(None, AWAY, torch.abs, lambda a: a.abs()),
        Case(None, AWAY, torch.abs, lambda a: abs(a)),
    ],
    Op.SIN: [Case(None, ANY + [(3.0,)], torch.sin, lambda a: a.sin())],
    Op.COS: [Case(None, ANY + [(3.0,)], torch.cos, lambda a: a.cos())],
    # sign (abs's derivative) has torch's zero gradient away from 0
    Op.SIGN: [Case(None, AWAY, torch.sign)],
}


def test_every_differentiable_op_has_a_rule_and_a_case():
    """No op can be differentiable without a derivative rule and a numeric case here."""
    differentiable = {op for op, info in OPS.items() if info.differentiable}
    # elem has no rule: reverse mode gathers all reads of one array into one pack itself
    assert differentiable - set(RULES) == {Op.ELEM}, "differentiable ops without a rule"
    from test_array_rules import ARRAY_CASES

    cases = {**CASES, **ARRAY_CASES}
    assert (
        set(RULES) - set(cases) == set()
    ), "rules without a test case in test_rules.py or test_array_rules.py"
    assert all(cases[op] for op in RULES)


def forward_graph(op: Op, attr) -> Graph:
    """`out = op(x[, y]) * s`, built by hand."""
    b = Builder("f")
    names = ["x", "y"][: OPS[op].arity] + ["s"]
    ins = [arg(b, n) for n in names]
    r = b.add(op, ins[:-1], attr)
    out = b.add(Op.MUL, (r, ins[-1]))
    return verify(b.build(ins, [("value", out)]))


def finite_difference(fwd, point, i):
    """Central difference of the forward graph along input i (step scaled to the input)."""
    h = H * max(1.0, abs(point[i]))
    up, down = list(point), list(point)
    up[i] += h
    down[i] -= h
    return (evaluate(fwd, up)["value"] - evaluate(fwd, down)["value"]) / (
        up[i] - down[i]
    )


def torch_grad(fn, point):
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in point]
    out = fn(*ts[:-1]) * ts[-1]
    grads = torch.autograd.grad(out, ts, allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def engine_grad(fn, point):
    vs = [Value(v) for v in point]
    out = fn(*vs[:-1]) * vs[-1]
    out.backward()
    return out.data, [v.grad for v in vs]


def _compiled(fn, arity):
    """`gradgen.compile_function` of the same expression written on Values."""
    if arity == 1:

        def f(x, s):
            return fn(x) * s

    else:

        def f(x, y, s):
            return fn(x, y) * s

    return gradgen.compile_function(f, check=True)


SCALAR_RULES = sorted((op for op in RULES if OPS[op].elementwise), key=lambda o: o.value)


@pytest.mark.parametrize("op", SCALAR_RULES, ids=lambda o: o.value)
def test_rule(op):
    """op's rule gives the gradient of finite differences and torch, via interp and emitted code."""
    if op not in CASES:
        pytest.fail(f"{op} has a derivative rule but no case in test_rules.CASES")
    arity = OPS[op].arity
    for case in CASES[op]:
        fwd = forward_graph(op, case.attr)
        g = optimize(grad(fwd), check=True)
        verify(g)
        roles = ["value"] + [f"grad:{n}" for n in ["x", "y"][:arity] + ["s"]]
        assert [str(r) for r, _ in g.outputs] == roles
        emitted_grad, _ = run_emitted(g, "grad")
        emitted_fwd, _ = run_emitted(optimize(fwd, check=True), "value")
        compiled = (
            _compiled(case.engine_fn, arity) if case.engine_fn is not None else None
        )

        for x in case.points:
            point = (*x, S)
            where = f"{op}(k={case.attr}) at {point}"
            res = evaluate(g, point)
            value, grads = res["value"], [res[r] for r in roles[1:]]

            # emitted code computes exactly what the IR interpreter computes
            e_value, e_grads = emitted_grad(*point)
            assert same_float(e_value, value), where
            assert all(same_float(a, b) for a, b in zip(e_grads, grads)), (
                where,
                e_grads,
                grads,
            )
            assert same_float(emitted_fwd(*point), value), where
            assert same_float(evaluate(fwd, point)["value"], value), where

            # central finite differences
            for i, gi in enumerate(grads):
                fd = finite_difference(fwd, point, i)
                assert close(gi, fd, 1e-6, 1e-8), (where, roles[i + 1], gi, fd)

            # torch.autograd in float64
            t_value, t_grads = torch_grad(case.torch_fn, point)
            assert close(value, t_value, 1e-12, 1e-15), (where, value, t_value)
            for i, (gi, ti) in enumerate(zip(grads, t_grads)):
                assert close(gi, ti, 1e-12, 1e-15), (where, roles[i + 1], gi, ti)

            # the interpreted engine, and compile_function on the same expression
            if case.engine_fn is None:
                continue
            v_value, v_grads = engine_grad(case.engine_fn, point)
            c_value, c_grads = compiled.f_grad(*point)
            assert same_float(compiled.f(*point), v_value), where
            assert same_float(c_value, v_value), where
            assert all(same_float(a, b) for a, b in zip(c_grads, v_grads)), (
                where,
                c_grads,
                v_grads,
            )
            if case.engine_exact:
                assert same_float(value, v_value), (where, value, v_value)
                assert all(same_float(a, b) for a, b in zip(grads, v_grads)), (
                    where,
                    grads,
                    v_grads,
                )
            else:
                assert close(value, v_value, 1e-15, 0.0), (where, value, v_value)
                assert all(
                    close(a, b, 1e-14, 0.0) for a, b in zip(grads, v_grads)
                ), where


def test_rule_passes_zero_adjoint_to_constants_and_unused_inputs():
    """An input the output does not depend on gets the gradient 0.0, not a missing entry."""
    b = Builder("f")
    x, y = arg(b, "x"), arg(b, "y")
    out = b.add(Op.MUL, (b.add(Op.TANH, (x,)), b.const(3.0)))
    fwd = b.build([x, y], [("value", out)])
    g = optimize(grad(fwd), check=True)
    res = evaluate(g, [0.25, 9.0])
    assert res["grad:y"] == 0.0
    f, _ = run_emitted(g, "grad")
    value, (gx, gy) = f(0.25, 9.0)
    assert gy == 0.0 and same_float(gx, res["grad:x"])
    assert close(
        gx,
        3.0 * (1 - torch.tanh(torch.tensor(0.25, dtype=torch.float64)).item() ** 2),
        1e-12,
    )


def test_fan_out_sums_gradients():
    """A value used three times receives the sum of its three contributions."""
    b = Builder("f")
    x = arg(b, "x")
    t = b.add(Op.TANH, (x,))
    out = b.add(Op.ADD, (b.add(Op.MUL, (t, t)), b.add(Op.MUL, (t, b.const(2.0)))))
    fwd = b.build([x], [("value", out)])
    g = optimize(grad(fwd), check=True)
    for xv in [-0.7, 0.2, 1.3]:
        got = evaluate(g, [xv])["grad:x"]
        xt = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        tt = torch.tanh(xt)
        (want,) = torch.autograd.grad(tt * tt + tt * 2.0, [xt])
        assert close(got, want.item(), 1e-12)
        f, _ = run_emitted(g, "grad")
        assert same_float(f(xv)[1][0], got)


def _ancestors(g, i):
    seen, stack = set(), [i]
    while stack:
        j = stack.pop()
        if j not in seen:
            seen.add(j)
            stack.extend(g.nodes[j].args)
    return seen


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(op, id=op.value)
        for op in SCALAR_RULES
        if OPS[op].arity == 2
    ],
)
def test_backward_nodes_carry_the_comment_of_the_argument_they_differentiate(op):
    """Nodes that feed only the gradient of argument i are commented with the rule's comment i
    (the seed, the output's own gradient, belongs to neither: reverse mode builds no `1.0 *` with
    it, so it may feed one argument's gradient only, as in div's `g / b`)."""
    b = Builder("f")
    x, y = arg(b, "x"), arg(b, "y")
    g = grad(b.build([x, y], [("value", b.add(op, (x, y)))]))
    verify(g)
    gx, gy = _ancestors(g, g.output("grad:x")), _ancestors(g, g.output("grad:y"))
    for i, only in enumerate([gx - gy, gy - gx]):
        rules = [g.nodes[j].rule for j in sorted(only) if g.nodes[j].rule not in (None, SEED)]
        assert rules, "the contribution has no backward node"
        assert set(rules) == {RULES[op].comments[i]}, (i, rules)
