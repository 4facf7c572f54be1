"""Every operator, with every kind of operand, on either side, computes what the engine computes.

A traced argument meets another argument, a module parameter, a Python int
or float, or a NumPy scalar, through `+ - * / **` and unary `-`, in both
orders.  Regression: `x / p` with `p` a module parameter used to compile to
`x * p` (the division fell through to a product).
"""

from __future__ import annotations

import numpy as np
import pytest

import gradgen
from gradgen import nn
from gradgen.engine import Value

neuron = nn.Neuron(1)
neuron.w[0].data = 0.75

OPERANDS = {
    "argument": lambda x, y: y,
    "parameter": lambda x, y: neuron.w[0],
    "int": lambda x, y: 3,
    "float": lambda x, y: -1.25,
    "np.float64": lambda x, y: np.float64(2.5),
    "np.int64": lambda x, y: np.int64(2),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


def _cases():
    for op in sorted(BINARY):
        for kind in sorted(OPERANDS):
            for side in ("left", "right"):
                if kind.startswith("np.") and side == "right":
                    continue  # np.float64(2.5) * Value: NumPy's own operator runs first, not gradgen's
                yield op, kind, side


def _model(op, kind, side):
    def f(x, y):
        other = OPERANDS[kind](x, y)
        first, second = (x, other) if side == "left" else (other, x)
        return (BINARY[op](first, second) + (-x) ** 2).tanh()

    f.__name__ = "f"
    return gradgen.export(f)


@pytest.mark.parametrize("rerolling", [True, False], ids=["rerolled", "per-element"])
@pytest.mark.parametrize("op, kind, side", list(_cases()), ids=lambda v: str(v))
def test_operator_and_operand_match_the_engine(op, kind, side, rerolling):
    f = _model(op, kind, side)
    compiled = gradgen.compile_function(f, check=True, rerolling=rerolling)
    w = gradgen.params.read(neuron)
    x, y = Value(0.6), Value(-1.7)
    neuron.zero_grad()
    out = f(x, y)
    out.backward()
    args = [w["w"], w["b"], 0.6, -1.7] if kind == "parameter" else [0.6, -1.7]
    value, grads = compiled.f_grad(*args)
    assert float(value) == pytest.approx(out.data, rel=1e-14)
    want = [x.grad, y.grad]
    got = [float(g) for g in grads[-2:]]
    assert got == pytest.approx(want, rel=1e-14, abs=1e-15)
    if kind == "parameter":
        assert float(np.asarray(grads[0])[0]) == pytest.approx(neuron.w[0].grad, rel=1e-14)


@pytest.mark.parametrize("zero", [0, 0.0, -0.0])
def test_subtracting_a_zero_keeps_the_engines_sign_of_zero(zero):
    """The engine's x - 0 (an int) is x + 0, which turns -0.0 into 0.0; x - 0.0 keeps -0.0."""

    def f(x):
        return x - zero

    compiled = gradgen.compile_function(gradgen.export(f))
    out = f(Value(-0.0))
    value = compiled.f(-0.0)
    assert (value, str(value)) == (out.data, str(out.data))
