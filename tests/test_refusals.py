"""What the tracer keeps and what it refuses, each with one line naming the model line.

Kept: numeric keyword defaults (the compiled functions take them too); a
`Module` that overrides only `parameters()`, as micrograd teaches.
Refused: randomness drawn while tracing (it would be frozen into the
module), `async def` and generator exports, non-numeric defaults.  Messages:
a model exception with a multi-line message is still one line; a
RecursionError names the model's line (not `<string>`); a bad coding
declaration names its line.
"""

from __future__ import annotations

import random
import re
import textwrap

import numpy as np
import pytest

import gradgen
from gradgen.cli import main
from gradgen.engine import Value


def compile_cli(tmp_path, source: str, capsys, name: str = "model.py"):
    model = tmp_path / name
    model.write_text(textwrap.dedent(source), encoding="utf-8")
    code = main(["compile", str(model), "-o", str(tmp_path / "out")])
    captured = capsys.readouterr()
    return code, captured.err, model


def refused(tmp_path, capsys, source: str, line: int, pattern: str) -> str:
    """Compile `source`: exit 1, one line `model.py:LINE: ...` matching `pattern`, nothing written."""
    code, err, model = compile_cli(tmp_path, source, capsys)
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gradgen: error: {model}:{line}: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out" / "model.py").exists()
    return lines[0]


# -- defaults --------------------------------------------------------------------


def test_numeric_defaults_are_kept_in_both_functions(tmp_path, capsys):
    code, err, _ = compile_cli(
        tmp_path,
        """
        import gradgen

        @gradgen.export
        def f(x, k=2.0, n=3):
            return x * k + n * x * x
        """,
        capsys,
    )
    assert code == 0, err
    text = (tmp_path / "out" / "model.py").read_text()
    assert "def f(x, k=2.0, n=3.0):" in text and "def f_grad(x, k=2.0, n=3.0):" in text
    ns: dict = {}
    exec(compile(text, "model", "exec"), ns)
    for args in [(1.5,), (1.5, -1.0), (1.5, -1.0, 0.25)]:
        leaves = [Value(a) for a in args]
        full = leaves + [Value(d) for d in (2.0, 3.0)[len(args) - 1 :]]
        out = full[0] * full[1] + full[2] * full[0] * full[0]
        out.backward()
        value, grads = ns["f_grad"](*args)
        assert ns["f"](*args) == value == out.data
        assert grads == tuple(v.grad for v in full)


@pytest.mark.parametrize("default", ["'relu'", "None", "True", "[1.0]"])
def test_non_numeric_defaults_are_refused_at_the_def_line(tmp_path, capsys, default):
    refused(
        tmp_path,
        capsys,
        f"""
        import gradgen

        @gradgen.export
        def f(x, k={default}):
            return x * 2.0
        """,
        5,
        r"argument k of f has a default of type \w+; .*give a number as the default",
    )


def test_an_array_argument_with_a_default_is_refused(tmp_path, capsys):
    refused(
        tmp_path,
        capsys,
        """
        import numpy as np
        import gradgen

        @gradgen.export(example=dict(X=np.zeros((2, 2))))
        def f(X=1.0):
            return X[0][0] * X[1][1]
        """,
        6,
        r"X of f is an array .* drop the default",
    )


# -- randomness -----------------------------------------------------------------

RANDOM_MODELS = {
    "random.random": ("import random", "mask = 1.0 if random.random() > 0.5 else 0.0", r"\(from random\)"),
    "random.uniform": ("import random", "mask = random.uniform(0, 1)", r"\(from random\)"),
    "np.random.rand": ("import numpy as np", "mask = float(np.random.rand())", r"\(from np\.random\)"),
    "a global Generator": (
        "import numpy as np\nrng = np.random.default_rng(0)",
        "mask = float(rng.normal())",
        r"\(from rng\)",
    ),
    "a global random.Random": ("import random\nr = random.Random(1)", "mask = r.gauss(0, 1)", r"\(from r\)"),
    "in a helper": (
        "import random\n\ndef noisy(x):\n    return x * random.random()\n",
        "mask = noisy(1.0)",
        r"\(from random\)",
    ),
}


@pytest.mark.parametrize("case", sorted(RANDOM_MODELS))
def test_randomness_while_tracing_is_refused_at_its_line(tmp_path, capsys, case):
    imports, draw, what = RANDOM_MODELS[case]
    line = 5 + imports.count("\n") + 1 if case != "in a helper" else 5
    before = random.getstate(), np.random.get_state()[1].copy()
    msg = refused(
        tmp_path,
        capsys,
        f"import gradgen\n{imports}\n\n@gradgen.export\ndef f(x):\n    {draw}\n    return x * mask\n",
        line,
        what + r".*frozen into the compiled module; pass random numbers .* as arguments",
    )
    assert "dropout mask" in msg
    # a refused compile leaves the global generators as they were
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()


def test_randomness_outside_the_trace_is_fine(tmp_path, capsys):
    """Drawing at import time (building an MLP after random.seed) is what every demo does."""
    code, err, _ = compile_cli(
        tmp_path,
        """
        import random
        import gradgen
        from gradgen import nn

        random.seed(3)
        noise = random.gauss(0, 1)
        model = nn.Neuron(2)

        @gradgen.export
        def f(x1, x2):
            return model([x1, x2]) * noise
        """,
        capsys,
    )
    assert code == 0, err


# -- modules that override parameters() -----------------------------------------------


def test_a_module_overriding_only_parameters_compiles_like_the_engine(tmp_path, capsys):
    code, err, model = compile_cli(
        tmp_path,
        """
        import gradgen
        from gradgen import nn
        from gradgen.engine import Value

        class Affine(nn.Module):
            def __init__(self):
                self.w = [Value(0.5), Value(-1.5)]
                self.b = Value(0.25)

            def __call__(self, x):
                return (self.w[0] * x[0] + self.w[1] * x[1] + self.b).tanh()

            def parameters(self):
                return self.w + [self.b]

        class Two(nn.Module):
            def __init__(self):
                self.a = Affine()
                self.c = Affine()
                self.scale = Value(3.0)

            def __call__(self, x):
                return self.a(x) * self.c(x) * self.scale

            def parameters(self):
                return self.a.parameters() + self.c.parameters() + [self.scale]

        net = Two()

        @gradgen.export
        def f(x1, x2):
            return net([x1, x2])
        """,
        capsys,
    )
    assert code == 0, err
    loaded, _ = gradgen.frontend.loader.load_model(str(model))
    net = loaded.net
    names = [n for n, _ in net.named_parameters()]
    assert names == ["a.w.0", "a.w.1", "a.b", "c.w.0", "c.w.1", "c.b", "scale"]
    ns: dict = {}
    exec(compile((tmp_path / "out" / "model.py").read_text(), "m", "exec"), ns)
    arrays = gradgen.params.read(net)
    value, grads = ns["f_grad"](*arrays.values(), 0.3, -0.7)
    out = net([Value(0.3), Value(-0.7)])
    out.backward()
    assert value == pytest.approx(out.data, rel=1e-12)
    flat = [float(np.asarray(g).reshape(-1)[k]) for g in grads[: len(arrays)] for k in range(np.size(g))]
    assert flat == pytest.approx([p.grad for p in net.parameters()], rel=1e-12)


def test_a_value_that_is_no_parameter_is_one_line_not_a_recursion(tmp_path, capsys):
    """parameters() and named_parameters() that disagree: the stray Value is named as the problem."""
    refused(
        tmp_path,
        capsys,
        """
        import gradgen
        from gradgen import nn
        from gradgen.engine import Value

        class Lin(nn.Module):
            def __init__(self):
                self.w = Value(0.5)
                self.hidden = Value(2.0)

            def __call__(self, x):
                return self.w * x * self.hidden

            def parameters(self):
                return [self.w]

        m = Lin()

        @gradgen.export
        def f(x):
            return m(x)
        """,
        12,
        r"neither an argument nor a parameter .*\(data=2\.0\); pass it in as an argument",
    )


# -- messages -------------------------------------------------------------------------


def test_a_multi_line_exception_is_one_line(tmp_path, capsys):
    refused(
        tmp_path,
        capsys,
        """
        import gradgen

        @gradgen.export
        def f(x):
            raise ValueError("line one\\nline two\\r\\n\\tline three")
        """,
        6,
        r"ValueError: line one line two line three; fix the model",
    )


def test_a_recursion_error_names_the_model_line(tmp_path, capsys):
    refused(
        tmp_path,
        capsys,
        """
        import gradgen

        def deeper(x, n):
            return deeper(x * 1.0001, n + 1)

        @gradgen.export
        def f(x):
            return deeper(x, 0)
        """,
        5,
        r"RecursionError: .*recursion that does not end",
    )


@pytest.mark.parametrize(
    "head, body, kind",
    [("async def", "return x * 2", "an async def"), ("def", "yield x * 2", "a generator")],
)
def test_async_and_generator_exports_are_refused_without_warnings(tmp_path, capsys, recwarn, head, body, kind):
    refused(
        tmp_path,
        capsys,
        f"""
        import gradgen

        @gradgen.export
        {head} f(x):
            {body}
        """,
        5,
        f"f is {kind}.*define it with `def`",
    )
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_bad_coding_declaration_names_its_line(tmp_path, capsys):
    model = tmp_path / "model.py"
    model.write_bytes(b"#!/usr/bin/env python\n# -*- coding: klingon -*-\nimport gradgen\n")
    assert main(["compile", str(model), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gradgen: error: {model}:2: unknown encoding: klingon: fix the coding declaration")
    assert len(err.splitlines()) == 1


def test_gradgen_error_is_one_line_whatever_it_holds():
    e = gradgen.GradgenError("bad\nthing\x00 here\u2028now", "dir/we\nird.py", 3)
    assert str(e) == "dir/we ird.py:3: bad thing here now"


# -- Values made inside the model are constants -------------------------------------------


def test_values_made_while_tracing_are_constants(tmp_path, capsys):
    """`acc = Value(0.0)`, `sum(xs, Value(0))`, `Value(2.0) * 3`: constants, as the engine computes them."""
    code, err, model = compile_cli(
        tmp_path,
        """
        import gradgen
        from gradgen.engine import Value

        @gradgen.export
        def f(x, y):
            acc = Value(0.0)
            for i in range(3):
                acc = acc + x * i
            return sum([acc, y * x], Value(1)) * (Value(2.0) * 3) + Value(0.5).exp()
        """,
        capsys,
    )
    assert code == 0, err
    ns: dict = {}
    exec(compile((tmp_path / "out" / "model.py").read_text(), "m", "exec"), ns)
    loaded, (f,) = gradgen.frontend.loader.load_model(str(model))
    x, y = Value(0.3), Value(-1.2)
    out = f(x, y)
    out.backward()
    value, grads = ns["f_grad"](0.3, -1.2)
    assert value == out.data and grads == (x.grad, y.grad)
