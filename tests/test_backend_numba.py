"""The numba backend (gradgen.backends.numba) against the NumPy backend.

* every example compiles with backend="numba", and every function (value and gradient)
  equals the NumPy backend's to 1e-12 relative: the scalar ones at the engine's points,
  the array ones at random arrays of their compiled shapes (B = 5);
* moons: 100 steps of loss_train (one compiled loop) and of loss_step follow the NumPy
  backend's trajectory (losses and final parameters) within 1e-12 relative, and so do the
  torch backend's 100 steps (every backend that compiles moons, issue #12);
* the loops (gradgen.backends.loops): the module's text has the fused nests (bias add and
  ReLU in one loop after the product, the mask and the bias gradient in one), and small and
  big products, broadcasts and reductions equal the NumPy backend's;
* a wrong shape is a one-line ValueError naming the function and argument; stateful
  optimizers are refused with a GradgenError; the module text is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import gradgen  # noqa: E402
from gradgen.errors import GradgenError  # noqa: E402
from gradgen.frontend.loader import load_model  # noqa: E402
from test_examples import CASES, EXAMPLES, example_point, random_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-12


def close(got, want, rel=REL, abs_=1e-14) -> bool:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rel, atol=abs_))


@pytest.fixture(scope="module")
def compiled():
    """stem -> (numba module, numpy module, {name: model function})."""
    out = {}
    for path in EXAMPLES:
        _, fns = load_model(str(path))
        nb = gradgen.compile_file(str(path), backend="numba")
        ref = gradgen.compile_file(str(path), backend="numpy")
        out[path.stem] = (nb, ref, {f.__name__: f for f in fns})
    return out


def test_every_example_compiles_to_njit_functions(compiled):
    for stem, (nb, _, fns) in compiled.items():
        assert "from numba import njit" in nb.source, stem
        for name in fns:
            assert isinstance(getattr(nb.module, name + "_grad", getattr(nb.module, name)), numba.core.dispatcher.Dispatcher)


@pytest.mark.parametrize("stem,name", CASES, ids=[f"{s}.{n}" for s, n in CASES])
def test_scalar_functions_equal_numpy_backend(compiled, stem, name):
    nb, ref, fns = compiled[stem]
    fn = fns[name]
    for point in [example_point(fn)] + random_points(stem, fn):
        want_v, want_g = getattr(ref.module, name + "_grad")(*point)
        got_v, got_g = getattr(nb.module, name + "_grad")(*point)
        assert close(got_v, want_v) and close(got_g, want_g), (name, point)
        assert close(getattr(nb.module, name)(*point), want_v), (name, point)


def random_args(table: str, B: int, seed: int):
    """Random float64 arrays (and floats) of the shapes in an argument table ("f W0:16,2 X:B,2 k:")."""
    rng = np.random.default_rng(seed)
    head = table.partition("; ")[0].split()[1:]
    out = []
    for spec in head:
        dims = [B if d == "B" else int(d) for d in spec.split(":")[1].split(",") if d]
        out.append(rng.standard_normal(dims) if dims else float(rng.standard_normal()))
    return out


def array_functions(ref):
    return [k[1:-5] for k in vars(ref.module) if k.startswith("_") and k.endswith("_args") and k != "_args"]


@pytest.mark.parametrize("stem", [p.stem for p in EXAMPLES])
def test_array_functions_equal_numpy_backend(compiled, stem):
    nb, ref, _ = compiled[stem]
    names = array_functions(ref)
    if not names:
        pytest.skip(f"{stem} has no array functions")
    for fname in names:
        table = getattr(ref.module, f"_{fname}_args")
        for seed in range(3):
            args = random_args(table, 5, seed)
            want = getattr(ref.module, fname)(*[np.copy(a) for a in args])
            got = getattr(nb.module, fname)(*[np.copy(a) for a in args])
            if fname.endswith("_grad"):
                assert close(got[0], want[0]), (fname, seed)
                assert len(got[1]) == len(want[1])
                assert all(close(g, w) for g, w in zip(got[1], want[1])), (fname, seed)
            else:
                assert close(got, want), (fname, seed)


@pytest.fixture(scope="module")
def moons_data():
    sys.path.insert(0, str(ROOT / "examples"))
    import moons

    X, y = moons.make_data()
    return X, y, list(gradgen.params.read(moons.model).values())


def test_moons_trajectory_equals_numpy_backend(compiled, moons_data):
    """100 steps (micrograd's schedule): loss_train and loss_step against the NumPy backend's loss_train."""
    nb, ref, _ = compiled["moons"]
    X, y, base = moons_data
    lrs = [1.0 - 0.9 * k / 100 for k in range(100)]
    p_ref = [a.copy() for a in base]
    want = ref.module.loss_train(*p_ref, X, y, lrs)
    p_train = [a.copy() for a in base]
    got = nb.module.loss_train(*p_train, X, y, np.array(lrs))
    assert isinstance(got, np.ndarray) and got.shape == (100,)
    assert close(got, want, abs_=0.0)
    assert all(close(a, b, abs_=1e-15) for a, b in zip(p_train, p_ref))
    p_step = [a.copy() for a in base]
    steps = [nb.module.loss_step(*p_step, X, y, lr) for lr in lrs]
    assert close(steps, want, abs_=0.0)
    assert all(close(a, b, abs_=1e-15) for a, b in zip(p_step, p_ref))
    assert want[-1] < 0.1 * want[0]  # it trained


def test_moons_trajectory_every_backend_equals_numpy_backend(compiled, moons_data):
    """Issue #12: every backend's 100-step moons trajectory (losses and final parameters, one
    loss_step a step) within 1e-12 relative of the NumPy backend's: numba's loops and BLAS,
    torch's float64 tensors."""
    torch = pytest.importorskip("torch")
    _, ref, _ = compiled["moons"]
    X, y, base = moons_data
    lrs = [1.0 - 0.9 * k / 100 for k in range(100)]
    p_ref = [a.copy() for a in base]
    want = [ref.module.loss_step(*p_ref, X, y, lr) for lr in lrs]
    tb = gradgen.compile_file(str(ROOT / "examples" / "moons.py"), backend="torch").module
    ps = [torch.tensor(a) for a in base]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    got = {"torch": ([float(tb.loss_step(*ps, Xt, yt, lr)) for lr in lrs], [p.numpy() for p in ps])}
    nb = compiled["moons"][0].module
    ps = [a.copy() for a in base]
    got["numba"] = ([nb.loss_step(*ps, X, y, lr) for lr in lrs], ps)
    for backend, (losses, params) in got.items():
        assert close(losses, want, abs_=0.0), backend
        assert all(close(a, b, abs_=1e-15) for a, b in zip(params, p_ref)), backend
    assert want[-1] < 0.1 * want[0]  # it trained


def test_wrong_shape_is_one_line_value_error(compiled, moons_data):
    nb, _, _ = compiled["moons"]
    X, y, base = moons_data
    with pytest.raises(ValueError, match=r"^loss_grad: y must have shape \(B,\) with B = the rows of X$"):
        nb.module.loss_grad(*base, X, y[:-1])
    with pytest.raises(ValueError, match=r"^loss_grad: X must have shape \(B, 2\)$"):
        nb.module.loss_grad(*base, np.zeros((100, 3)), y)


def test_stateful_optimizer_is_refused(tmp_path):
    src = tmp_path / "adam_model.py"
    src.write_text(
        "import numpy as np\nimport gradgen\nfrom gradgen import nn\nmodel = nn.MLP(2, [3, 1])\n\n"
        "@gradgen.export(example=dict(X=np.zeros((1, 2))), step=gradgen.adam())\n"
        "def loss(X):\n    return gradgen.mean(lambda x: model(x).relu(), X)\n"
    )
    with pytest.raises(GradgenError, match="numba backend emits plain SGD"):
        gradgen.compile_file(str(src), backend="numba")


def test_deterministic_and_black_clean(compiled):
    from gradgen.backends.module import format_source

    path = str(ROOT / "examples" / "moons.py")
    a = gradgen.compile_file(path, backend="numba").source
    assert a == compiled["moons"][0].source
    assert format_source(a, force=True) == a


def test_moons_example_trains_on_numba(capsys):
    """`python examples/moons.py --backend numba` prints the NumPy backend's lines (to 1e-12)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import moons

    lines, start = {}, gradgen.params.read(moons.model)
    for backend in ("numpy", "numba"):
        gradgen.params.write(moons.model, start)  # main writes the trained parameters back
        moons.main(["--steps", "5", "--plot", "", "--backend", backend])
        lines[backend] = capsys.readouterr().out.splitlines()
    assert len(lines["numba"]) == 5
    for a, b in zip(lines["numpy"], lines["numba"]):
        la, lb = float(a.split()[3].rstrip(",")), float(b.split()[3].rstrip(","))
        assert abs(la - lb) <= 1e-12 * abs(la) and a.split()[-1] == b.split()[-1], (a, b)


ACTIVATIONS_MODEL = """import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(3)
model = nn.MLP(3, [4, 2])


def ex(x, t):
    z = model(x)
    a = z[0].sigmoid() * z[1].tanh() + (z[0] * 0.1).exp() + abs(z[1]) ** 2
    return a + (1 + z[0] * z[0]).log() * t[0] + (z[1] - t[1]).relu()


@gradgen.export(example=dict(X=np.zeros((1, 3)), T=np.zeros((1, 2))), step=gradgen.sgd())
def loss(X, T):
    return gradgen.mean(ex, X, T)
"""


def _same_grad_and_train(nb, ref, ps, X, T, steps, lr):
    """loss_grad at ps, and `steps` steps of loss_train from copies of ps, equal the NumPy backend's."""
    want, got = ref.module.loss_grad(*ps, X, T), nb.module.loss_grad(*ps, X, T)
    assert close(got[0], want[0]) and all(close(g, w) for g, w in zip(got[1], want[1]))
    p_ref, p_nb = [p.copy() for p in ps], [p.copy() for p in ps]
    want = ref.module.loss_train(*p_ref, X, T, [lr] * steps)
    assert close(nb.module.loss_train(*p_nb, X, T, np.full(steps, lr)), want, abs_=0.0)
    assert all(close(a, b) for a, b in zip(p_nb, p_ref))


def test_array_activations_equal_numpy_backend(tmp_path):
    """sigmoid (the _np_sigmoid helper under njit), tanh, exp, log, abs, pow, relu and elem on
    arrays: loss_grad and 20 steps of loss_train equal the NumPy backend's to 1e-12."""
    src = tmp_path / "acts.py"
    src.write_text(ACTIVATIONS_MODEL)
    nb, ref = gradgen.compile_file(str(src), backend="numba"), gradgen.compile_file(str(src))
    module, _ = load_model(str(src))
    ps = list(gradgen.params.read(module.model).values())
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    _same_grad_and_train(nb, ref, ps, X, T, steps=20, lr=0.01)


def test_moons_loops_are_fused(compiled):
    """The numba module's loss_grad and loss_step are loops where the NumPy module has array
    lines: the bias add and ReLU in one nest after the BLAS product, relu's mask and the bias
    gradient in one, the first layer's 2-input product as loops, the update as loops or in
    the weight gradient's BLAS call."""
    text = compiled["moons"][0].source
    grad = text[text.index("def loss_grad(") : text.index("def loss_step(")]
    step = text[text.index("def _loss_step_kernel(") : text.index("def loss_step(")]
    assert "    z1 = h0 @ W1.T\n" in grad  # a big product: one BLAS call into z1
    nest = "            z1[i, j] += b1[j]\n            h1[i, j] = max(z1[i, j], 0.0)\n"
    assert nest in grad
    assert "g_z0[i, j] = g_h0[i, j] * (1.0 if h0[i, j] > 0.0 else 0.0)" in grad
    assert "g_b0[j] += g_z0[i, j]" in grad
    assert "acc += X[i, k] * W0[j, k]" in grad  # X @ W0.T: 2 inputs, loops
    assert "g_W0[j, k] += g_z0[i, j] * X[i, k]" in grad
    assert "np.maximum" not in grad and ".sum(axis" not in grad
    # the step: the gradient inline, W1's big weight gradient and its update one BLAS call
    # (the L2 term in beta), the other updates as loops
    assert "loss_grad(" not in step and "    _gemm(g_z1.T, h0, W1, -lr, 1.0 - 0.0002 * lr)" in step
    assert "g_W1" not in step and "            W0[i, j] -= lr * g_W0[i, j]\n" in step
    # its batch-row temporaries are scratch, made once per batch size (no np.empty((B, ...))
    # per call: page faults at large B), passed in by loss_step and made once by loss_train
    assert "np.empty((B" not in step and "    z0 = np.empty((B, 16))\n" in text[text.index("def loss_train(") :]
    assert "    return _loss_step_kernel(W0, b0, W1, b1, W2, b2, X, y, lr, *scratch[:-1])\n" in text


CE_MODEL = """import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(5)
model = nn.MLP(3, [40, 4])


def ce(x, onehot):
    z = model(x)
    s = sum(zi.exp() for zi in z)
    return s.log() - sum(t * zi for t, zi in zip(onehot, z))


@gradgen.export(example=dict(X=np.zeros((1, 3)), Y=np.zeros((1, 4))), step=gradgen.sgd())
def loss(X, Y):
    return gradgen.mean(ce, X, Y) + 1e-3 * sum(p * p for p in model.parameters())
"""


@pytest.mark.parametrize("B", [1, 2, 37])
def test_softmax_loops_equal_numpy_backend(tmp_path, B):
    """A softmax cross-entropy MLP (3-40-4: a 120-element product as BLAS, 160 as BLAS, the
    exp and its row sum in one nest, the L2 term): loss_grad and 30 steps of
    loss_train equal the NumPy backend's to 1e-12, for B = 1, 2, 37."""
    src = tmp_path / "ce.py"
    src.write_text(CE_MODEL)
    nb, ref = gradgen.compile_file(str(src), backend="numba"), gradgen.compile_file(str(src))
    assert "s[i] += exp[i, j]" in nb.source or "+= exp" in nb.source
    module, _ = load_model(str(src))
    ps = list(gradgen.params.read(module.model).values())
    rng = np.random.default_rng(B)
    X, Y = rng.standard_normal((B, 3)), np.eye(4)[rng.integers(0, 4, B)]
    _same_grad_and_train(nb, ref, ps, X, Y, steps=30, lr=0.05)


def test_moons_step_scratch_is_per_batch_size(compiled):
    """loss_step's scratch is kept per batch size: steps at B = 7, 100, 7 on two parameter
    copies equal the NumPy backend's steps on the same data (the second B=7 step reuses the
    first one's arrays, after a B=100 step wrote its own)."""
    nb, ref, _ = compiled["moons"]
    rng = np.random.default_rng(3)
    shapes = [(16, 2), (16,), (16, 16), (16,), (1, 16), (1,)]
    p_nb = [rng.uniform(-1, 1, s) for s in shapes]
    p_ref = [a.copy() for a in p_nb]
    for B in (7, 100, 7):
        X = rng.standard_normal((B, 2))
        y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)
        got = nb.module.loss_step(*p_nb, X, y, 0.05)
        want = ref.module.loss_step(*p_ref, X, y, 0.05)
        assert close(got, want)
        assert all(close(a, b) for a, b in zip(p_nb, p_ref))
