"""The trace-time layer path (gradgen.frontend.layers) emits the scalar path's module, byte for byte.

Each case compiles a model twice, with the layer path off
(`layers.ENABLED = False`, what `GRADGEN_LAYERS=0` sets) and on, and
compares the module text; where the layer path should have been taken, it
checks that the trace is smaller (array ops, no per-weight products), and
where it should not (a partial row, mixed inputs, a lecture-style list of
examples), that the trace is the scalar one.  The gradients are checked
against the interpreted engine too.
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradgen
from gradgen import api, nn
from gradgen.frontend import layers
from gradgen.frontend.loader import load_model
from gradgen.ir.ops import Op

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def both(compile_):
    """(source without the layer path, source with it, traced forward graphs of each)."""
    old = layers.ENABLED
    try:
        layers.ENABLED = False
        scalar = compile_()
        layers.ENABLED = True
        array = compile_()
    finally:
        layers.ENABLED = old
    return scalar, array


def ops(compiled) -> set:
    return {n.op for ir in compiled.functions for n in ir.forward.nodes}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_compile_the_same_both_ways(path):
    """Every example's module is the same text with the layer path off and on."""
    scalar, array = both(lambda: api.compile_file(str(path), write=False))
    assert array.source == scalar.source
    if path.stem == "moons":  # gradgen.mean over an MLP: its layers took the array path
        assert Op.MATMUL in ops(array) and Op.MATMUL not in ops(scalar)
        assert len(array.functions[0].forward.nodes) < len(scalar.functions[0].forward.nodes)


def model_file(tmp_path, body: str) -> str:
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


MLP_BATCH = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed({seed})
model = nn.MLP({nin}, {nouts}{style})


def per_example(x, yi):
    out = model(x)
    outs = out if isinstance(out, list) else [out]
    return sum((o - yi) ** 2 for o in outs)


@gradgen.export(example=dict(X=np.zeros((1, {nin})), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(per_example, X, y)
"""


@pytest.mark.parametrize(
    "nin, nouts, style",
    [(3, [4, 1], ""), (5, [7, 6, 3], ""), (2, [8, 8, 1], ', style="lecture"'), (4, [3], ""), (2, [1], "")],
)
def test_mlp_over_a_batch_same_module_and_engine_gradients(tmp_path, nin, nouts, style):
    """An MLP under gradgen.mean: the same module both ways, its gradients those of the engine."""
    path = model_file(tmp_path, MLP_BATCH.format(seed=3, nin=nin, nouts=nouts, style=style))
    scalar, array = both(lambda: api.compile_file(path, write=False))
    assert array.source == scalar.source
    assert Op.MATMUL in ops(array) and Op.MATMUL not in ops(scalar)
    module, [fn] = load_model(path)
    rng = np.random.RandomState(0)
    X, y = rng.uniform(-1, 1, (6, nin)), rng.uniform(-1, 1, 6)
    params = gradgen.params.read(module.model)
    value, grads = array.loss_grad(*params.values(), X, y)
    out = fn(X, y)  # the interpreted engine
    module.model.zero_grad()
    out.backward()
    assert value == pytest.approx(out.data, rel=1e-12, abs=1e-12)
    for got, want in zip(grads, gradgen.params.read_grads(module.model).values()):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


ONE_EXAMPLE = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(5)
model = nn.MLP(4, [5, 2])
neuron = nn.Neuron(4)
lecture = nn.MLP(3, [4, 1], style="lecture")


@gradgen.export(example=dict(x=np.zeros(4)))
def one(x):
    a, b = model(x)
    return a * b


@gradgen.export(example=dict(x=np.zeros(4)))
def single_neuron(x):
    return neuron(x).tanh()


@gradgen.export(example=dict(x=np.zeros(4)))
def partial_row(x):
    a, b = model([x[0], x[1], x[2], x[0]])
    return a + b


@gradgen.export(example=dict(x=np.zeros(4)))
def mixed(x):
    a, b = model([x[0] * 2.0, x[1], x[2], x[3]])
    return a - b


@gradgen.export(example=dict(xs=np.zeros((2, 3)), ys=np.zeros(2)))
def lecture_loss(xs, ys):
    return sum((lecture(x) - y) ** 2 for x, y in zip(xs, ys))
"""


def test_one_example_neuron_partial_and_mixed_rows(tmp_path):
    """One example's row (a vector argument) takes the layer path; a single Neuron, a partial or
    mixed row and the lecture's list of examples stay scalar; the module is the same both ways."""
    path = model_file(tmp_path, ONE_EXAMPLE)
    scalar, array = both(lambda: api.compile_file(path, write=False))
    assert array.source == scalar.source
    taken = {ir.name: any(n.op is Op.MATMUL for n in ir.forward.nodes) for ir in array.functions}
    assert taken == dict(one=True, single_neuron=False, partial_row=False, mixed=False, lecture_loss=False)
    module, fns = load_model(path)
    x = np.array([0.3, -1.2, 0.7, 2.0])
    params = gradgen.params.read(module.model)
    value, grads = array.one_grad(*params.values(), x)
    out = fns[0](x)
    module.model.zero_grad()
    out.backward()
    assert value == pytest.approx(out.data, rel=1e-12)
    for got, want in zip(grads, gradgen.params.read_grads(module.model).values()):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_layer_inside_compile_function_and_env_switch_default():
    """compile_function of a function over a Layer (not an MLP) takes the path too; ENABLED reads
    GRADGEN_LAYERS (on unless it is 0)."""
    random.seed(1)
    lay = nn.Layer(3, 4)

    def per(x):
        return sum(h * h for h in lay(x))

    @gradgen.export(example=dict(X=np.zeros((1, 3))), params=lay)
    def f(X):
        return gradgen.mean(per, X)

    scalar, array = both(lambda: gradgen.compile_function(f))
    assert array.source == scalar.source
    assert Op.MATMUL in ops(array)
    assert layers.ENABLED is (__import__("os").environ.get("GRADGEN_LAYERS", "1") != "0")


PARTIAL_USE = """
import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(4)
layer = nn.Layer(3, 3)


def two(x):
    o = layer(x)
    return o[0] + o[1]


@gradgen.export(example=dict(X=np.zeros((1, 3))))
def f(X):
    return gradgen.mean(two, X)
"""


def test_layer_whose_outputs_are_partly_used_computes_the_same_numbers(tmp_path):
    """Deliberate difference: 2 of a layer's 3 outputs used.  The scalar path computes rows 0 and 1
    one by one (DCE dropped the third neuron); the layer path computes the whole X @ W.T + b and
    reads two columns.  The values and gradients agree to rounding."""
    path = model_file(tmp_path, PARTIAL_USE)
    scalar, array = both(lambda: api.compile_file(path, write=False))
    assert Op.MATMUL in ops(array)
    module, _ = load_model(path)
    params = list(gradgen.params.read(module.layer).values())
    X = np.random.RandomState(1).uniform(-1, 1, (5, 3))
    v0, g0 = scalar.f_grad(*params, X)
    v1, g1 = array.f_grad(*params, X)
    assert v1 == pytest.approx(v0, rel=1e-12)
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
