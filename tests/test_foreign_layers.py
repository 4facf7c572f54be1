"""The foreign layer path (gradgen.frontend.foreign_layers): a foreign neuron, verified, then emulated.

Each case compiles a model on a foreign engine twice, with the layer path off
(`layers.ENABLED = False`, what `GRADGEN_LAYERS=0` sets) and on, and compares
the module text; where the path should be taken, the trace has matrix
products and fewer nodes, and where it must not (a planted Neuron subclass
whose forward differs, a neuron that keeps state, a partial row), the trace
is the scalar one.  Values and gradients are checked against the engine's
own `backward()` (micrograd's, the lecture class's).
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradgen
from gradgen import api, params
from gradgen.frontend import layers
from gradgen.frontend.loader import load_model
from gradgen.ir.ops import Op

pytest.importorskip("micrograd")

ROOT = Path(__file__).resolve().parents[1]
LECTURE = (ROOT / "examples" / "lecture_value.py").read_text()
LECTURE_CLASSES = LECTURE[LECTURE.index("class Value:") : LECTURE.index("# the lecture's hand-built neuron")]


def both(path: str):
    """(module compiled with the layer path off, with it on)."""
    old = layers.ENABLED
    try:
        layers.ENABLED = False
        scalar = api.compile_file(path, write=False)
        layers.ENABLED = True
        array = api.compile_file(path, write=False)
    finally:
        layers.ENABLED = old
    return scalar, array


def matmuls(compiled) -> dict:
    return {ir.name: sum(n.op is Op.MATMUL for n in ir.forward.nodes) for ir in compiled.functions}


def model_file(tmp_path, body: str, stem: str = "model") -> str:
    path = tmp_path / f"{stem}.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def engine_grads(module, fn, *args):
    """(value, {array: gradient}) from the engine's own backward()."""
    model = module.model
    for p in model.parameters():
        p.grad = 0.0
    out = fn(*args)
    out.backward()
    return out.data, params.read_grads(model)


def check_against_engine(compiled, module, fn, args, rtol=1e-10):
    layout = params.read(module.model)
    value, grads = getattr(compiled, fn.__name__ + "_grad")(*layout.values(), *args)
    want, want_grads = engine_grads(module, fn, *args)
    assert value == pytest.approx(want, rel=rtol, abs=1e-12)
    for got, (name, w) in zip(grads, want_grads.items()):
        np.testing.assert_allclose(got, w, rtol=rtol, atol=1e-12, err_msg=name)


MICROGRAD_BATCH = """
import random
import numpy as np
import gradgen
from micrograd.engine import Value
from micrograd.nn import MLP

random.seed({seed})
model = MLP({nin}, {nouts})


def sq_err(x, yi):
    out = model(list(map(Value, x)))
    outs = out if isinstance(out, list) else [out]
    return sum((o - yi) ** 2 for o in outs)


@gradgen.export(example=dict(X=np.zeros(({rows}, {nin})), y=np.zeros({rows})))
def loss(X, y):
    return gradgen.mean(sq_err, X, y)
"""


@pytest.mark.parametrize(
    "nin, nouts, rows", [(3, [4, 1], 1), (5, [7, 6, 3], 1), (2, [8, 8, 1], 4), (4, [3], 2), (12, [6, 5, 2], 3)]
)
def test_micrograd_mlp_over_a_batch_same_module_and_micrograds_gradients(tmp_path, nin, nouts, rows):
    """micrograd's MLP under gradgen.mean: one matmul per layer in the trace, the scalar path's
    module byte for byte, micrograd's own backward() to 1e-10 (an example of several rows too)."""
    path = model_file(tmp_path, MICROGRAD_BATCH.format(seed=3, nin=nin, nouts=nouts, rows=rows))
    scalar, array = both(path)
    assert array.source == scalar.source
    assert matmuls(array) == {"loss": len(nouts)} and matmuls(scalar) == {"loss": 0}
    assert len(array.functions[0].forward.nodes) < len(scalar.functions[0].forward.nodes)
    module, [fn] = load_model(path)
    rng = np.random.RandomState(0)
    X, y = rng.uniform(-1, 1, (6, nin)), rng.uniform(-1, 1, 6)
    check_against_engine(array, module, fn, (X, y))


def test_micrograd_demo_takes_the_path_and_compiles_the_same_both_ways():
    """examples/micrograd_demo.py (the demo's svm loss + L2 over model.parameters(), and scores via
    gradgen.each): both functions' layers are emulated, and the module is the same."""
    path = str(ROOT / "examples" / "micrograd_demo.py")
    scalar, array = both(path)
    assert array.source == scalar.source
    assert matmuls(array) == {"loss": 3, "scores": 3} and matmuls(scalar) == {"loss": 0, "scores": 0}


LECTURE_BATCH = (
    """
import math
import random
import numpy as np
import gradgen

"""
    + LECTURE_CLASSES
    + """

random.seed(42)
model = MLP(3, [4, 4, 1])


def sq_err(x, yi):
    return (model(x) - yi) ** 2


@gradgen.export(example=dict(X=np.zeros((2, 3)), y=np.zeros(2)))
def loss(X, y):
    return gradgen.mean(sq_err, X, y)
"""
)


def test_lecture_class_typed_into_the_model_file(tmp_path):
    """The lecture's own Value/Neuron/Layer/MLP (tanh through math.exp, Neuron in the model file,
    inputs as the argument's floats): emulated (the sums and tanh keep the Neuron's lines), the
    same module as the scalar path, and the lecture class's backward() to 1e-9."""
    path = model_file(tmp_path, LECTURE_BATCH)
    scalar, array = both(path)
    assert array.source == scalar.source
    assert matmuls(array) == {"loss": 3} and matmuls(scalar) == {"loss": 0}
    module, [fn] = load_model(path)
    X = np.array([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    y = np.array([1.0, -1.0, -1.0, 1.0])
    check_against_engine(array, module, fn, (X, y), rtol=1e-9)


PLANTED = """
import random
import numpy as np
import gradgen
from micrograd.engine import Value
from micrograd.nn import MLP, Neuron


class Reversed(Neuron):
    # micrograd's forward, character for character, but over the inputs reversed
    def __call__(self, x):
        act = sum((wi*xi for wi, xi in zip(self.w, reversed(x))), self.b)
        return act.relu() if self.nonlin else act


class Remembers(Neuron):
    # micrograd's forward (inherited), and keeps its last output: not a pure neuron
    def __call__(self, x):
        self.last = super().__call__(x)
        return self.last


class Leaky(Neuron):
    # the same sum, another activation: x * 0.1 below 0 (built from the engine's ops)
    def __call__(self, x):
        act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() + (act * -1).relu() * -0.1


class Branchy(Neuron):
    # a branch on the numbers: relu where the first weight is positive, linear elsewhere (the
    # same at both points, and the first neuron of a layer cannot tell: the code is what says it)
    def __call__(self, x):
        act = sum((wi*xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.w[0].data > 0 else act


random.seed(11)
model = MLP(3, [4, 4, 1])
for layer in model.layers[1:]:
    for k, n in enumerate(layer.neurons):
        n.__class__ = {planted}


def sq_err(x, yi):
    return (model(list(map(Value, x))) - yi) ** 2


@gradgen.export(example=dict(X=np.zeros((1, 3)), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sq_err, X, y)
"""


@pytest.mark.parametrize("planted", ["Reversed", "Remembers", "Leaky", "Branchy"])
def test_planted_neuron_subclass_takes_the_scalar_path_and_is_right(tmp_path, planted):
    """Neurons whose class looks like micrograd's (w, b, a __call__) but whose forward differs or
    keeps state run as written: only the first layer (plain Neurons) gets a matmul, the planted
    layers after it run on its emulated outputs, and the gradients are micrograd's own backward()'s."""
    path = model_file(tmp_path, PLANTED.format(planted=planted))
    scalar, array = both(path)
    assert matmuls(array) == {"loss": 1} and matmuls(scalar) == {"loss": 0}
    assert array.source == scalar.source
    module, [fn] = load_model(path)
    X = np.random.RandomState(2).uniform(-1, 1, (5, 3))
    y = np.random.RandomState(3).uniform(-1, 1, 5)
    check_against_engine(array, module, fn, (X, y))
    check_against_engine(scalar, module, fn, (X, y))


ONE_EXAMPLE = """
import random
import numpy as np
import gradgen
from micrograd.engine import Value
from micrograd.nn import MLP, Layer

random.seed(5)
model = MLP(4, [5, 2])


@gradgen.export(example=dict(x=np.zeros(4)))
def values(x):
    a, b = model(list(map(Value, x)))
    return a * b


@gradgen.export(example=dict(x=np.zeros(4)))
def floats(x):
    a, b = model(x)
    return a - b


@gradgen.export(example=dict(x=np.zeros(4), z=np.zeros(4)))
def two_calls(x, z):
    a, b = model(list(map(Value, x)))
    c, d = model(list(map(Value, z)))
    return a * d + b * c


@gradgen.export(example=dict(x=np.zeros(4)))
def partial_row(x):
    a, b = model([x[0], x[1], x[2], x[0]])
    return a + b


@gradgen.export(example=dict(x=np.zeros(4)))
def computed_row(x):
    a, b = model([Value(x[0]) * 2.0, Value(x[1]), Value(x[2]), Value(x[3])])
    return a + b
"""


def test_vector_argument_as_values_and_floats_partial_and_computed_rows(tmp_path):
    """A vector argument's row, as Values or as its floats, is emulated (two calls on two lines:
    each layer's lines are its call's); a partial row and a row with a computed element run the
    first layer as written (and the second, fed by it, too)."""
    path = model_file(tmp_path, ONE_EXAMPLE)
    scalar, array = both(path)
    assert array.source == scalar.source
    assert matmuls(array) == dict(values=2, floats=2, two_calls=4, partial_row=0, computed_row=0)
    module, fns = load_model(path)
    x, z = np.array([0.3, -1.2, 0.7, 2.0]), np.array([1.1, 0.4, -0.9, 0.2])
    for fn in fns:
        check_against_engine(array, module, fn, (x, z) if fn.__name__ == "two_calls" else (x,))


def test_one_layer_called_on_two_rows_keeps_the_layer_names(tmp_path):
    """One MLP called on two rows in one function, on micrograd and on gradgen.nn: CSE shares the
    layers' transposes, and re-rolling still builds z0, z0_1, h0, ... as the scalar path does."""
    source = textwrap.dedent(ONE_EXAMPLE)
    head, rest = source.split("@gradgen.export", 1)
    two = "@gradgen.export" + rest.split("@gradgen.export")[2]
    nn_head = head.replace("from micrograd.engine import Value", "from gradgen.engine import Value")
    nn_head = nn_head.replace("from micrograd.nn import MLP, Layer", "from gradgen.nn import MLP, Layer")
    for stem, text in (("micrograd", head + two), ("nn", nn_head + two)):
        scalar, array = both(model_file(tmp_path, text, stem))
        assert array.source == scalar.source, stem
        assert "z0_1 = z @ transpose + b0" in array.source and matmuls(array) == {"two_calls": 4}


def test_layout_fast_path_equals_the_names_layout():
    """params._mlp_arrays gives exactly the arrays the generic (path-naming) layout gives, for
    micrograd's MLP and Layer, the lecture's classes and gradgen.nn's; a shape it does not know
    is left to it."""
    from micrograd import nn as mnn

    from gradgen import nn as gnn

    ns: dict = {}
    exec(compile("import math, random\n" + LECTURE_CLASSES, "lecture", "exec"), ns)
    random.seed(0)
    models = [mnn.MLP(5, [4, 3, 1]), mnn.Layer(3, 2), ns["MLP"](3, [4, 4, 1]), ns["Layer"](2, 3)]
    models += [gnn.MLP(5, [4, 3, 1]), gnn.Layer(3, 2)]
    for m in models:
        fast = params._mlp_arrays(m, "p_")
        assert fast is not None
        generic = _generic(m)
        assert [(a.name, a.shape) for a in fast] == [(a.name, a.shape) for a in generic]
        for a, b in zip(fast, generic):
            assert len(a.values) == len(b.values) and all(u is v for u, v in zip(a.values, b.values))
    ragged = mnn.MLP(3, [2, 1])
    ragged.layers[0].neurons[1].w.pop()
    tied = mnn.MLP(2, [2, 1])
    tied.layers[1].neurons[0].w[0] = tied.layers[0].neurons[0].b
    extra = mnn.MLP(2, [2, 1])
    extra.scale = mnn.Value(2.0)
    nn_ragged = gnn.MLP(3, [2, 1])
    nn_ragged.layers[0].neurons[1].w.pop()
    for m in (ragged, tied, extra, nn_ragged):
        assert params._mlp_arrays(m, "") is None


def _generic(m):
    saved = params._mlp_arrays
    params._mlp_arrays = lambda *a: None
    try:
        return params._arrays(m, "p_")
    finally:
        params._mlp_arrays = saved


def test_wrapping_an_argument_in_the_engines_class():
    """`V(x)` of a scalar argument is the Value of its number (as for a float): it compiles, and a
    global leaf beside it gets the message that names it (not an AttributeError)."""
    from micrograd.engine import Value as V

    def f(x, y):
        return V(x) * y + V(y).relu()

    cm = gradgen.compile_function(gradgen.export(f))
    value, grads = cm.f_grad(1.5, 2.0)
    assert value == 1.5 * 2.0 + 2.0 and grads == (2.0, 1.5 + 1.0)

    w = V(2.0)

    def g(x):
        return V(x) * w

    with pytest.raises(gradgen.GradgenError, match=r"uses a Value \(data=2.0\) that is neither an argument"):
        gradgen.compile_function(gradgen.export(g))


def test_an_emulation_with_wrong_numbers_is_caught(tmp_path, monkeypatch):
    """The safety nets, planted: numbers that differ from the real call's at the first call of a
    layer make that neuron run as written (the scalar module); numbers that differ only later are
    refused by the replay, in one line naming the model line."""
    from gradgen.frontend.foreign_layers import emulate

    path = model_file(tmp_path, MICROGRAD_BATCH.format(seed=3, nin=3, nouts=[4, 1], rows=1))
    scalar, _ = both(path)
    data = emulate._State._data
    monkeypatch.setattr(emulate._State, "_data", lambda self, *a: data(self, *a) + 1.0)
    fell_back = api.compile_file(path, write=False)
    assert fell_back.source == scalar.source and matmuls(fell_back) == {"loss": 0}
    monkeypatch.setattr(emulate._State, "_data", data)
    out = emulate._State._out
    monkeypatch.setattr(emulate._State, "_out", lambda self, n, d, nid: out(self, n, d + 1.0, nid))
    with pytest.raises(gradgen.GradgenError, match=r"model\.py:13: a neuron the layer path emulated gives"):
        api.compile_file(path, write=False)
