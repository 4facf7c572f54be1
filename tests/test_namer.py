"""Names from the model's locals without a global `sys.settrace` (gradgen.frontend.naming.Namer).

The namer reads a model frame's locals at the ops it records (where its line changed or the
code jumped back), when the innermost model frame changes, and at the end; the names must be
the ones a line hook on every model frame gave (the rule in naming's docstring).  The expected
lists below are what that line hook (gradgen before session 19) named, construct by construct;
the compiled module is checked against the engine too.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

import gradgen
from gradgen.engine import Value
from gradgen.frontend.loader import load_model
from gradgen.frontend.trace import trace_function

MODEL = """
import sys

import gradgen

TRACERS = []  # whether a global trace function was set, as the exported function saw it


def halve(v):
    return v * 0.5


def pick(v, w):
    outs = [v * w, v + w]
    return outs[0]  # computed by the call and held by no local: named pick


def gen(v):
    for k in range(3):
        yield v * k


class Block:
    def forward(self, x):
        return (x * 3.0).tanh()


blk = Block()


@gradgen.export
def f(x, y):
    TRACERS.append(sys.gettrace())
    h = halve(x)
    a = x * y; b = a + 1
    d = halve(b) + halve(d0 := b * 3)
    for k in range(2):
        n = h * x + k
    m = blk.forward(n) + pick(x, y)
    u = sum(gen(m))
    q = u
    r = q / x
    seen = r.label
    r.label = seen + "_r"
    return (lambda v: v * v)(r) + d + sum(v * v for v in (a, b))
"""

# (op, name) of every node but inputs and constants, as the line hook named them
EXPECTED = [
    ("mul", "h"),  # a local of the caller wins over the helper's name
    ("mul", "a"),
    ("add", "b"),  # two statements on one line
    ("mul", "halve"),
    ("mul", "v"),  # `d0 := b * 3` is bound after the line began: halve's argument names it first
    ("mul", "halve"),
    ("add", "d"),
    ("mul", None),
    ("add", "n"),  # a loop rebinds n: each iteration's value is named
    ("mul", None),
    ("add", "n"),
    ("mul", None),
    ("tanh", "forward"),  # a method with a plain name is a helper
    ("mul", "pick"),
    ("add", None),
    ("add", "m"),
    ("mul", "gen"),  # a generator's yielded values are named after it
    ("add", None),
    ("mul", "gen"),
    ("add", None),
    ("mul", "gen"),
    ("add", "u"),  # u, not q: the first local bound to it
    ("pow", None),
    ("mul", "r_r"),  # r.label read "r" (the local named it first), then set
    ("mul", None),  # a lambda names nothing
    ("add", None),
    ("mul", None),  # nor a generator expression
    ("add", None),
    ("mul", None),
    ("add", None),
    ("add", "out"),
]


def _load(tmp_path, source: str):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    module, fns = load_model(str(path))
    return module, {f.__name__: f for f in fns}


def test_names_are_the_line_hooks_and_the_module_computes_the_engines_numbers(tmp_path):
    module, fns = _load(tmp_path, MODEL)
    graph = trace_function(fns["f"])[0]
    assert [(n.op.value, n.name) for n in graph.nodes if n.op.value not in ("input", "const")] == EXPECTED
    compiled = gradgen.compile_function(fns["f"])
    for point in [(0.7, 1.3), (-0.4, 2.1)]:
        vs = [Value(p) for p in point]
        out = fns["f"](*vs)
        out.backward()
        value, grads = compiled.f_grad(*point)
        assert value == pytest.approx(out.data, rel=1e-12)
        assert grads == pytest.approx(tuple(v.grad for v in vs), rel=1e-12)


def test_no_global_trace_function_runs_the_model_and_the_callers_is_restored(tmp_path):
    """The exported function runs with no trace function (the namer needs none outside helpers),
    and a trace function set before (a debugger, coverage) is back afterwards."""
    module, fns = _load(tmp_path, MODEL)

    def mine(frame, event, arg):
        return None

    old = sys.gettrace()
    sys.settrace(mine)
    try:
        trace_function(fns["f"])
        after = sys.gettrace()
    finally:
        sys.settrace(old)
    assert module.TRACERS == [None]
    assert after is mine


def test_an_alias_made_on_a_line_without_ops_does_not_rename(tmp_path):
    """`t = x * y` then `s = t` (no op on that line): t names it, the first local bound to it."""
    _, fns = _load(
        tmp_path,
        """
        import gradgen

        @gradgen.export
        def f(x, y):
            t = x * y
            s = t
            w = s + 1.0
            return w * w
        """,
    )
    graph = trace_function(fns["f"])[0]
    assert [(n.op.value, n.name) for n in graph.nodes if n.op.value not in ("input", "const")] == [
        ("mul", "t"),
        ("add", "w"),
        ("mul", "out"),
    ]


def test_a_helper_called_by_name_is_named_without_a_trace_function_and_put_back(tmp_path):
    """A model-file function called through its global name is wrapped while the trace runs (the
    wrapper sees its result, so no return hook and no trace function is needed) and put back
    afterwards; one called otherwise (here a method) still gets its name, through the hook."""
    module, fns = _load(
        tmp_path,
        """
        import sys

        import gradgen

        SEEN = []


        def sq(v):
            w = v * v
            SEEN.append(sys.gettrace())
            return w + 1.0


        class Box:
            def cube(self, v):
                w = v * v * v
                SEEN.append(sys.gettrace() is not None)
                return w + 2.0


        box = Box()


        @gradgen.export
        def f(x, y):
            return sq(x) * box.cube(y)
        """,
    )
    original = module.sq
    graph = trace_function(fns["f"])[0]
    assert [(n.op.value, n.name) for n in graph.nodes if n.op.value not in ("input", "const")] == [
        ("mul", "w"),
        ("add", "sq"),
        ("mul", None),
        ("mul", "w"),
        ("add", "cube"),
        ("mul", "out"),
    ]
    assert module.SEEN == [None, True]
    assert module.sq is original
    value, grads = gradgen.compile_function(fns["f"]).f_grad(0.5, 1.5)
    assert value == pytest.approx((0.5**2 + 1.0) * (1.5**3 + 2.0), rel=1e-15)
    assert grads == pytest.approx((2 * 0.5 * (1.5**3 + 2.0), (0.5**2 + 1.0) * 3 * 1.5**2), rel=1e-15)


def test_a_helper_that_records_nothing_names_what_it_is_passed(tmp_path):
    """A line hook named a value passed to a model function after the parameter, even when that
    function records no op (`ident`, a recursion's last call, `act` by keyword): the wrapper of a
    helper called by name, and the hook inside a recursion, name it the same way."""
    _, fns = _load(
        tmp_path,
        """
        import gradgen


        def ident(v):
            return v


        def act(v, use=False):
            return v.relu() if use else v


        def fact(v, k):
            return v if k == 0 else fact(v * 0.5, k - 1) + 1.0


        @gradgen.export
        def f(x, y):
            a = ident(x * y)
            b = act(v=a * 2.0) + act(a * 3.0, use=True)
            return b * fact(x, 2)
        """,
    )
    graph = trace_function(fns["f"])[0]
    assert [(n.op.value, n.name) for n in graph.nodes if n.op.value not in ("input", "const")] == [
        ("mul", "v"),
        ("mul", "v"),
        ("mul", "v"),
        ("relu", "act"),
        ("add", "b"),
        ("mul", "v"),
        ("mul", "v"),
        ("add", "fact"),  # each level's sum is returned by a call of fact
        ("add", "fact"),
        ("mul", "out"),
    ]
