"""Property test: random DAGs, compiled vs interpreted vs PyTorch.

Hypothesis draws a program as a DAG, not a tree: every new node takes its
arguments from *all* earlier nodes (inputs included), so fan-out, values
used twice by one op (`v * v`) and repeated subexpressions (the same
expression written twice, which CSE merges) are common.  Ops: add, sub,
mul, div, neg, pow (2, 3, -1, 0.5), exp, log, tanh, relu, sigmoid, and
constants on either side of a binary op.  Each node stays inside its op's
domain and within bounded magnitude by construction:

* log, fractional and negative powers and denominators get a
  positive-by-construction argument (`a * a + 0.5`, `a.tanh().exp()`,
  `a.sigmoid() + 0.25`);
* an operand whose magnitude bound exceeds `LIMIT` is squashed with
  `.tanh()` before `exp`, `*` and `**`.

About one node in two gets no variable: its users contain its expression
text, so the emitter's inlining and parenthesisation are exercised too.

The program is written as Python source, the same function runs on
`Value`s (the interpreted engine), through `gradgen.compile_function`, and
on float64 tensors (torch.autograd).  Compiled value and gradients must
equal the engine's to 1e-12 (relative, with abs 1e-12: summation order of
fan-out gradients may differ) and torch's to 1e-9.  Hypothesis is
derandomised, so CI sees the same examples every run.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import gradgen
from gradgen.engine import Value, topological_order
from gradgen.passes import optimize
from support import load_function

LIMIT = 4.0  # operands bounded by more than this are squashed with tanh first
CONSTS = [0.5, 2.0, -1.5, 3.0, 0.25]
UNARY = [
    "neg",
    "pow2",
    "pow3",
    "pow-1",
    "pow0.5",
    "exp",
    "log",
    "tanh",
    "relu",
    "sigmoid",
]
BINARY = ["add", "sub", "mul", "div"]


def _squash(expr: str, bound: float) -> tuple[str, float]:
    return (f"{expr}.tanh()", 1.0) if bound > LIMIT else (expr, bound)


def _positive(draw, expr: str, bound: float) -> tuple[str, float, float]:
    """(positive expression, lower bound, upper bound) built from `expr`."""
    kind = draw(st.sampled_from(["square", "exp", "sigmoid"]))
    if kind == "square":
        e, b = _squash(expr, bound)
        return f"({e} * {e} + 0.5)", 0.5, b * b + 0.5
    if kind == "exp":
        return f"{expr}.tanh().exp()", math.exp(-1), math.exp(1)
    return f"({expr}.sigmoid() + 0.25)", 0.25, 1.25


@st.composite
def programs(draw):
    """(source of `def f(x0, ...)`, list of argument values)."""
    n_in = draw(st.integers(1, 4))
    n_nodes = draw(st.integers(1, 12))
    names = [f"x{i}" for i in range(n_in)]
    bound = [2.0] * n_in  # |value| <= bound
    exprs: list[str | None] = [None] * n_in  # the expression of each non-input node
    args_of: list[set[int]] = [set() for _ in range(n_in)]  # what each node reads
    lines = []
    for i in range(n_nodes):
        pick = st.integers(0, len(names) - 1)
        kind = draw(st.sampled_from(["unary", "binary", "binary", "repeat"]))
        if kind == "repeat" and any(e is not None for e in exprs):
            # the same expression again, as a new node: a shared subexpression for CSE
            j = draw(st.sampled_from([k for k, e in enumerate(exprs) if e is not None]))
            expr, b, uses = exprs[j], bound[j], args_of[j]
        elif kind == "unary" or kind == "repeat":
            op = draw(st.sampled_from(UNARY))
            a = draw(pick)
            uses = {a}
            x, bx = names[a], bound[a]
            if op == "neg":
                expr, b = f"-{x}", bx
            elif op in ("pow2", "pow3"):
                k = int(op[3:])
                e, be = _squash(x, bx)
                expr, b = f"{e} ** {k}", be**k
            elif op in ("pow-1", "pow0.5"):
                p, lo, hi = _positive(draw, x, bx)
                expr, b = (
                    (f"{p} ** -1", 1 / lo)
                    if op == "pow-1"
                    else (f"{p} ** 0.5", math.sqrt(hi))
                )
            elif op == "exp":
                e, be = _squash(x, bx)
                expr, b = f"{e}.exp()", math.exp(be)
            elif op == "log":
                p, lo, hi = _positive(draw, x, bx)
                expr, b = f"{p}.log()", max(abs(math.log(lo)), abs(math.log(hi)))
            elif op == "tanh":
                expr, b = f"{x}.tanh()", 1.0
            elif op == "relu":
                expr, b = f"{x}.relu()", bx
            else:
                expr, b = f"{x}.sigmoid()", 1.0
        else:
            op = draw(st.sampled_from(BINARY))
            a, c = draw(pick), draw(pick)
            const = draw(st.sampled_from([None, None, None, "left", "right"]))
            uses = {a}
            x, bx = names[a], bound[a]
            if const is None:
                uses.add(c)
                y, by = names[c], bound[c]
            else:
                k = draw(st.sampled_from(CONSTS))
                y, by = repr(k), abs(k)
            if const == "left":
                (x, bx), (y, by) = (y, by), (x, bx)
            if op == "add":
                expr, b = f"{x} + {y}", bx + by
            elif op == "sub":
                expr, b = f"{x} - {y}", bx + by
            elif op == "mul":
                (ex, bx), (ey, by) = _squash(x, bx), _squash(y, by)
                expr, b = f"{ex} * {ey}", bx * by
            else:
                if const == "right":  # a constant denominator: x / 2.0
                    expr, b = f"{x} / {y}", bx / by
                else:
                    p, lo, _ = _positive(draw, y, by)
                    expr, b = f"{x} / {p}", bx / lo
        if len(expr) < 60 and draw(st.booleans()):
            # no variable: users get the expression text, so the emitter must inline it
            # (and, where it has several users, CSE must merge the copies)
            name = f"({expr})"
        else:
            name = f"v{i}"
            lines.append(f"    {name} = {expr}")
        names.append(name)
        bound.append(b)
        exprs.append(expr)
        args_of.append(uses)
    # every node reaches the output: return the sum of the nodes nobody reads
    read = set().union(*args_of)
    sinks = [n for k, n in enumerate(names) if k >= n_in and k not in read]
    lines.append(f"    return {' + '.join(sinks)}")
    params = ", ".join(names[:n_in])
    source = f"def f({params}):\n" + "\n".join(lines) + "\n"
    xs = draw(
        st.lists(
            st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False),
            min_size=n_in,
            max_size=n_in,
        )
    )
    return source, xs




@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("property_models")




def engine(fn, xs):
    vs = [Value(x) for x in xs]
    out = fn(*vs)
    out.backward()
    kinks = [v._prev[0].data for v in topological_order(out) if v._op == "ReLU"]
    return out.data, [v.grad for v in vs], kinks


def torch_grad(fn, xs):
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = fn(*ts)
    grads = torch.autograd.grad(out, ts, allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def close(a, b, tol):
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs())
def test_compiled_equals_engine_and_torch(program, model_dir):
    source, xs = program
    note(source)
    note(f"xs = {xs!r}")
    fn = load_function(source, model_dir, "property")
    mod = gradgen.compile_function(fn, check=True)
    note(mod.source)
    for ir in mod.functions:  # the pipeline stopped at a fixed point
        assert optimize(ir.grad_opt, check=True) == ir.grad_opt

    value, grads, kinks = engine(fn, xs)
    c_value, c_grads = mod.f_grad(*xs)
    assert len(c_grads) == len(xs)
    assert close(mod.f(*xs), c_value, 1e-12)
    assert close(c_value, value, 1e-12), (c_value, value)
    for i, (c, e) in enumerate(zip(c_grads, grads)):
        assert close(c, e, 1e-12), (f"x{i}", c, e)

    t_value, t_grads = torch_grad(fn, xs)
    assert close(c_value, t_value, 1e-9), (c_value, t_value)
    if any(abs(k) < 1e-9 for k in kinks):
        return  # a relu argument at (or a rounding away from) its kink: derivatives may differ
    for i, (c, t) in enumerate(zip(c_grads, t_grads)):
        assert close(c, t, 1e-9), (f"x{i}", c, t)


def test_generator_draws_dags_with_fan_out():
    """Guard on the generator itself: shared values and repeated expressions are common."""
    import re
    from collections import Counter

    drawn = []

    @settings(max_examples=200, derandomize=True, database=None, deadline=None)
    @given(programs())
    def collect(program):
        drawn.append(program[0])

    collect()
    fan_out = repeats = 0
    for src in drawn:
        rhs = [ln.split(" = ", 1)[-1] for ln in src.splitlines()[1:]]
        refs = Counter(t for r in rhs for t in re.findall(r"\b[vx]\d+\b", r))
        fan_out += any(c >= 2 for c in refs.values())
        calls = Counter(m for r in rhs for m in re.findall(r"\([^()]+\)", r))
        repeats += any(c >= 2 for c in calls.values()) or len(set(rhs)) < len(rhs)
    assert fan_out >= len(drawn) // 2, (fan_out, len(drawn))
    assert repeats >= len(drawn) // 4, (repeats, len(drawn))


INNER = [
    "a + b",
    "a - b",
    "a * b",
    "a / b",
    "-a",
    "a ** 2",
    "a ** -1",
    "a.tanh()",
    "a * -1.5",
]
OUTER = [
    "X + c", "c + X", "X - c", "c - X", "X * c", "c * X", "X / c", "c / X",
    "-X", "X ** 2", "X ** 3", "X ** -1", "X.exp()", "X - -1.5", "-1.5 - X",
]  # fmt: skip


def test_every_nesting_of_two_operators_is_emitted_with_the_right_parentheses(tmp_path):
    """Each inner op inside each outer op (both sides): compiled == engine, so precedence is right."""
    sources, cases = [], []
    for i, inner in enumerate(INNER):
        for j, outer in enumerate(OUTER):
            name = f"n{i}_{j}"
            expr = outer.replace("X", f"({inner})")
            sources.append(f"def {name}(a, b, c):\n    return {expr}\n")
            cases.append((name, expr))
    path = tmp_path / "nesting.py"
    path.write_text("\n\n".join(sources))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    fns = [namespace[name] for name, _ in cases]
    mod = gradgen.compile_function(*fns, check=True)
    point = (1.3, -0.7, 2.1)
    for (name, expr), fn in zip(cases, fns):
        value, grads, _ = engine(fn, point)
        c_value, c_grads = getattr(mod, name + "_grad")(*point)
        assert close(getattr(mod, name)(*point), value, 1e-12), expr
        assert close(c_value, value, 1e-12), expr
        assert all(close(c, e, 1e-12) for c, e in zip(c_grads, grads)), (
            expr,
            c_grads,
            grads,
        )
