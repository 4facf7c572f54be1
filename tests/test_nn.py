"""`gradgen.nn` draws micrograd's (and the lecture's) numbers and names its parameters stably.

The oracle is a tiny re-implementation of the two networks in this file that
replays `random.uniform(-1, 1)` in the documented order and computes the
forward pass on plain floats.
"""

import math
import random

import pytest

from gradgen.engine import Value
from gradgen.nn import MLP, Layer, Neuron

# --- the reference: plain floats, the draw order written out ---------------------


def reference_weights(nin, nouts, seed, style):
    """[[(weights, bias) per neuron] per layer], drawing exactly as micrograd / the lecture do."""
    rng = random.Random(seed)
    sizes = [nin] + list(nouts)
    layers = []
    for i in range(len(nouts)):
        neurons = []
        for _ in range(sizes[i + 1]):
            w = [rng.uniform(-1, 1) for _ in range(sizes[i])]  # one per input, in order
            b = (
                rng.uniform(-1, 1) if style == "lecture" else 0.0
            )  # micrograd: Value(0), no draw
            neurons.append((w, b))
        layers.append(neurons)
    return layers


def reference_forward(layers, x, style):
    last = len(layers) - 1
    for i, neurons in enumerate(layers):
        out = []
        for w, b in neurons:
            act = b
            for wi, xi in zip(
                w, x
            ):  # micrograd's sum(..., self.b): b + w0*x0 + w1*x1 + ...
                act = act + wi * xi
            if style == "lecture":
                act = math.tanh(act)
            elif i != last:
                act = max(act, 0.0)
            out.append(act)
        x = out
    return x[0] if len(x) == 1 else x


def _data(mlp):
    return [
        [([w.data for w in n.w], n.b.data) for n in layer.neurons]
        for layer in mlp.layers
    ]


# --- draws ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 1337])
@pytest.mark.parametrize("nin, nouts", [(3, [4, 4, 1]), (2, [16, 16, 1]), (1, [1])])
def test_micrograd_mlp_draws_micrograd_numbers(seed, nin, nouts):
    """random.seed(s); MLP(nin, nouts) has micrograd's weights, bias 0 and no bias draw."""
    random.seed(seed)
    mlp = MLP(nin, nouts)
    assert _data(mlp) == reference_weights(nin, nouts, seed, "micrograd")
    # the global stream advanced by exactly one draw per weight (none per bias)
    n_weights = sum(a * b for a, b in zip([nin] + nouts, nouts))
    rng = random.Random(seed)
    for _ in range(n_weights):
        rng.uniform(-1, 1)
    assert random.random() == rng.random()


@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("nin, nouts", [(3, [4, 4, 1]), (2, [3])])
def test_lecture_mlp_draws_bias_after_weights(seed, nin, nouts):
    """style="lecture": each neuron draws its weights, then its bias, from U(-1, 1)."""
    random.seed(seed)
    mlp = MLP(nin, nouts, style="lecture")
    assert _data(mlp) == reference_weights(nin, nouts, seed, "lecture")


def test_bias_is_a_value_of_zero_in_micrograd_style():
    """micrograd's bias is `Value(0)`: data 0 and a parameter like the weights."""
    random.seed(0)
    n = Neuron(3)
    assert isinstance(n.b, Value) and n.b.data == 0
    assert n.parameters()[-1] is n.b


# --- forward passes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "style, nin, nouts, x",
    [
        ("micrograd", 3, [4, 4, 1], [2.0, 3.0, -1.0]),
        ("micrograd", 2, [8, 8, 1], [0.5, -0.25]),
        ("micrograd", 2, [3, 2], [1.5, -2.0]),
        ("lecture", 3, [4, 4, 1], [2.0, 3.0, -1.0]),
        ("lecture", 2, [3, 2], [1.5, -2.0]),
    ],
)
def test_forward_matches_reference_bit_for_bit(style, nin, nouts, x):
    """ReLU hidden layers and a linear last layer (micrograd), tanh everywhere (lecture)."""
    random.seed(7)
    mlp = MLP(nin, nouts, style=style)
    got = mlp([Value(v) for v in x])
    want = reference_forward(reference_weights(nin, nouts, 7, style), x, style)
    if isinstance(want, list):
        assert [g.data for g in got] == want
    else:
        assert got.data == want


def test_micrograd_last_layer_is_linear_and_hidden_layers_relu():
    """A hidden pre-activation below 0 gives 0; the last layer can be negative."""
    layer = Layer(1, 1, nonlin=True)
    layer.neurons[0].w[0].data = -1.0
    assert layer([Value(2.0)]).data == 0.0
    random.seed(3)
    mlp = MLP(1, [1])
    mlp.layers[0].neurons[0].w[0].data = -1.0
    assert mlp([Value(2.0)]).data == -2.0
    assert repr(mlp) == "MLP of [Layer of [LinearNeuron(1)]]"


def test_lecture_last_layer_is_tanh():
    """Every lecture neuron applies tanh, the last one too, so outputs lie in (-1, 1)."""
    random.seed(3)
    mlp = MLP(1, [1], style="lecture")
    n = mlp.layers[0].neurons[0]
    n.w[0].data, n.b.data = 3.0, 0.5
    assert mlp([Value(2.0)]).data == math.tanh(0.5 + 3.0 * 2.0)
    assert "TanhNeuron" in repr(mlp)


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        MLP(2, [1], style="keras")


def test_backward_through_mlp_matches_finite_differences():
    """Gradients of a loss w.r.t. every parameter agree with central differences."""
    random.seed(11)
    mlp = MLP(2, [3, 3, 1])
    xs = [[0.5, -1.0], [1.5, 0.25]]

    def loss():
        return sum(((mlp([Value(a) for a in x]) - 1.0) ** 2 for x in xs), Value(0.0))

    mlp.zero_grad()
    loss().backward()
    h = 1e-6
    for name, p in mlp.named_parameters():
        old = p.data
        p.data = old + h
        up = loss().data
        p.data = old - h
        down = loss().data
        p.data = old
        fd = (up - down) / (2 * h)
        assert math.isclose(p.grad, fd, rel_tol=1e-5, abs_tol=1e-7), name


# --- names ---------------------------------------------------------------------------


def _expected_names(nin, nouts):
    sizes = [nin] + nouts
    names = []
    for i in range(len(nouts)):
        for j in range(sizes[i + 1]):
            names += [f"layers.{i}.neurons.{j}.w.{k}" for k in range(sizes[i])]
            names.append(f"layers.{i}.neurons.{j}.b")
    return names


@pytest.mark.parametrize("style", ["micrograd", "lecture"])
def test_named_parameters_are_dotted_and_in_parameters_order(style):
    """Names like layers.0.neurons.3.w.1 / .b, one per parameter, in parameters() order."""
    random.seed(0)
    mlp = MLP(3, [4, 4, 1], style=style)
    named = mlp.named_parameters()
    names = [n for n, _ in named]
    assert names == _expected_names(3, [4, 4, 1])
    assert "layers.0.neurons.3.w.1" in names and "layers.0.neurons.3.b" in names
    params = mlp.parameters()
    assert len(params) == len(named) == 4 * 4 + 4 * 5 + 1 * 5
    assert all(p is q for p, (_, q) in zip(params, named))
    assert len({id(p) for p in params}) == len(params)
    # and each name points at the right object
    d = dict(named)
    assert d["layers.0.neurons.3.w.1"] is mlp.layers[0].neurons[3].w[1]
    assert d["layers.2.neurons.0.b"] is mlp.layers[2].neurons[0].b


def test_named_parameters_are_stable_across_seeds_and_instances():
    """Names depend on the shape only, not on the draws or the object ids."""
    random.seed(1)
    a = [n for n, _ in MLP(2, [3, 1]).named_parameters()]
    random.seed(2)
    b = [n for n, _ in MLP(2, [3, 1]).named_parameters()]
    assert a == b == _expected_names(2, [3, 1])


def test_named_parameters_prefix():
    """A prefix is prepended to every name (for nesting modules)."""
    random.seed(0)
    names = [n for n, _ in MLP(1, [1]).named_parameters("model.")]
    assert names == ["model.layers.0.neurons.0.w.0", "model.layers.0.neurons.0.b"]


def test_zero_grad_resets_every_parameter():
    """After backward, zero_grad() sets every parameter's grad back to 0.0."""
    random.seed(5)
    mlp = MLP(2, [4, 1])
    out = mlp([Value(0.3), Value(-0.9)])
    (out * out + out).backward()
    assert any(p.grad != 0.0 for p in mlp.parameters())
    mlp.zero_grad()
    assert all(p.grad == 0.0 for p in mlp.parameters())
    assert all(type(p.grad) is float for p in mlp.parameters())
