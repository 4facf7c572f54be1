"""Foreign micrograd-style engines (gradgen.frontend.foreign): micrograd's package, the lecture's class.

Oracles: micrograd's own `backward()`, the lecture class's `backward()`,
PyTorch float64, and the numbers the lecture prints (seeds).  The demo's
compiled training reproduces micrograd's engine step by step (1e-9), and its
`loss_grad` is the one gradgen.nn's examples/moons.py compiles to.  Every
refusal is one line naming the model line; one test per message.
"""

from __future__ import annotations

import importlib.util
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradgen
from gradgen.cli import main
from support import load_function

pytest.importorskip("micrograd")

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"


def fresh(stem: str):
    spec = importlib.util.spec_from_file_location(f"_foreign_{stem}", ROOT / "examples" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MICROGRAD_MLP = """
import random
import numpy as np
import gradgen
from micrograd.engine import Value
from micrograd.nn import MLP

random.seed(7)
model = MLP(3, [4, 4, 1])
xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]

@gradgen.export(example=dict(xs=xs, ys=ys))
def f(xs, ys):
    ypred = [model(list(map(Value, x))) for x in xs]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred)) + 1e-3 * sum(p * p for p in model.parameters())
"""


def test_micrograd_mlp_matches_micrograds_backward(tmp_path):
    f = load_function(MICROGRAD_MLP, tmp_path)
    model, xs, ys = f.__globals__["model"], f.__globals__["xs"], f.__globals__["ys"]
    cm = gradgen.compile_function(f)
    params = gradgen.params.read(model)
    assert list(params) == ["W0", "b0", "W1", "b1", "W2", "b2"] and params["W0"].shape == (4, 3)
    value, grads = cm.f_grad(*params.values(), np.array(xs), np.array(ys))
    out = f(xs, ys)  # micrograd's own engine
    model.zero_grad()
    out.backward()
    want = gradgen.params.read_grads(model)
    assert math.isclose(value, out.data, rel_tol=1e-12)
    for name, g in zip(params, grads):
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-13)


def test_micrograd_mlp_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    f = load_function(MICROGRAD_MLP, tmp_path)
    model, xs, ys = f.__globals__["model"], f.__globals__["xs"], f.__globals__["ys"]
    cm = gradgen.compile_function(f)
    params = gradgen.params.read(model)
    value, grads = cm.f_grad(*params.values(), np.array(xs), np.array(ys))
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    h = torch.tensor(xs, dtype=torch.float64)
    h = torch.relu(h @ t["W0"].T + t["b0"])
    h = torch.relu(h @ t["W1"].T + t["b1"])
    pred = (h @ t["W2"].T + t["b2"])[:, 0]
    loss = ((pred - torch.tensor(ys, dtype=torch.float64)) ** 2).sum() + 1e-3 * sum((p * p).sum() for p in t.values())
    loss.backward()
    assert math.isclose(value, loss.item(), rel_tol=1e-12)
    for name, g in zip(params, grads):
        np.testing.assert_allclose(g, t[name].grad.numpy(), rtol=1e-10, atol=1e-13)


# -- the lecture's class ---------------------------------------------------------------------------


def test_lecture_neuron_gives_the_lectures_numbers():
    """o = tanh(x1*w1 + x2*w2 + b) at the lecture's point: PyTorch's printout in the lecture.

    (The lecture's torch.Tensor([6.8813735870195432]).double() rounds b to float32 first.)
    """
    lec = fresh("lecture_value")
    cm = gradgen.compile_function(lec.neuron)
    point = (2.0, 0.0, -3.0, 1.0, float(np.float32(6.8813735870195432)))
    o, (gx1, gx2, gw1, gw2, gb) = cm.neuron_grad(*point)
    assert math.isclose(o, 0.7071066904050358, rel_tol=1e-12)
    assert math.isclose(gx1, -1.5000003851533106, rel_tol=1e-9)
    assert math.isclose(gw1, 1.0000002567688737, rel_tol=1e-9)
    assert math.isclose(gx2, 0.5000001283844369, rel_tol=1e-9)
    assert gw2 == 0.0 and math.isclose(gb, 0.5000001283844369, rel_tol=1e-9)
    leaves = [lec.Value(v) for v in point]  # the lecture's own engine
    out = lec.neuron(*leaves)
    out.backward()
    assert math.isclose(o, out.data, rel_tol=1e-14)
    assert all(math.isclose(a, v.grad, rel_tol=1e-12, abs_tol=1e-15) for a, v in zip((gx1, gx2, gw1, gw2, gb), leaves))


def test_lecture_mlp_loss_matches_the_lecture_class():
    lec = fresh("lecture_value")
    cm = gradgen.compile_function(lec.loss)
    params = gradgen.params.read(lec.m)
    assert {k: v.shape for k, v in params.items()} == {
        "W0": (4, 3), "b0": (4,), "W1": (4, 4), "b1": (4,), "W2": (1, 4), "b2": (1,)
    }
    value, grads = cm.loss_grad(*params.values(), np.array(lec.xs), np.array(lec.ys))
    out = lec.loss(lec.xs, lec.ys)
    out.backward()
    assert math.isclose(value, out.data, rel_tol=1e-12)
    layout = gradgen.params.arrays(lec.m)
    for arr, g in zip(layout, grads):
        want = np.array([v.grad for v in arr.values]).reshape(arr.shape)
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-13)


# -- item 3: Value(0.0), Value(1.0), sum(xs, Value(0)) are constants --------------------------------

CONSTANTS = """
import gradgen
from {engine} import Value

@gradgen.export(example=dict(a=1.5, b=-0.5))
def f(a, b):
    acc = Value(0.0)
    for x in (a, b, a * b):
        acc = acc + x * x
    return sum([acc, a], Value(0)) * Value(1.0)
"""


@pytest.mark.parametrize("engine", ["gradgen.engine", "micrograd.engine"])
def test_value_constants_inside_the_model(tmp_path, engine):
    f = load_function(CONSTANTS.format(engine=engine), tmp_path)
    cm = gradgen.compile_function(f)
    Value = f.__globals__["Value"]
    a, b = Value(1.5), Value(-0.5)
    out = f(a, b)
    out.backward()
    value, (ga, gb) = cm.f_grad(1.5, -0.5)
    assert value == out.data and math.isclose(ga, a.grad, rel_tol=1e-14) and math.isclose(gb, b.grad, rel_tol=1e-14)
    assert cm.f(0.25, 2.0) == f(Value(0.25), Value(2.0)).data


# -- micrograd's demo ----------------------------------------------------------------------------

pytest.importorskip("sklearn")


def body(path: Path, fname: str) -> list[str]:
    """The code lines of `fname` in a generated module, comments (with their file:line) dropped."""
    text = path.read_text()
    m = re.search(rf"^def {fname}\(.*?(?=^def |\Z)", text, re.S | re.M)
    lines = [re.sub(r"\s*#.*", "", line) for line in m.group(0).splitlines()]
    return [line for line in lines if line.strip()]


def test_demo_loss_grad_is_the_gradgen_nn_one():
    assert body(GENERATED / "micrograd_demo.py", "loss_grad") == body(GENERATED / "moons.py", "loss_grad")


def test_demo_trains_like_micrograd():
    """A few steps of the demo's loop: compiled loss_step vs micrograd's own engine, 1e-9 relative."""
    demo = fresh("micrograd_demo")
    X, y = demo.make_data()
    start = gradgen.params.read(demo.model)
    compiled = demo.train(X, y, steps=3, engine="compiled", out=lambda line: None)
    gradgen.params.write(demo.model, start)
    reference = demo.train(X, y, steps=3, engine="micrograd", out=lambda line: None)
    assert reference[0] == (pytest.approx(0.8958441028683222, rel=1e-12), 0.5)  # micrograd's demo.ipynb
    for (lc, ac), (lr, ar) in zip(compiled, reference, strict=True):
        assert math.isclose(lc, lr, rel_tol=1e-9) and ac == ar


# -- refusals ------------------------------------------------------------------------------------


def refused(tmp_path, capsys, source: str, line: int, pattern: str) -> str:
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent(source), encoding="utf-8")
    code = main(["compile", str(model), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gradgen: error: {model}:{line}: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


FORK = '''
import math
import gradgen

class V:
    def __init__(self, data, _children=(), _op=""):
        self.data = data
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other):
        other = other if isinstance(other, V) else V(other)
        return V(self.data + other.data, (self, other), "+")

    def __mul__(self, other):
        other = other if isinstance(other, V) else V(other)
        return V(self.data * other.data, (self, other), "*")

    def softplus(self):
        return V(math.log1p(math.exp(self.data)), (self,), "softplus")

    def bad_add(self, other):
        return V(self.data - other.data, (self, other), "+")
'''


def test_refuses_an_unknown_op_string(tmp_path, capsys):
    src = FORK + """
@gradgen.export(example=dict(x=1.0))
def f(x):
    y = x * 2.0
    return y.softplus()
"""
    refused(tmp_path, capsys, src, _line(src, "return y.softplus"), r"V op 'softplus' is not one gradgen knows")


def test_refuses_an_op_that_computes_something_else(tmp_path, capsys):
    src = FORK + """
@gradgen.export(example=dict(x=1.0, y=3.0))
def f(x, y):
    return x.bad_add(y) * x
"""
    refused(tmp_path, capsys, src, _line(src, "return x.bad_add"), r"V op '\+' computed -2\.0 at the example, but gradgen's add")


def test_refuses_control_flow_on_data(tmp_path, capsys):
    src = FORK + """
@gradgen.export(example=dict(x=1.0))
def f(x):
    if x.data > 1.1:
        return x * x
    return x + x
"""
    refused(tmp_path, capsys, src, _line(src, "return x + x"), r"different graph at a second point")


def test_refuses_a_value_from_outside(tmp_path, capsys):
    src = FORK + """
c = V(3.0)

@gradgen.export(example=dict(x=1.0))
def f(x):
    return x * c
"""
    refused(tmp_path, capsys, src, _line(src, "return x * c"), r"uses a V \(data=3\.0\) that is neither an argument")


def test_refuses_an_engine_without_prev_and_op(tmp_path, capsys):
    src = """
import gradgen

class Var:
    def __init__(self, data, children=()):
        self.data = data
        self.children = children

    def __add__(self, other):
        return Var(self.data + other.data, (self, other))

    def backward(self):
        pass

@gradgen.export(example=dict(x=1.0))
def f(x):
    return x + x
"""
    refused(tmp_path, capsys, src, _line(src, "def f(x)"), r"Var, which has no _prev/_op")


def test_refuses_the_demos_tuple_result(tmp_path, capsys):
    src = FORK + """
@gradgen.export(example=dict(x=1.0))
def f(x):
    y = x * x
    return y, 1.0
"""
    refused(tmp_path, capsys, src, _line(src, "return y, 1.0"), r"returns a tuple of 2 values, not one V")


def _line(src: str, text: str) -> int:
    """The 1-based line of `text` in the model file written from `src` (after dedent)."""
    return textwrap.dedent(src)[: textwrap.dedent(src).index(text)].count("\n") + 1


def test_a_deep_graph_is_walked_without_recursion(tmp_path):
    """A chain far deeper than Python's recursion limit: the walk (and the argument arithmetic) is iterative."""
    src = FORK.replace('"""', "") + '''
import numpy as np

@gradgen.export(example=dict(xs=np.linspace(-1.0, 1.0, 1500)))
def f(xs):
    s = V(0.0)
    t = 0.0
    for x in xs:
        s = s + x * x
        t = t + x  # arithmetic on the argument's numbers: still the argument
    return s * t
'''
    f = load_function(src, tmp_path)
    cm = gradgen.compile_function(f)
    xs = np.linspace(-0.5, 2.0, 1500)
    value, _ = cm.f_grad(xs)
    assert math.isclose(value, float(np.sum(xs * xs) * np.sum(xs)), rel_tol=1e-12)


def test_demo_loss_runs_interpreted_on_micrograd():
    """The exported loss, called on numbers, runs on micrograd's engine (gradgen.mean passes it plain rows)."""
    demo = fresh("micrograd_demo")
    X, y = demo.make_data()
    X, y = X[:10], y[:10]
    out = demo.loss(X, y)
    assert type(out) is demo.Value
    value, _ = gradgen.compile_function(demo.loss).loss_grad(*gradgen.params.read(demo.model).values(), X, y)
    assert math.isclose(value, out.data, rel_tol=1e-12)
