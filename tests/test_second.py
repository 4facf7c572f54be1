"""Second order (gradgen.autodiff.second, gradgen.backends.second): hvp, hessian, jvp.

Oracles: PyTorch float64 (double backward: torch.autograd.functional.hvp /
hessian, torch.func.jvp) and central differences of the compiled gradient.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen
from gradgen.api import compile_file
from gradgen.autodiff import second
from gradgen.autodiff.reverse import grad
from gradgen.errors import GradgenError
from gradgen.ir.graph import Builder, Origin
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import OPS, Op
from gradgen.passes import optimize

ROOT = Path(__file__).resolve().parents[1]
T = torch.float64


# -- one graph per op, built twice: as IR and in torch ------------------------------------
class IRKit:
    def __init__(self):
        self.b = Builder("f")

    def input(self, name, shape):
        return self.b.add(Op.INPUT, (), shape=shape, name=name, origin=Origin("arg", name))

    def __call__(self, op, *args, attr=None):
        return self.b.add(Op(op), args, attr)


TORCH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "neg": lambda a: -a,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "step": lambda a: (a > 0).to(T),
    "sign": torch.sign,
    "copy": lambda a: a * 1.0,
    "matmul": lambda a, b: a @ b,
    "transpose": lambda a: a.T,
}


class TorchKit:
    def __call__(self, op, *args, attr=None):
        if op == "pow":
            return args[0] ** attr
        if op == "sum":
            return args[0].sum(dim=attr)
        if op == "expand":
            x = args[0]
            for ax in sorted(attr):
                x = x.unsqueeze(ax)
            return x
        if op == "bcast":
            return args[0].expand(attr)
        if op == "elem":
            return args[0][attr]
        if op == "pack":  # the layouts used below: scalars into a vector
            return torch.stack(list(args))
        return TORCH[op](*args)


UNARY = ["neg", "exp", "log", "tanh", "relu", "sigmoid", "abs", "sin", "cos", "step", "sign", "copy"]
BINARY = ["add", "sub", "mul", "div"]


def _unary(op):
    return dict(shapes=[(), ()], f=lambda k, x, y: k(op, k("mul", x, y)))


def _case(name):
    if name in UNARY:
        return _unary(name)
    if name in BINARY:  # op(x, y) * sin(x): mixed partials and a non-trivial rule together
        return dict(shapes=[(), ()], f=lambda k, x, y: k("mul", k(name, x, y), k("sin", x)))
    cases = {
        "pow3": dict(shapes=[(), ()], f=lambda k, x, y: k("pow", k("mul", x, y), attr=3)),
        "pow_half": dict(shapes=[(), ()], f=lambda k, x, y: k("pow", k("mul", x, y), attr=0.5)),
        "sum": dict(shapes=[(3,)], f=lambda k, x: k("sum", k("tanh", k("mul", x, x)), attr=(0,))),
        "matmul": dict(shapes=[(2, 3), (3,)], f=lambda k, W, x: k("sum", k("tanh", k("matmul", W, x)), attr=(0,))),
        "transpose": dict(
            shapes=[(2, 3), (2,)],
            f=lambda k, W, u: k("sum", k("tanh", k("matmul", k("transpose", W), u)), attr=(0,)),
        ),
        "expand": dict(
            shapes=[(3,), (2, 3)],
            f=lambda k, x, W: k("sum", k("tanh", k("mul", k("expand", x, attr=(0,)), W)), attr=(0, 1)),
        ),
        "bcast": dict(
            shapes=[(3,), (2, 3)],
            f=lambda k, x, W: k("sum", k("tanh", k("mul", k("bcast", x, attr=(2, 3)), W)), attr=(0, 1)),
        ),
        "elem": dict(
            shapes=[(3,)], f=lambda k, x: k("sin", k("mul", k("elem", x, attr=(0,)), k("elem", x, attr=(2,))))
        ),
        "pack": dict(
            shapes=[(), (), (2,)],
            f=lambda k, a, b, x: k(
                "sum", k("tanh", k("mul", k("pack", k("mul", a, b), b, attr=(False, (2,), ((0,), (1,)))), x)), attr=(0,)
            ),
        ),
    }
    return cases[name]


def _ops_with_rules():
    out = []
    for o, info in OPS.items():
        if info.rule is None:
            continue
        if o is Op.POW:
            out += ["pow3", "pow_half"]
        else:
            out.append(o.value)
    return out + ["elem"]  # elem has no rule of its own (reverse mode gathers its reads)


def _point(shapes, rng, op):
    xs = []
    for s in shapes:
        x = rng.uniform(0.3, 1.2, size=s) * (1 if op in ("log", "pow_half") else rng.choice([-1, 1], size=s))
        xs.append(float(x) if s == () else x)
    return xs


@pytest.mark.parametrize("op", _ops_with_rules())
def test_second_derivative_of_every_rule_matches_torch_double_backward(op):
    case = _case(op)
    rng = np.random.default_rng(abs(hash(op)) % 2**32)
    k = IRKit()
    names = [f"x{i}" for i in range(len(case["shapes"]))]
    ins = [k.input(n, s) for n, s in zip(names, case["shapes"])]
    out = case["f"](k, *ins)
    fwd = k.b.build(ins, [("value", out)])
    g = optimize(grad(fwd))
    hv_graph = optimize(second.hvp(g))
    xs = _point(case["shapes"], rng, op)
    vs = [float(v) if s == () else v for v, s in ((rng.normal(size=s), s) for s in case["shapes"])]
    got = evaluate(hv_graph, xs + vs)

    tx = tuple(torch.tensor(x, dtype=T, requires_grad=True) for x in xs)
    tv = tuple(torch.tensor(v, dtype=T) for v in vs)
    value, want = torch.autograd.functional.hvp(lambda *a: case["f"](TorchKit(), *a), tx, tv)
    assert math.isclose(float(got["value"]), float(value), rel_tol=1e-12, abs_tol=1e-12)
    for n, w in zip(names, want):
        np.testing.assert_allclose(np.asarray(got[f"hvp:{n}"], dtype=float), w.numpy(), rtol=1e-10, atol=1e-12)
    if all(s == () for s in case["shapes"]):  # the full Hessian too
        hs = optimize(second.hessian(g))
        got = evaluate(hs, xs)
        H = torch.autograd.functional.hessian(lambda *a: case["f"](TorchKit(), *a), tx)
        for i, a in enumerate(names):
            for j, c in enumerate(names):
                assert math.isclose(float(got[f"hessian:{a},{c}"]), float(H[i][j]), rel_tol=1e-10, abs_tol=1e-12)


# -- compiled functions ------------------------------------------------------------------
NEURON = """
import gradgen

@gradgen.export(hessian=True, hvp=True, jvp=True)
def neuron(x1, x2, w1, w2, b):
    x1w1 = x1 * w1
    x2w2 = x2 * w2
    n = x1w1 + x2w2 + b
    o = n.tanh()
    return o * o + (x1 * w2).sigmoid() / (1.0 + b * b)
"""

MLP = """
import random
import gradgen
from gradgen import nn

xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
ys = [1.0, -1.0, -1.0, 1.0]
random.seed(42)
n = nn.MLP(3, [4, 4, 1], style="lecture")


@gradgen.export(example=dict(xs=xs, ys=ys), hvp=True, jvp=True)
def loss(xs, ys):
    ypred = [n(x) for x in xs]
    return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
"""


@pytest.fixture(scope="module")
def neuron(tmp_path_factory):
    path = tmp_path_factory.mktemp("neuron") / "neuron2.py"
    path.write_text(NEURON)
    return compile_file(str(path))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    path = tmp_path_factory.mktemp("mlp") / "mlp2.py"
    path.write_text(MLP)
    return compile_file(str(path)), compile_file(str(path), backend="torch")


def _torch_neuron(t):
    x1, x2, w1, w2, b = t
    o = torch.tanh(x1 * w1 + x2 * w2 + b)
    return o * o + torch.sigmoid(x1 * w2) / (1.0 + b * b)


def test_neuron_hessian_hvp_jvp_match_torch(neuron):
    x = [2.0, 0.5, -3.0, 1.0, 0.8]
    v = [0.3, -0.2, 0.1, 0.7, -0.5]
    X, V = torch.tensor(x, dtype=T), torch.tensor(v, dtype=T)
    value, g, H = neuron.neuron_hessian(*x)
    want = torch.autograd.functional.hessian(_torch_neuron, X).numpy()
    np.testing.assert_allclose(np.array(H), want, rtol=1e-12, atol=1e-14)
    assert np.array_equal(np.array(H), np.array(H).T)  # one node for (i, j) and (j, i)
    assert (value, g) == neuron.neuron_grad(*x)
    _, g2, hv = neuron.neuron_hvp(*x, *v)
    _, want = torch.autograd.functional.hvp(_torch_neuron, X, V)
    np.testing.assert_allclose(hv, want.numpy(), rtol=1e-12, atol=1e-14)
    val, jv = neuron.neuron_jvp(*x, *v)
    _, want = torch.func.jvp(_torch_neuron, (X,), (V,))
    assert math.isclose(jv, float(want), rel_tol=1e-12) and val == value


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def test_mlp_hvp_matches_torch_and_central_differences(mlp):
    np_mod, torch_mod = mlp
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (4,), (4, 4), (4,), (1, 4), (1,)]
    params = [rng.normal(size=s) * 0.7 for s in shapes]
    X = np.array([[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]])
    Y = np.array([1.0, -1.0, -1.0, 1.0])
    vs = [rng.normal(size=s) for s in shapes]
    value, grads, hv = np_mod.loss_hvp(*params, X, Y, *vs)
    assert "def loss_hvp" in np_mod.source and "hv_W0" in np_mod.source

    def f(*ps):
        return torch_mod.loss(*ps, torch.tensor(X, dtype=T), torch.tensor(Y, dtype=T))

    tp = tuple(torch.tensor(p, dtype=T) for p in params)
    tv = tuple(torch.tensor(v, dtype=T) for v in vs)
    tval, want = torch.autograd.functional.hvp(f, tp, tv)
    assert math.isclose(value, float(tval), rel_tol=1e-12)
    for got, w in zip(hv, want):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-9, atol=1e-11)
    # central differences of the compiled gradient along v
    eps = 1e-5
    plus = np_mod.loss_grad(*[p + eps * v for p, v in zip(params, vs)], X, Y)[1]
    minus = np_mod.loss_grad(*[p - eps * v for p, v in zip(params, vs)], X, Y)[1]
    fd = (_flat(plus) - _flat(minus)) / (2 * eps)
    np.testing.assert_allclose(_flat(hv), fd, rtol=1e-6, atol=1e-7)
    # the torch backend's loss_hvp equals the NumPy one
    t_hv = torch_mod.loss_hvp(*tp, torch.tensor(X, dtype=T), torch.tensor(Y, dtype=T), *tv)[2]
    np.testing.assert_allclose(_flat([t.numpy() for t in t_hv]), _flat(hv), rtol=1e-12, atol=1e-14)
    # jvp (forward mode) vs torch.func.jvp
    val, jv = np_mod.loss_jvp(*params, X, Y, *vs)
    _, want = torch.func.jvp(f, tp, tv)
    assert math.isclose(jv, float(want), rel_tol=1e-10)
    assert math.isclose(jv, float(_flat(grads) @ _flat(vs)), rel_tol=1e-10)


NAME = re.compile(r"^    ([A-Za-z_]\w*) = ", re.M)


def test_second_order_names_unique_and_never_g_g(neuron, mlp):
    for src in (neuron.source, mlp[0].source):
        for fn in re.split(r"\ndef ", src)[1:]:
            if not fn.split("(")[0].endswith(("_hvp", "_hessian", "_jvp")):
                continue
            assigned = NAME.findall(fn)
            assert assigned and len(assigned) == len(set(assigned)), fn.split("(")[0]
            assert not [n for n in assigned if n.startswith("g_g_") or n.startswith("g_copy")]
    assert "h_x1_w1 = " in neuron.source and "t_n = " in neuron.source and "hv_b = " in neuron.source


def test_hessian_of_an_array_function_is_refused(tmp_path):
    path = tmp_path / "arr.py"
    path.write_text(MLP.replace("hvp=True, jvp=True", "hessian=True"))
    with pytest.raises(GradgenError, match=r"arr\.py:\d+: loss: hessian=True needs a function of scalars"):
        compile_file(str(path))


def test_newton_example_converges():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "newton.py")], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    norms = [float(m) for m in re.findall(r"\|grad\| = ([0-9.e+-]+)", out)]
    assert len(norms) <= 8 and norms[-1] < 1e-10, out


def test_check_verifies_second_order_and_catches_a_wrong_hvp(tmp_path):
    from gradgen.tools.check import check_model

    model = tmp_path / "neuron3.py"
    model.write_text(NEURON)
    (report,) = check_model(str(model), n_random=2)
    rows = {r.comparison: r for r in report.rows}
    for kind in ("hessian", "hvp", "jvp"):
        assert rows[f"{kind} vs torch"].status == "PASS" and rows[f"{kind} vs torch"].compared > 0
        fd = "finite diff" if kind == "jvp" else "finite diff of grad"
        assert rows[f"{kind} vs {fd}"].status == "PASS"
    assert not report.failed
    out = tmp_path / "gen"
    compile_file(str(model), str(out))
    text = (out / "neuron3.py").read_text()
    assert "(hv_x1, " in text
    bad = tmp_path / "bad.py"
    bad.write_text(text.replace("(hv_x1, ", "(hv_x1 * 1.001, "))
    (report,) = check_model(str(model), module=str(bad), n_random=2)
    rows = {r.comparison: r for r in report.rows}
    assert (
        report.failed and rows["hvp vs torch"].status == "FAIL" and rows["hvp vs finite diff of grad"].status == "FAIL"
    )
    assert rows["hessian vs torch"].status == "PASS"


def test_check_second_order_rows_on_the_mlp(tmp_path):
    from gradgen.tools.check import check_model

    model = tmp_path / "mlp3.py"
    model.write_text(MLP)
    (report,) = check_model(str(model), n_random=1)
    rows = {r.comparison: r for r in report.rows}
    assert (
        rows["hvp vs finite diff of grad"].status == "PASS" and rows["hvp vs finite diff of grad"].compared == 2 * 41
    )  # 41 weights, 2 data sets
    assert rows["jvp vs finite diff"].status == "PASS" and rows["hvp vs torch"].status == "SKIP"


def test_per_example_function_with_hvp_is_refused(tmp_path):
    path = tmp_path / "each.py"
    path.write_text(
        "import numpy as np\nimport gradgen\nfrom gradgen import nn\nm = nn.MLP(2, [3, 1])\n\n"
        "@gradgen.export(example=dict(X=np.zeros((1, 2))), hvp=True)\n"
        "def scores(X):\n    return gradgen.each(m, X)\n"
    )
    with pytest.raises(GradgenError, match=r"each\.py:\d+: scores: hvp=True needs a scalar loss"):
        compile_file(str(path))


def test_defaults_are_dropped_where_seeds_follow(tmp_path):
    path = tmp_path / "dflt.py"
    path.write_text(
        "import gradgen\n\n@gradgen.export(hvp=True, jvp=True, hessian=True)\n"
        "def f(x, k=2.0):\n    return (x * k).tanh() * x\n"
    )
    m = compile_file(str(path))
    assert "def f_grad(x, k=2.0)" in m.source and "def f_hvp(x, k, v_x, v_k)" in m.source
    x, k = 0.7, 2.0
    X = torch.tensor([x, k], dtype=T)
    ft = lambda t: torch.tanh(t[0] * t[1]) * t[0]  # noqa: E731
    _, _, H = m.f_hessian(x, k)
    np.testing.assert_allclose(H, torch.autograd.functional.hessian(ft, X).numpy(), rtol=1e-12, atol=1e-15)
    _, jv = m.f_jvp(x, k, 1.0, -0.5)
    assert math.isclose(
        jv, float(torch.autograd.functional.jvp(ft, X, torch.tensor([1.0, -0.5], dtype=T))[1]), rel_tol=1e-12
    )
