"""Model files and planted bugs for the `gradgen check` tests (test_check_models.py, test_check_kinks.py).

Each model is the kind of file a learner writes: gradgen.nn modules among
the globals (micrograd's zero biases), called on scalar arguments or on
data arrays.  `plant` compiles a model into a module file and then breaks
it, so a test can run `gradgen check MODEL --module FILE` on a wrong
gradient and expect exit status 1.
"""

import re
import textwrap

from gradgen.cli import main

HEAD = "import random\n\nimport numpy as np\n\nimport gradgen\nfrom gradgen import nn\n\nrandom.seed(1)\n"

MODELS = {
    # a global nn.Neuron called on two scalar arguments (the first class)
    "neuron": """
        n = nn.Neuron(2)

        @gradgen.export(example=dict(x1=1.0, x2=-0.5))
        def f(x1, x2):
            return n([x1, x2])
        """,
    "layer": """
        layer = nn.Layer(2, 3, nonlin=False)

        @gradgen.export
        def f(x1, x2):
            a, b, c = layer([x1, x2])
            return (a + b * c).tanh()
        """,
    # zero biases at x = 0: every hidden ReLU sits on its kink at the example
    "mlp": """
        model = nn.MLP(2, [3, 1])

        @gradgen.export(example=dict(x1=0.0, x2=0.0))
        def f(x1, x2):
            return (model([x1, x2]) - 1) ** 2
        """,
    "params": """
        model = nn.MLP(2, [2, 1])
        other = nn.Neuron(1)

        @gradgen.export(params=model, example=dict(x1=0.5, x2=-1.0))
        def f(x1, x2):
            return (model([x1, x2]) * x2 + 1).tanh()
        """,
    "two_modules": """
        a = nn.Neuron(2, act="tanh")
        b = nn.Neuron(2, nonlin=False)

        @gradgen.export(example=dict(x1=0.5, x2=0.25))
        def f(x1, x2):
            return b([a([x1, x2]), x2]) * x1
        """,
    # data arrays and a scalar argument; the example's first row is zeros (ReLUs on their kinks)
    "data": """
        model = nn.MLP(2, [4, 3, 1])

        def sq(x, y):
            return (model(x) - y) ** 2

        @gradgen.export(example=dict(X=[[0.0, 0.0], [1.0, -2.0]], y=[1.0, -1.0], alpha=0.5))
        def loss(X, y, alpha):
            reg = sum(p * p for p in model.parameters())
            return gradgen.mean(sq, X, y) + alpha * alpha * reg
        """,
    # scalar functions with a kink: relu(x + b) at x + b = 0
    "relu": """
        @gradgen.export(example=dict(x=0.0, b=0.0))
        def f(x, b):
            return (x + b).relu() * 3 + x
        """,
    # |x| and a leaky ReLU written with relu: the engine's relu'(0) = 0 gives 0 at x = 0,
    # which is between the one-sided slopes for |x| and outside them for the leaky one
    "abs": """
        @gradgen.export(example=dict(x=0.0, y=0.0))
        def f(x, y):
            return x.relu() + (-x).relu() + (y.relu() - 0.1 * (-y).relu()) + x * y
        """,
}


def write_model(tmp_path, name: str, source: str | None = None) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(HEAD + textwrap.dedent(source if source is not None else MODELS[name]))
    return str(path)


def compile_to(tmp_path, model: str) -> str:
    out = tmp_path / "compiled"
    assert main(["compile", model, "-o", str(out)]) == 0
    return str(out / (model.rsplit("/", 1)[-1]))


SCALE = """

import functools as _functools


def _scaled(true_grad, factors):
    @_functools.wraps(true_grad)  # keeps the signature check reads
    def wrong(*args):
        value, grads = true_grad(*args)
        return value, tuple(g * k for g, k in zip(grads, factors))

    return wrong


{name}_grad = _scaled({name}_grad, {factors})
"""


def plant(tmp_path, model: str, name: str = "f", factors=None, replace=None) -> str:
    """Compile `model`, then break `name_grad`: scale its gradients by `factors` (default 2 for
    all), or replace text in the module (`replace=(old, new)`, which must occur)."""
    module = compile_to(tmp_path, model)
    with open(module) as fh:
        text = fh.read()
    if replace is not None:
        old, new = replace
        assert re.search(re.escape(old), text), old
        text = text.replace(old, new)
    else:
        text += SCALE.format(name=name, factors=tuple(factors) if factors else "[2.0] * 99")
    with open(module, "w") as fh:
        fh.write(text)
    return module


# -- running check ---------------------------------------------------------------


def run(capsys, *argv):
    rc = main(["check", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def rows(out: str) -> dict[str, str]:
    """{comparison: its result (PASS, FAIL or SKIP)} for the rows of the (last) table in `out`."""
    found = {}
    for line in out.splitlines():
        m = re.match(
            r"\s+((?:compiled|your backward\(\)) vs (?:engine|torch|finite diff|your backward\(\))"
            r"|your backward\(\) per op)\s.*?\b(PASS|FAIL|SKIP)\b",
            line,
        )
        if m:
            found[m.group(1)] = m.group(2)
    return found
