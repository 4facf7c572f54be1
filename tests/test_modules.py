"""A user's own Modules (gradgen Values in lists and attributes): parameter arrays and matrix code.

examples/residual.py (a residual block) and examples/rnn_cell.py (an RNN
cell unrolled over 4 steps) are compiled and compared three ways: the
compiled `loss_grad`, the interpreted engine's `backward()`, and PyTorch
float64 on the same arrays; `gradgen.params.read/write/read_grads` round-trip
on each.  Then the grouping rules on paths, and every refusal's message.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen
from gradgen import Value, nn
from gradgen.errors import GradgenError
from gradgen.frontend.loader import load_model
from gradgen.params import GroupingError, _place, arrays, read, read_grads, write

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-10


def _load(stem):
    path = ROOT / "examples" / f"{stem}.py"
    module, fns = load_model(str(path))
    return path, module, {f.__name__: f for f in fns}


def _three_ways(stem, owner, torch_loss, data):
    """compiled loss_grad == engine backward() == torch float64, per parameter array."""
    path, module, fns = _load(stem)
    model = getattr(module, owner)
    params = read(model)
    compiled = gradgen.compile_file(str(path))
    value, grads = compiled.loss_grad(*params.values(), *data)
    for p in model.parameters():
        p.grad = 0.0
    out = fns["loss"](*data)
    out.backward()
    engine = read_grads(model)
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    tloss = torch_loss(tparams, *(torch.tensor(d, dtype=torch.float64) for d in data))
    tloss.backward()
    assert value == pytest.approx(out.data, rel=REL)
    assert value == pytest.approx(tloss.item(), rel=REL)
    assert len(grads) == len(params)
    for (name, want), got in zip(engine.items(), grads):
        np.testing.assert_allclose(got, want, rtol=REL, atol=1e-13, err_msg=name)
        np.testing.assert_allclose(got, tparams[name].grad.numpy(), rtol=REL, atol=1e-13, err_msg=name)
    return compiled, params


def _emitted(stem) -> str:
    return (ROOT / "generated" / f"{stem}.py").read_text()


# -- the residual block ---------------------------------------------------------------------
def _residual_torch(p, X, T):
    h = torch.relu(X @ p["W1"].T + p["b1"])
    y = X + h @ p["W2"].T + p["b2"]
    return ((y - T) ** 2).sum(dim=1).mean()


def test_residual_block_compiled_engine_torch():
    path, module, _ = _load("residual")
    X, T = module.make_data()
    _three_ways("residual", "block", _residual_torch, (X, T))


def test_residual_block_gets_arrays_and_matmul_code():
    _, module, _ = _load("residual")
    assert {k: v.shape for k, v in read(module.block).items()} == {
        "W1": (8, 4),
        "b1": (8,),
        "W2": (4, 8),
        "b2": (4,),
    }
    code = _emitted("residual")
    assert "def loss_grad(W1, b1, W2, b2, X, T):" in code
    assert "z1 = X @ W1.T + b1" in code
    assert "g_W1 = g_z1.T @ X" in code
    forward = code.split("def loss_grad")[1].split("# forward")[1].split("# backward")[0]
    assert "[" not in forward  # no per-element reads


def test_params_round_trip_on_the_residual_block():
    _, module, _ = _load("residual")
    block = module.block
    before = read(block)
    changed = {k: v + 0.5 for k, v in before.items()}
    write(block, changed)
    assert block.W1[3][1].data == before["W1"][3, 1] + 0.5
    assert block.b2[2].data == before["b2"][2] + 0.5
    again = read(block)
    for k in before:
        np.testing.assert_array_equal(again[k], changed[k])
    write(block, list(before.values()))  # a sequence in read order
    for k in before:
        np.testing.assert_array_equal(read(block)[k], before[k])
    for p in block.parameters():
        p.grad = 0.25
    assert all((g == 0.25).all() for g in read_grads(block).values())


@pytest.mark.parametrize("stem, owner", [("residual", "block"), ("rnn_cell", "cell")])
def test_demo_runs_the_same_on_both_engines(capsys, stem, owner):
    """`python examples/<stem>.py` trains on generated/<stem>.py; --engine interpreted prints the same."""
    _, module, _ = _load(stem)
    model = getattr(module, owner)
    saved = read(model)
    module.main(["--steps", "3"])
    compiled = capsys.readouterr().out.split()
    write(model, saved)
    module.main(["--steps", "3", "--engine", "interpreted"])
    interpreted = capsys.readouterr().out.split()
    write(model, saved)
    nums = lambda words: [float(w) for w in words[3::4]]  # noqa: E731  "step K loss L"
    assert len(nums(compiled)) == 3
    np.testing.assert_allclose(nums(compiled), nums(interpreted), rtol=1e-12)
    assert nums(compiled)[2] < nums(compiled)[0]


# -- the RNN cell, unrolled over 4 steps ---------------------------------------------------------
def _rnn_torch(p, X, y):
    h = torch.tanh(X[:, 0] @ p["Wx"].T + p["b"])
    for t in range(1, X.shape[1]):
        h = torch.tanh(X[:, t] @ p["Wx"].T + h @ p["Wh"].T + p["b"])
    return ((h @ p["wo"] + p["bo"] - y) ** 2).mean()


def test_rnn_cell_compiled_engine_torch():
    _, module, _ = _load("rnn_cell")
    X, y = module.make_data()
    _three_ways("rnn_cell", "cell", _rnn_torch, (X, y))


def test_rnn_cell_gets_arrays_and_matmul_code():
    _, module, _ = _load("rnn_cell")
    assert {k: v.shape for k, v in read(module.cell).items()} == {
        "Wx": (8, 3),
        "Wh": (8, 8),
        "b": (8,),
        "wo": (8,),
        "bo": (),
    }
    code = _emitted("rnn_cell")
    assert "def loss_grad(Wx, Wh, b, wo, bo, X, y):" in code
    # each step's mixed chain b + Wx x_t + Wh h splits into two matrix products
    assert "zx_3 = X_3 @ Wx_T + hx_2 @ Wh_T + b" in code
    assert "(hx_3 * wo).sum(axis=1) + bo" in code  # the readout: a 1-D weight
    forward = code.split("def loss_grad")[1].split("# forward")[1].split("# backward")[0]
    assert forward.count("\n") < 25
    assert "Wx[" not in code and "Wh[" not in code and "wo[" not in code  # no per-element reads


@pytest.mark.parametrize("stem", ["residual", "rnn_cell"])
def test_examples_reroll_with_no_fallback(stem):
    from gradgen.api import lower

    _, _, fns = _load(stem)
    assert lower(fns["loss"], check=True).fallbacks == []


def test_params_round_trip_on_the_rnn_cell():
    _, module, _ = _load("rnn_cell")
    cell = module.cell
    before = read(cell)
    write(cell, {k: v * 2.0 for k, v in before.items()})
    assert cell.Wh[2][5].data == before["Wh"][2, 5] * 2.0
    assert cell.bo.data == before["bo"] * 2.0
    write(cell, before)
    for k, v in read(cell).items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match=r"parameter Wx has shape \(8, 3\), got an array of shape \(3, 8\)"):
        write(cell, dict(before, Wx=before["Wx"].T))


# -- the same, written with gradgen.nn Layers held in attributes ---------------------------------
RESIDUAL_LAYERS = """\
import random
import numpy as np
import gradgen
from gradgen import nn

class Residual(nn.Module):
    def __init__(self, d, h):
        self.fc1 = nn.Layer(d, h)
        self.fc2 = nn.Layer(h, d, nonlin=False)
    def __call__(self, x):
        return [xi + yi for xi, yi in zip(x, self.fc2(self.fc1(x)))]

class Net(nn.Module):
    def __init__(self):
        self.blocks = [Residual(3, 5) for _ in range(2)]
        self.head = nn.Neuron(3, nonlin=False)
    def __call__(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)

random.seed(3)
net = Net()

def sq(x, y):
    return (net(x) - y) ** 2

@gradgen.export(example=dict(X=np.zeros((1, 3)), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sq, X, y)
"""

RNN_LAYERS = """\
import random
import numpy as np
import gradgen
from gradgen import nn

class Cell(nn.Module):
    def __init__(self, d, h):
        self.ih = nn.Layer(d, h, nonlin=False)
        self.hh = nn.Layer(h, h, nonlin=False)
        self.out = nn.Layer(h, 1, nonlin=False)
    def __call__(self, xs):
        h = [a.tanh() for a in self.ih(xs[0])]
        for x in xs[1:]:
            h = [(a + b).tanh() for a, b in zip(self.ih(x), self.hh(h))]
        return self.out(h)

random.seed(4)
cell = Cell(2, 6)

def sq(xs, y):
    return (cell(xs) - y) ** 2

@gradgen.export(example=dict(X=np.zeros((1, 5, 2)), y=np.zeros(1)))
def loss(X, y):
    return gradgen.mean(sq, X, y)
"""


def _compiled_vs_engine(tmp_path, source, stem, owner, data):
    """compile `source`; its loss_grad equals the engine's backward() to rounding."""
    path = tmp_path / f"{stem}.py"
    path.write_text(source)
    module, fns = load_model(str(path))
    fns = {f.__name__: f for f in fns}
    model = getattr(module, owner)
    params = read(model)
    compiled = gradgen.compile_file(str(path))
    value, grads = compiled.loss_grad(*params.values(), *data)
    model.zero_grad()
    out = fns["loss"](*data)
    out.backward()
    assert value == pytest.approx(out.data, rel=REL)
    for (name, want), got in zip(read_grads(model).items(), grads):
        np.testing.assert_allclose(got, want, rtol=REL, atol=1e-13, err_msg=name)
    return params, compiled


def _source(path) -> str:
    from gradgen.api import build_source

    _, fns = load_model(str(path))
    return build_source(fns, str(path))[0]


def test_residual_blocks_of_layers(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.uniform(-1, 1, (7, 3)), rng.uniform(-1, 1, 7)
    params, _ = _compiled_vs_engine(tmp_path, RESIDUAL_LAYERS, "resn", "net", (X, y))
    assert {k: v.shape for k, v in params.items()} == {
        "blocks0_fc1_W": (5, 3),
        "blocks0_fc1_b": (5,),
        "blocks0_fc2_W": (3, 5),
        "blocks0_fc2_b": (3,),
        "blocks1_fc1_W": (5, 3),
        "blocks1_fc1_b": (5,),
        "blocks1_fc2_W": (3, 5),
        "blocks1_fc2_b": (3,),
        "head_w": (3,),
        "head_b": (),
    }
    text = _source(tmp_path / "resn.py")
    assert "z_blocks0_fc1 = X @ blocks0_fc1_W.T + blocks0_fc1_b" in text
    assert "h_blocks0_fc1 = np.maximum(z_blocks0_fc1, 0.0)" in text


def test_rnn_of_layers(tmp_path):
    rng = np.random.default_rng(2)
    X, y = rng.uniform(-1, 1, (6, 5, 2)), rng.uniform(-1, 1, 6)
    params, _ = _compiled_vs_engine(tmp_path, RNN_LAYERS, "rnnn", "cell", (X, y))
    assert list(params) == ["ih_W", "ih_b", "hh_W", "hh_b", "out_W", "out_b"]
    text = _source(tmp_path / "rnnn.py")
    assert "add_3 = X_4 @ ih_W_T + h_ih_3 @ hh_W_T" in text
    assert "ih_W[" not in text and "hh_W[" not in text


# -- grouping rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, placed",
    [
        ("layers.0.neurons.3.w.1", ("W0", (3, 1))),  # gradgen.nn's MLP: names as before
        ("layers.2.neurons.0.b", ("b2", (0,))),
        ("neurons.3.w.1", ("W", (3, 1))),
        ("w.3", ("w", (3,))),
        ("b", ("b", ())),
        ("p3", ("p3", ())),
        ("fc1.neurons.3.w.1", ("fc1_W", (3, 1))),  # a Layer held in an attribute
        ("fc1.neurons.3.b", ("fc1_b", (3,))),
        ("blocks.0.fc1.neurons.2.w.1", ("blocks0_fc1_W", (2, 1))),  # a list of blocks
        ("W1.3.1", ("W1", (3, 1))),  # a list of lists of Values
        ("cells.2.h", ("cells2_h", ())),
    ],
)
def test_paths_become_array_elements(path, placed):
    assert _place(path) == placed


class Blocks(nn.Module):
    def __init__(self):
        random.seed(0)
        self.blocks = [Pair() for _ in range(2)]


class Pair(nn.Module):
    def __init__(self):
        self.fc1 = nn.Layer(3, 2)
        self.fc2 = nn.Layer(2, 3, nonlin=False)


def test_layers_in_attributes_and_lists_of_blocks():
    shapes = {a.name: a.shape for a in arrays(Blocks())}
    assert shapes == {
        "blocks0_fc1_W": (2, 3),
        "blocks0_fc1_b": (2,),
        "blocks0_fc2_W": (3, 2),
        "blocks0_fc2_b": (3,),
        "blocks1_fc1_W": (2, 3),
        "blocks1_fc1_b": (2,),
        "blocks1_fc2_W": (3, 2),
        "blocks1_fc2_b": (3,),
    }


class Ragged:  # a plain object (no Module base), rows of different lengths
    def __init__(self):
        self.ws = [[Value(1.0), Value(2.0)], [Value(3.0)]]
        self.v = [Value(4.0), 0.5, Value(5.0)]  # a float in the list: a hole


def test_ragged_lists_split_into_separate_arrays():
    got = {a.name: (a.shape, [v.data for v in a.values]) for a in arrays(Ragged())}
    assert got == {"ws0": ((2,), [1.0, 2.0]), "ws1": ((1,), [3.0]), "v0": ((), [4.0]), "v2": ((), [5.0])}


def test_gradgen_nn_mlp_keeps_its_names():
    random.seed(1)
    assert [(a.name, a.shape) for a in arrays(nn.MLP(2, [3, 1]))] == [
        ("W0", (3, 2)),
        ("b0", (3,)),
        ("W1", (1, 3)),
        ("b1", (1,)),
    ]


# -- refusals -----------------------------------------------------------------------------------
class Clash:
    def __init__(self):
        self.fc1_W = [[Value(1.0)]]
        self.fc1 = nn.Layer(1, 1)


def test_refusal_two_parameters_at_one_array_element():
    with pytest.raises(GroupingError) as e:
        arrays(Clash())
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == (
        "parameters fc1_W.0.0 and fc1.neurons.0.w.0 both become the parameter array fc1_W[0, 0]; "
        "rename one of the attributes that hold them"
    )


class SplitClash:
    def __init__(self):
        self.ws = [[Value(1.0), Value(2.0)], [Value(3.0)]]  # ragged: ws0, ws1
        self.ws1 = Value(4.0)


def test_refusal_a_split_array_meets_an_attribute_of_its_name():
    with pytest.raises(GroupingError, match=r"^parameters .* both become the parameter array ws1; rename one"):
        arrays(SplitClash())


def test_refusal_reaches_the_compiler_as_one_line(tmp_path):
    src = (
        "import gradgen\nfrom gradgen import Value, nn\n"
        "class Clash:\n    def __init__(self):\n        self.fc1_W = [[Value(1.0)]]\n        self.fc1 = nn.Layer(1, 1)\n"
        "m = Clash()\n"
        "@gradgen.export\ndef f(x):\n    return m.fc1(x=[x])[0] if False else m.fc1([x]) * m.fc1_W[0][0]\n"
    )
    path = tmp_path / "clash.py"
    path.write_text(src)
    with pytest.raises(GradgenError) as e:
        gradgen.compile_file(str(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert "cannot group the parameters of Clash" in msg
    assert "rename one of the attributes that hold them" in msg


def test_refusal_params_that_hold_no_values(tmp_path):
    src = "import gradgen\nclass Empty:\n    pass\n@gradgen.export(params=Empty())\ndef f(x):\n    return x * 2\n"
    path = tmp_path / "empty.py"
    path.write_text(src)
    with pytest.raises(GradgenError) as e:
        gradgen.compile_file(str(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.endswith(
        "params= of f must be a module (an object whose attributes hold gradgen Values) "
        "or a list of them; this Empty holds no Values"
    )


# -- discovery ----------------------------------------------------------------------------------
def test_a_plain_object_and_a_closure_are_modules(tmp_path):
    src = (
        "import gradgen\nfrom gradgen import Value\n"
        "class Lin:\n    def __init__(self):\n        self.w = [Value(0.5), Value(-2.0)]\n        self.b = Value(0.25)\n"
        "def make():\n    lin = Lin()\n"
        "    @gradgen.export\n    def f(x1, x2):\n        return (lin.w[0] * x1 + lin.w[1] * x2 + lin.b).tanh()\n"
        "    return f\n"
        "f = make()\n"
    )
    path = tmp_path / "closure.py"
    path.write_text(src)
    mod = gradgen.compile_file(str(path))
    value, grads = mod.f_grad(np.array([0.5, -2.0]), 0.25, 1.0, 2.0)
    assert value == pytest.approx(np.tanh(0.5 - 4.0 + 0.25), rel=1e-14)
    d = 1 - np.tanh(0.5 - 4.0 + 0.25) ** 2
    np.testing.assert_allclose(grads[0], [d * 1.0, d * 2.0], rtol=1e-14)
    assert grads[1] == pytest.approx(d, rel=1e-14)


def test_an_object_holding_the_model_is_not_a_second_module(tmp_path):
    """A trainer (or any object) whose Values all belong to the model adds no module: no prefixes."""
    src = (
        "import gradgen\nfrom gradgen import Value\n"
        "class Lin:\n    def __init__(self):\n        self.w = [Value(0.5), Value(-2.0)]\n"
        "class Trainer:\n    def __init__(self, model):\n        self.model = model\n        self.lr = 0.1\n"
        "lin = Lin()\ntrainer = Trainer(lin)\n"
        "@gradgen.export\ndef f(x):\n    return lin.w[0] * x + lin.w[1]\n"
    )
    path = tmp_path / "trainer.py"
    path.write_text(src)
    _, fns = load_model(str(path))
    from gradgen.frontend.discovery import modules_of

    found, eager = modules_of(fns[0])
    assert [(m.name, m.prefix) for m in found] == [("lin", "")]
    mod = gradgen.compile_file(str(path))
    value, (g_w, g_x) = mod.f_grad(np.array([0.5, -2.0]), 3.0)
    assert value == 0.5 * 3.0 - 2.0
    np.testing.assert_array_equal(g_w, [3.0, 1.0])
    assert g_x == 0.5


def test_refusal_a_global_value_outside_any_module(tmp_path):
    src = "import gradgen\nfrom gradgen import Value\nc = Value(3.0)\n@gradgen.export\ndef f(x):\n    return x * c\n"
    path = tmp_path / "loose.py"
    path.write_text(src)
    with pytest.raises(GradgenError) as e:
        gradgen.compile_file(str(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.endswith(
        "loose.py:6: uses a Value that is neither an argument nor a parameter of a module (data=3.0); "
        "pass it in as an argument, make it a module parameter (an attribute of an object the model "
        "file holds, or give params=), or use a plain float for a constant"
    )
