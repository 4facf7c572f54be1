"""<name>_step / <name>_train (gradgen.optim): the update against torch.optim in float64."""

import random

import numpy as np
import pytest
import torch

import gradgen
from gradgen import nn
from gradgen.errors import GradgenError

torch.set_default_dtype(torch.float64)


def moons_like(n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] * X[:, 1] + 0.3 * X[:, 0] > 0, 1.0, -1.0)
    return X, y


def mlp_module(opt):
    random.seed(1337)
    model = nn.MLP(2, [8, 8, 1])

    def svm(x, yi):
        return (1 + -yi * model(x)).relu()

    @gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), params=model, step=opt)
    def loss(X, y):
        return gradgen.mean(svm, X, y) + 1e-4 * sum(p * p for p in model.parameters())

    return model, gradgen.compile_function(loss)


def torch_loss(ps, X, y):
    W0, b0, W1, b1, W2, b2 = ps
    h = torch.relu(X @ W0.T + b0)
    h = torch.relu(h @ W1.T + b1)
    s = (h @ W2.T + b2)[:, 0]
    return torch.relu(1 - y * s).mean() + 1e-4 * sum((p * p).sum() for p in ps)


TORCH = {
    "sgd": (gradgen.sgd(), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "momentum": (gradgen.sgd(momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    "nesterov": (
        gradgen.sgd(momentum=0.8, nesterov=True, weight_decay=0.01),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
    ),
    "adam": (gradgen.adam(), lambda ps: torch.optim.Adam(ps, lr=0.1)),
    "adam_wd": (
        gradgen.adam(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
    ),
}


@pytest.mark.parametrize("which", sorted(TORCH))
def test_mlp_step_matches_torch_optim(which):
    opt, make = TORCH[which]
    model, compiled = mlp_module(opt)
    params = gradgen.params.read(model)
    tps = [torch.tensor(p, requires_grad=True) for p in params.values()]
    topt = make(tps)
    state = opt.init(params)
    X, y = moons_like()
    tX, ty = torch.tensor(X), torch.tensor(y)
    arrays = list(params.values())
    for k in range(5):
        args = (*arrays, X, y, 0.1) + ((state,) if opt.stateful else ())
        before = [a.copy() for a in arrays]
        got = compiled.loss_step(*args)
        topt.zero_grad()
        want = torch_loss(tps, tX, ty)
        want.backward()
        topt.step()
        assert got == pytest.approx(want.item(), rel=1e-12, abs=1e-14)  # the loss before the update
        for a, b, t in zip(arrays, before, tps):
            assert not np.array_equal(a, b) or not np.any(t.grad.numpy())  # changed in place
            np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-10, atol=1e-13)
    # the caller's dict still holds the arrays that were updated
    for a, b in zip(arrays, gradgen.params.read(model).values()):
        assert a.shape == b.shape


def test_scalar_function_step_matches_torch():
    @gradgen.export(step=gradgen.adam())
    def f(a, b):
        return (a * b - 1) ** 2 + a.tanh()

    compiled = gradgen.compile_function(f)
    a, b = np.array(0.3), np.array(-1.2)
    opt = gradgen.adam()
    state = opt.init([a, b])
    ta = torch.tensor(0.3, requires_grad=True)
    tb = torch.tensor(-1.2, requires_grad=True)
    topt = torch.optim.Adam([ta, tb], lr=0.05)
    for k in range(4):
        got = compiled.f_step(a, b, 0.05, state)
        topt.zero_grad()
        want = (ta * tb - 1) ** 2 + torch.tanh(ta)
        want.backward()
        topt.step()
        assert got == pytest.approx(want.item(), rel=1e-13)
        assert float(a) == pytest.approx(ta.item(), rel=1e-12)
        assert float(b) == pytest.approx(tb.item(), rel=1e-12)
    assert state["step"] == 4
    with pytest.raises(TypeError, match="f_step updates a and b in place"):
        compiled.f_step(0.3, -1.2, 0.05, state)


def test_step_trajectory_equals_grad_plus_manual_sgd():
    model, compiled = mlp_module(gradgen.sgd())
    X, y = moons_like(100, seed=3)
    p1 = [a.copy() for a in gradgen.params.read(model).values()]
    p2 = [a.copy() for a in p1]
    for k in range(100):
        lr = 1.0 - 0.9 * k / 100
        l1 = compiled.loss_step(*p1, X, y, lr)
        l2, grads = compiled.loss_grad(*p2, X, y)
        for p, g in zip(p2, grads):
            p -= lr * g
        assert l1 == pytest.approx(l2, rel=1e-12)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_train_is_k_steps():
    opt = gradgen.sgd(momentum=0.9)
    model, compiled = mlp_module(opt)
    X, y = moons_like()
    p1 = [a.copy() for a in gradgen.params.read(model).values()]
    p2 = [a.copy() for a in p1]
    s1, s2 = opt.init(p1), opt.init(p2)
    lrs = [0.1, 0.05, 0.02]
    losses = compiled.loss_train(*p1, X, y, lrs, s1)
    want = [compiled.loss_step(*p2, X, y, lr, s2) for lr in lrs]
    assert losses == want
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)


def test_wrong_state_is_one_line():
    opt = gradgen.adam()
    model, compiled = mlp_module(opt)
    X, y = moons_like()
    ps = list(gradgen.params.read(model).values())
    with pytest.raises(ValueError, match="loss_step: state must be opt.init"):
        compiled.loss_step(*ps, X, y, 0.1, gradgen.sgd(momentum=0.9).init(ps))
    with pytest.raises(ValueError, match="loss_step: state must be opt.init"):
        compiled.loss_step(*ps, X, y, 0.1, opt.init(ps[:2]))


def test_step_needs_something_to_update():
    @gradgen.export(example=dict(X=np.zeros((1, 2))), step=gradgen.sgd())
    def data_only(X):
        return gradgen.mean(lambda x: x[0] * x[1], X)

    with pytest.raises(GradgenError, match="nothing to update"):
        gradgen.compile_function(data_only)


def test_step_must_be_an_optimizer():
    @gradgen.export(step=torch.optim.SGD)
    def g(a):
        return a * a

    with pytest.raises(GradgenError, match="step= takes gradgen.sgd"):
        gradgen.compile_function(g)


def test_optimizer_arguments_checked():
    with pytest.raises(ValueError, match="nesterov"):
        gradgen.sgd(nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        gradgen.adam(betas=(1.0, 0.9))


def test_torch_backend_step_matches_numpy():
    opt = gradgen.adam()
    model, compiled = mlp_module(opt)
    tcompiled = gradgen.compile_function(mlp_fn(model, opt), backend="torch")
    X, y = moons_like(30, seed=5)
    ps = [a.copy() for a in gradgen.params.read(model).values()]
    ts = [torch.tensor(a) for a in ps]
    s1, s2 = opt.init(ps), opt.init(ts)
    l1 = compiled.loss_train(*ps, X, y, [0.05] * 10, s1)
    l2 = tcompiled.loss_train(*ts, torch.tensor(X), torch.tensor(y), [0.05] * 10, s2)
    np.testing.assert_allclose([float(v) for v in l2], l1, rtol=1e-12)
    for a, t in zip(ps, ts):
        np.testing.assert_allclose(t.numpy(), a, rtol=1e-10, atol=1e-14)


def mlp_fn(model, opt):
    def svm(x, yi):
        return (1 + -yi * model(x)).relu()

    @gradgen.export(example=dict(X=np.zeros((1, 2)), y=np.zeros(1)), params=model, step=opt)
    def loss(X, y):
        return gradgen.mean(svm, X, y) + 1e-4 * sum(p * p for p in model.parameters())

    return loss
