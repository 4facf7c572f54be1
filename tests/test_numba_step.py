"""The numba backend's inline SGD step (gradgen.backends.numba_step) against the NumPy backend.

A big weight gradient and its parameter's update are one dgemm call (`_gemm`, scipy's BLAS
through ctypes); the numbers are the NumPy backend's to rounding: trajectories within
1e-12 relative, with and without an L2 term and a weight decay, and a weight used twice
(two gradient contributions) is not fused and still right.  `_gemm` itself is checked
against NumPy on every operand layout it takes, and on the ones it hands back to NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradgen
from gradgen.frontend.loader import load_model

numba = pytest.importorskip("numba")
pytest.importorskip("scipy")

REL = 1e-12

MLP_MODEL = """import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(7)
model = nn.MLP(5, [40, 24, 3])


def ce(x, onehot):
    z = model(x)
    s = sum(zi.exp() for zi in z)
    return s.log() - sum(t * zi for t, zi in zip(onehot, z))


@gradgen.export(example=dict(X=np.zeros((1, 5)), Y=np.zeros((1, 3))), step=STEP)
def loss(X, Y):
    return gradgen.mean(ce, X, Y)ALPHA
"""

TIED_MODEL = """import random
import numpy as np
import gradgen
from gradgen import nn

random.seed(2)


class Tied(nn.Module):
    def __init__(self):
        self.layer = nn.Layer(6, 6)  # used twice: its W's gradient has two contributions
        self.head = nn.Layer(6, 1, nonlin=False)

    def __call__(self, x):
        return self.head(self.layer(self.layer(x)))


model = Tied()


def f(x, t):
    return (model(x) - t[0]) ** 2


@gradgen.export(example=dict(X=np.zeros((1, 6)), T=np.zeros((1, 1))), step=gradgen.sgd())
def loss(X, T):
    return gradgen.mean(f, X, T)
"""


def close(a, b, rel=REL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.abs(a - b) <= rel * np.maximum(np.abs(b), 1e-300)))


def compile_both(tmp_path, text):
    src = tmp_path / "m.py"
    src.write_text(text)
    nb, ref = gradgen.compile_file(str(src), backend="numba"), gradgen.compile_file(str(src))
    module, _ = load_model(str(src))
    return nb, ref, list(gradgen.params.read(module.model).values())


def trajectories(nb, ref, params, data, lrs):
    p_ref, p_nb = [p.copy() for p in params], [p.copy() for p in params]
    want = [ref.module.loss_step(*p_ref, *data, lr) for lr in lrs]
    got = [nb.module.loss_step(*p_nb, *data, lr) for lr in lrs]
    return got, want, p_nb, p_ref


@pytest.mark.parametrize(
    "step, alpha",
    [("gradgen.sgd()", ""), ("gradgen.sgd()", " + 1e-3 * sum(p * p for p in model.parameters())"),
     ("gradgen.sgd(weight_decay=0.01)", " + 1e-3 * sum(p * p for p in model.parameters())")],
)
def test_fused_step_follows_numpy_backend(tmp_path, step, alpha):
    """5-40-24-3 softmax MLP: W1 (24 x 40) and W2's products are BLAS, so their gradients
    and updates are one _gemm each (the L2 term and weight decay in beta); W0's (40 x 5,
    contracted over the batch) too; 40 steps within 1e-12 of the NumPy backend, B = 1, 33."""
    nb, ref, params = compile_both(tmp_path, MLP_MODEL.replace("STEP", step).replace("ALPHA", alpha))
    body = nb.source[nb.source.index("def _loss_step_kernel(") : nb.source.index("def loss_step(")]
    assert "loss_grad(" not in body and "_gemm(g_z1.T, h0, W1, -lr, " in body
    assert "g_W1" not in body  # never stored: the update is the product
    if alpha:
        k = "0.012" if "weight_decay" in step else "0.002"
        assert f"_gemm(g_z1.T, h0, W1, -lr, 1.0 - {k} * lr)" in body
    for B in (1, 33):
        rng = np.random.default_rng(B)
        X, Y = rng.standard_normal((B, 5)), np.eye(3)[rng.integers(0, 3, B)]
        got, want, p_nb, p_ref = trajectories(nb, ref, params, (X, Y), [0.05] * 40)
        assert close(got, want) and all(close(a, b) for a, b in zip(p_nb, p_ref)), B
        assert want[-1] < want[0]


def test_weight_used_twice_is_not_fused(tmp_path):
    """A layer applied twice: its W's gradient is a sum of two products (W is read by the
    second one's backward after the first), so it is updated after the gradient, as a loop;
    50 steps within 1e-12 of the NumPy backend."""
    nb, ref, params = compile_both(tmp_path, TIED_MODEL)
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((20, 6)), rng.standard_normal((20, 1))
    got, want, p_nb, p_ref = trajectories(nb, ref, params, (X, T), [0.02] * 50)
    assert close(got, want) and all(close(a, b) for a, b in zip(p_nb, p_ref))
    body = nb.source[nb.source.index("def _loss_step_kernel(") : nb.source.index("def loss_step(")]
    assert "_gemm(" not in body and "layer_W[i, j] -= lr * g_layer_W[i, j]" in body


@pytest.fixture(scope="module")
def gemm(tmp_path_factory):
    """The _gemm helper as a generated module defines it."""
    from gradgen.backends.numba_step import GEMM_HELPER

    ns = {"np": np, "njit": numba.njit}
    exec(GEMM_HELPER, ns)
    return ns["_gemm"]


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_gemm_layouts(gemm, ta, tb):
    """c = alpha * (a @ b) + beta * c for a and b C arrays or the .T of one (F), shapes 7x5 @ 5x3."""
    rng = np.random.default_rng(int(ta) * 2 + int(tb))
    a = rng.standard_normal((5, 7)).T if ta else rng.standard_normal((7, 5))
    b = rng.standard_normal((3, 5)).T if tb else rng.standard_normal((5, 3))
    c = rng.standard_normal((7, 3))
    want = -0.3 * (a @ b) + 0.9 * c
    gemm(a, b, c, -0.3, 0.9)
    assert np.allclose(c, want, rtol=1e-13, atol=1e-14)


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # the strided view: numba copies it
def test_gemm_hands_other_arrays_to_numpy(gemm):
    """A strided view (neither C nor F) and float32 arrays take `alpha * (a @ b) + beta * c`."""
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((6, 10))[:, ::2], rng.standard_normal((5, 4))
    c = rng.standard_normal((6, 4))
    want = 2.0 * (np.ascontiguousarray(a) @ b) - 1.0 * c
    gemm(a, b, c, 2.0, -1.0)
    assert np.allclose(c, want, rtol=1e-13, atol=1e-14)
    a32, b32, c32 = (x.astype(np.float32) for x in (np.ascontiguousarray(a), b, c))
    want32 = 0.5 * (a32 @ b32) + c32
    gemm(a32, b32, c32, 0.5, 1.0)
    assert np.allclose(c32, want32, rtol=1e-5)
