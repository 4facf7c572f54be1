"""The NumPy backend's lean `<name>_step` (gradgen.backends.lean) against the plain step.

The plain step is `<name>_grad` plus one update per array (what separate arrays get);
the lean one (parameters that are views into one buffer, as gradgen.params.read returns
them) writes into preallocated arrays, sums batches as `ones @ g`, folds the L2 term and
the update into the flat buffer: the same numbers to rounding (1e-12 relative over 100
steps), the caller's arrays updated in place, fresh gradients from `<name>_grad`.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import gradgen
from gradgen import nn

REL = 1e-12


def moons_like(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] * X[:, 1] + 0.3 * X[:, 0] > 0, 1.0, -1.0)
    return X, y


def svm_module(opt=None, alpha=1e-4, widths=(8, 8, 1)):
    random.seed(1337)
    model = nn.MLP(2, list(widths))

    def svm(x, yi):
        return (1 + -yi * model(x)).relu()

    @gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), params=model, step=opt or gradgen.sgd())
    def loss(X, y):
        data = gradgen.mean(svm, X, y)
        return data + alpha * sum(p * p for p in model.parameters()) if alpha else data

    return model, gradgen.compile_function(loss)


def plain_trajectory(m, params, X, y, lrs, wd=0.0):
    ps = [np.array(p, copy=True) for p in params]
    losses = []
    for lr in lrs:
        v, gs = m.loss_grad(*ps, X, y)
        for p, g in zip(ps, gs):
            p -= lr * (g + wd * p if wd else g)
        losses.append(v)
    return losses, ps


def close(a, b, rel=REL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(np.abs(a - b) <= rel * np.maximum(np.abs(b), 1e-300) + 1e-300))


def test_read_gives_views_into_one_buffer():
    model, c = svm_module()
    ps = list(gradgen.params.read(model).values())
    base = ps[0].base
    assert base is not None and base.ndim == 1 and base.size == sum(p.size for p in ps)
    assert all(p.base is base for p in ps)
    assert c.module._flat(c.module._loss_step_params, *ps) is base
    # copies, views out of order, float32: no flat buffer (the plain step)
    assert c.module._flat(c.module._loss_step_params, *[p.copy() for p in ps]) is None
    assert c.module._flat(c.module._loss_step_params, *(ps[1:2] + ps[:1] + ps[2:])) is None
    assert c.module._flat(c.module._loss_step_params, *[p.astype(np.float32) for p in ps]) is None
    flat = gradgen.params.flat(ps)
    assert all(np.array_equal(a, b) and a.base is flat[0].base for a, b in zip(flat, ps))


@pytest.mark.parametrize("alpha", [1e-4, 0.0])
def test_100_steps_follow_the_plain_step(alpha):
    model, c = svm_module(alpha=alpha)
    params = list(gradgen.params.read(model).values())
    X, y = moons_like(40)
    lrs = [1.0 - 0.9 * k / 100 for k in range(100)]
    want, want_ps = plain_trajectory(c.module, params, X, y, lrs)
    ps = gradgen.params.flat(params)
    got = [c.loss_step(*ps, X, y, lr) for lr in lrs]
    assert close(got, want) and all(close(p, q) for p, q in zip(ps, want_ps))
    assert "np.dot(ones, " in c.source and "theta -= grad" in c.source
    assert ("theta *= 1.0 - 0.0002 * lr" in c.source) == bool(alpha)
    # separate arrays take the plain step: the same numbers bit for bit
    sep = [p.copy() for p in params]
    assert [c.loss_step(*sep, X, y, lr) for lr in lrs] == want


def test_weight_decay_and_batch_sizes():
    model, c = svm_module(gradgen.sgd(weight_decay=0.01))
    params = list(gradgen.params.read(model).values())
    batches = [moons_like(n, seed=n) for n in (20, 7, 20, 1, 7)]
    ps = gradgen.params.flat(params)
    ref = [p.copy() for p in params]
    for X, y in batches:  # the arrays of each batch size are made once and reused
        want, ref = plain_trajectory(c.module, ref, X, y, [0.1], wd=0.01)
        assert close(c.loss_step(*ps, X, y, 0.1), want[0])
        assert all(close(p, q) for p, q in zip(ps, ref))
    assert sorted(c.module._loss_step_scratch) == [1, 7, 20]


def test_grad_returns_fresh_arrays_and_float32_updates_in_place():
    model, c = svm_module()
    X, y = moons_like()
    ps = list(gradgen.params.read(model).values())
    v, gs = c.loss_grad(*ps, X, y)
    kept = [g.copy() for g in gs]
    c.loss_step(*ps, X, y, 0.1)  # the step's arrays are its own
    assert all(np.array_equal(g, k) for g, k in zip(gs, kept))
    p32 = [p.astype(np.float32) for p in ps]
    before = [p.copy() for p in p32]
    c.loss_step(*p32, X, y, 0.1)  # the plain step: float32 arrays updated in place
    assert all(p.dtype == np.float32 and not np.array_equal(p, b) for p, b in zip(p32, before))


def test_bad_data_is_one_line_naming_the_argument():
    model, c = svm_module()
    ps = list(gradgen.params.read(model).values())
    X, y = moons_like()
    with pytest.raises(ValueError, match=r"^loss_step: y has shape \(19,\), but loss_step takes \(B,\) with B = 20"):
        c.loss_step(*ps, X, y[:-1], 0.1)
    with pytest.raises(ValueError, match=r"^loss_grad: W0 has shape \(8, 3\)"):
        bad = gradgen.params.flat([np.zeros((8, 3))] + ps[1:])
        c.loss_step(*bad, X, y, 0.1)  # a wrong parameter shape: the plain step's check


def test_train_uses_the_lean_step():
    model, c = svm_module()
    params = list(gradgen.params.read(model).values())
    X, y = moons_like(30)
    lrs = [0.5, 0.3, 0.1]
    want, want_ps = plain_trajectory(c.module, params, X, y, lrs)
    ps = gradgen.params.flat(params)
    assert close(c.loss_train(*ps, X, y, lrs), want)
    assert all(close(p, q) for p, q in zip(ps, want_ps))


def test_momentum_and_adam_keep_the_plain_step():
    for opt in (gradgen.sgd(momentum=0.9), gradgen.adam()):
        _, c = svm_module(opt)
        assert "_flat(" not in c.source and "loss_grad(" in c.source.split("def loss_step")[1]


def test_names_clear_of_the_models_variables():
    """A model whose variables are called lr, theta and grad: the step's own names step aside."""
    random.seed(0)
    model = nn.MLP(2, [4, 1])

    def f(x, yi):
        lr = model(x)
        theta = (1 + -yi * lr).relu()
        return theta

    @gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), params=model, step=gradgen.sgd())
    def loss(X, y):
        grad = gradgen.mean(f, X, y)
        return grad

    c = gradgen.compile_function(loss)
    assert "def loss_step(W0, b0, W1, b1, X, y, lr_1):" in c.source and "theta_1 -= grad_1" in c.source
    params = list(gradgen.params.read(model).values())
    X, y = moons_like(9)
    want, want_ps = plain_trajectory(c.module, params, X, y, [0.1] * 5)
    ps = gradgen.params.flat(params)
    assert close([c.loss_step(*ps, X, y, 0.1) for _ in range(5)], want)
    assert all(close(p, q) for p, q in zip(ps, want_ps))
