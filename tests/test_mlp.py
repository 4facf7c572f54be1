"""MLPs compiled three ways: compiled module vs interpreted engine vs PyTorch float64.

Each case is a `gradgen.nn.MLP` (micrograd style: ReLU hidden layers, linear
last; lecture style: tanh everywhere) and a per-example loss written with
`Value`s, averaged with `gradgen.mean`.  One compiled module per case is
called with batches of 1, 3 and 17 examples (the batch axis is symbolic),
and its value and gradients must equal

* the interpreted engine (`loss(X, y).backward()`, `gradgen.params.read_grads`),
* PyTorch float64: the same network rebuilt from the parameter arrays as
  tensors (`X @ W.T + b`), the same loss written with torch ops, autograd,

to 1e-9 relative (with a 1e-12 floor for gradients that are exactly zero).
Re-rolled code sums in another order than the engine, hence not bit for bit.

Also here: micrograd's plain list form (specialised to the example's batch
size, refusing any other), `rerolling=False` computing the same numbers, the
shape of re-rolled source (matrix code whose length does not depend on the
width or the batch), and regression tests for the bugs they found.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen
from gradgen import Value, nn
from gradgen.api import compile_function

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-9
ABS = 1e-12  # floor for gradients that are exactly zero (dead ReLUs)
BATCHES = (1, 3, 17)


# -- networks -------------------------------------------------------------------------


def make_mlp(nin: int, nouts: list[int], style: str, seed: int = 0) -> nn.MLP:
    """An MLP with seeded random parameters (biases too, so none sits at micrograd's 0)."""
    random.seed(seed)
    model = nn.MLP(nin, nouts, style=style)
    rng = np.random.RandomState(seed)
    gradgen.params.write(model, {k: rng.uniform(-1, 1, a.shape) for k, a in gradgen.params.read(model).items()})
    return model


def forward(model: nn.MLP, x):
    """`model(x)`, except that a width-1 layer's single Value is passed on as a list.

    (micrograd's `MLP.__call__` cannot follow a width-1 hidden layer: `zip(w, Value)`.)
    """
    for layer in model.layers:
        x = layer(x if isinstance(x, list) else [x])
    return x


def torch_forward(model: nn.MLP, params: dict, X: np.ndarray):
    """The network on a batch, from the parameter arrays: (leaf tensors, output (B, nout))."""
    leaves = {k: torch.tensor(a, dtype=torch.float64, requires_grad=True) for k, a in params.items()}
    h = torch.tensor(X, dtype=torch.float64)
    last = len(model.layers) - 1
    for l in range(len(model.layers)):
        h = h @ leaves[f"W{l}"].T + leaves[f"b{l}"]
        if model.style == "lecture":
            h = torch.tanh(h)
        elif l != last:
            h = torch.relu(h)
    return leaves, h


# -- losses: (per-example Value function, the same in torch over a batch, targets) ----


def svm_value(model):
    def svm(x, yi):
        score = forward(model, x)
        return (1 + -yi * score).relu()

    return svm


def squared_value(model):
    def squared(x, yi):
        return (forward(model, x) - yi) ** 2

    return squared


def softmax_ce_value(model):
    def softmax_ce(x, onehot):
        logits = forward(model, x)
        s = sum(z.exp() for z in logits)
        return s.log() - sum(t * z for t, z in zip(onehot, logits))

    return softmax_ce


def sigmoid_bce_value(model):
    def sigmoid_bce(x, yi):
        p = forward(model, x).sigmoid()
        return -(yi * p.log() + (1 - yi) * (1 - p).log())

    return sigmoid_bce


def tanh_gate_value(model):
    def tanh_gate(x, yi):
        a, c = forward(model, x)
        return (a.tanh() * c.sigmoid() - yi) ** 2

    return tanh_gate


@dataclass(frozen=True)
class Loss:
    value: object  # model -> per-example function of Values
    torch: object  # (network output (B, nout), targets) -> per-example losses (B,)
    targets: object  # (rng, B, nout) -> targets array


LOSSES = {
    "svm": Loss(
        svm_value,
        lambda out, t: torch.relu(1 + -t * out[:, 0]),
        lambda rng, B, k: rng.choice([-1.0, 1.0], B),
    ),
    "squared": Loss(squared_value, lambda out, t: (out[:, 0] - t) ** 2, lambda rng, B, k: rng.randn(B)),
    "softmax_ce": Loss(
        softmax_ce_value,
        lambda out, t: torch.log(torch.exp(out).sum(dim=1)) - (t * out).sum(dim=1),
        lambda rng, B, k: np.eye(k)[rng.randint(0, k, B)],
    ),
    "sigmoid_bce": Loss(
        sigmoid_bce_value,
        lambda out, t: -(t * torch.log(torch.sigmoid(out[:, 0])) + (1 - t) * torch.log(1 - torch.sigmoid(out[:, 0]))),
        lambda rng, B, k: rng.randint(0, 2, B).astype(np.float64),
    ),
    "tanh_gate": Loss(
        tanh_gate_value,
        lambda out, t: (torch.tanh(out[:, 0]) * torch.sigmoid(out[:, 1]) - t) ** 2,
        lambda rng, B, k: rng.randn(B),
    ),
}


@dataclass(frozen=True)
class Case:
    id: str
    nin: int
    nouts: tuple
    style: str
    loss: str
    reg: bool = False  # + 1e-4 * sum(p * p for p in model.parameters())


CASES = [
    Case("moons_like_svm_l2", 2, (4, 4, 1), "micrograd", "svm", reg=True),
    Case("lecture_svm_l2", 2, (4, 4, 1), "lecture", "svm", reg=True),
    Case("micrograd_squared", 3, (5, 1), "micrograd", "squared"),
    Case("lecture_net_squared", 3, (4, 4, 1), "lecture", "squared"),
    Case("single_layer_softmax_ce_l2", 2, (3,), "micrograd", "softmax_ce", reg=True),
    Case("lecture_softmax_ce", 2, (4, 3), "lecture", "softmax_ce"),
    Case("sigmoid_bce", 3, (4, 1), "micrograd", "sigmoid_bce"),
    Case("tanh_sigmoid_two_outputs", 3, (4, 2), "micrograd", "tanh_gate"),
    Case("width1_single_layer_squared", 3, (1,), "micrograd", "squared"),
    Case("width1_single_layer_lecture_svm", 3, (1,), "lecture", "svm", reg=True),
    Case("width1_output_after_width3", 3, (3, 1, 2), "micrograd", "tanh_gate"),
]

# A width-1 hidden layer does not compile re-rolled: see test_width1_hidden_layer_compiles.
WIDTH1_HIDDEN = [
    Case("width1_hidden_squared", 3, (1, 1), "micrograd", "squared"),
    Case("width1_hidden_lecture_squared", 3, (1, 4, 1), "lecture", "squared"),
]


def loss_function(case: Case, model: nn.MLP, X, y):
    """The exported loss of `case`: gradgen.mean of the per-example loss (+ L2)."""
    per_example = LOSSES[case.loss].value(model)

    def loss(X, y):
        data_loss = gradgen.mean(per_example, X, y)
        if case.reg:
            return data_loss + 1e-4 * sum(p * p for p in model.parameters())
        return data_loss

    return gradgen.export(example=dict(X=X[:1], y=y[:1]), params=model)(loss)


@dataclass
class Setup:
    case: Case
    model: nn.MLP
    params: dict
    X: np.ndarray
    y: np.ndarray
    loss: object
    mod: object


def build(case: Case):
    """(model, X, y, exported loss) of `case`, not compiled; X and y have max(BATCHES) rows."""
    model = make_mlp(case.nin, list(case.nouts), case.style)
    rng = np.random.RandomState(1)
    X = rng.randn(max(BATCHES), case.nin)
    y = LOSSES[case.loss].targets(rng, max(BATCHES), case.nouts[-1])
    return model, X, y, loss_function(case, model, X, y)


def setup(case: Case, rerolling: bool = True) -> Setup:
    model, X, y, loss = build(case)
    mod = compile_function(loss, check=True, rerolling=rerolling)
    return Setup(case, model, gradgen.params.read(model), X, y, loss, mod)


_SETUPS: dict = {}


def compiled(case: Case) -> Setup:
    """One compiled module per case, shared by the tests below."""
    if case.id not in _SETUPS:
        _SETUPS[case.id] = setup(case)
    return _SETUPS[case.id]


# -- the three ways ---------------------------------------------------------------------


def engine(s: Setup, X, y):
    s.model.zero_grad()
    out = s.loss(X, y)
    out.backward()
    return out.data, list(gradgen.params.read_grads(s.model).values())


def pytorch(s: Setup, X, y):
    leaves, out = torch_forward(s.model, s.params, X)
    per = LOSSES[s.case.loss].torch(out, torch.tensor(y, dtype=torch.float64))
    total = per.mean()
    if s.case.reg:
        total = total + 1e-4 * sum((p * p).sum() for p in leaves.values())
    grads = torch.autograd.grad(total, list(leaves.values()))
    return total.item(), [g.numpy() for g in grads]


def assert_close(got, want, what: str, rel: float = REL) -> None:
    (gv, gg), (wv, wg) = got, want
    assert np.isclose(gv, wv, rtol=rel, atol=0.0), f"{what}: value {gv!r} != {wv!r}"
    assert len(gg) == len(wg), f"{what}: {len(gg)} gradients, expected {len(wg)}"
    for k, (a, b) in enumerate(zip(gg, wg)):
        assert np.shape(a) == np.shape(b), f"{what}: gradient {k} has shape {np.shape(a)}, expected {np.shape(b)}"
        np.testing.assert_allclose(a, b, rtol=rel, atol=ABS, err_msg=f"{what}: gradient {k}")


# -- three-way comparisons -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_compiled_equals_engine_and_torch(case):
    """One compiled module, called with B = 1, 3, 17: value and gradients == engine == torch (1e-9)."""
    s = compiled(case)
    name = s.loss.__name__
    for B in BATCHES:
        X, y = s.X[:B], s.y[:B]
        got = getattr(s.mod, name + "_grad")(*s.params.values(), X, y)
        want = engine(s, X, y)
        assert_close(got, want, f"{case.id} B={B}: compiled vs engine")
        assert_close(got, pytorch(s, X, y), f"{case.id} B={B}: compiled vs torch")
        assert_close(want, pytorch(s, X, y), f"{case.id} B={B}: engine vs torch")
        forward_only = getattr(s.mod, name)(*s.params.values(), X, y)
        assert np.isclose(forward_only, got[0], rtol=1e-12, atol=0.0), f"{case.id} B={B}: f vs f_grad value"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradients_only_for_parameter_arrays(case):
    """f_grad returns one gradient per parameter array (W0, b0, ...), shaped like it; X and y get none."""
    s = compiled(case)
    _, grads = getattr(s.mod, s.loss.__name__ + "_grad")(*s.params.values(), s.X[:3], s.y[:3])
    assert [np.shape(g) for g in grads] == [a.shape for a in s.params.values()]
    names = [f"W{l}" for l in range(len(case.nouts))]
    assert list(s.params)[::2] == names  # the signature is W0, b0, W1, b1, ..., X, y
    assert f"def {s.loss.__name__}_grad({', '.join(s.params)}, X, y):" in s.mod.source


def test_compiled_call_leaves_its_inputs_alone():
    """Calling f_grad does not write into the parameter or data arrays it is given."""
    s = compiled(CASES[0])
    params = {k: a.copy() for k, a in s.params.items()}
    X, y = s.X.copy(), s.y.copy()
    for _ in range(2):
        s.mod.loss_grad(*params.values(), X, y)
        s.mod.loss(*params.values(), X, y)
    for k in params:
        assert np.array_equal(params[k], s.params[k]), k
    assert np.array_equal(X, s.X) and np.array_equal(y, s.y)


def each_model():
    """(model, X, scores): gradgen.each of an MLP's output, X with 17 rows."""
    model = make_mlp(2, [4, 4, 1], "micrograd")
    X = np.random.RandomState(2).randn(17, 2)

    def score(x):
        return model(x)

    @gradgen.export(example=dict(X=X[:1]), params=model)
    def scores(X):
        return gradgen.each(score, X)

    return model, X, scores


def test_each_gives_per_example_scores():
    """gradgen.each compiles to a forward function only, returning an array (B,) equal to the engine's Values."""
    model, X, scores = each_model()
    mod = compile_function(scores, check=True)
    assert not hasattr(mod.module, "scores_grad")
    params = gradgen.params.read(model)
    for B in BATCHES:
        got = mod.scores(*params.values(), X[:B])
        assert got.shape == (B,)
        np.testing.assert_allclose(got, [v.data for v in scores(X[:B])], rtol=1e-12, atol=1e-15)
        _, out = torch_forward(model, params, X[:B])
        np.testing.assert_allclose(got, out[:, 0].detach().numpy(), rtol=REL, atol=ABS)


# -- rerolling=False --------------------------------------------------------------------------

UNROLLED = [
    c
    for c in CASES
    if c.id
    in (
        "moons_like_svm_l2",
        "single_layer_softmax_ce_l2",
        "sigmoid_bce",
        "tanh_sigmoid_two_outputs",
        "width1_single_layer_squared",
    )
]


@pytest.mark.parametrize("case", UNROLLED, ids=[c.id for c in UNROLLED])
def test_unrolled_code_computes_the_same_numbers(case):
    """compile_function(rerolling=False): per-element code, same value and gradients as re-rolled and engine."""
    s = compiled(case)
    u = setup(case, rerolling=False)
    name = s.loss.__name__
    assert all(not f.fallbacks for f in u.mod.functions)
    for B in (1, 3):
        X, y = s.X[:B], s.y[:B]
        got = getattr(u.mod, name + "_grad")(*s.params.values(), X, y)
        assert_close(got, getattr(s.mod, name + "_grad")(*s.params.values(), X, y), f"{case.id} B={B}", rel=1e-12)
        assert_close(got, engine(s, X, y), f"{case.id} B={B}: unrolled vs engine", rel=1e-12)


# -- micrograd's plain list form -----------------------------------------------------------------


def plain_form(batch: int, width: int = 4, seed: int = 0):
    """micrograd's demo loss as written there: a loop over X, sum(losses) * (1.0 / len(losses))."""
    model = make_mlp(2, [width, width, 1], "micrograd", seed)
    rng = np.random.RandomState(3)
    X, y = rng.randn(batch, 2), rng.choice([-1.0, 1.0], batch)

    @gradgen.export(example=dict(X=X, y=y), params=model)
    def loss(X, y):
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        return data_loss + reg_loss

    return model, X, y, loss


_PLAIN: list = []


def plain_form_compiled():
    """(model, X, y, loss, compiled module) for plain_form(7), compiled once."""
    if not _PLAIN:
        model, X, y, loss = plain_form(7)
        _PLAIN.append((model, X, y, loss, compile_function(loss, check=True)))
    return _PLAIN[0]


def test_plain_list_form_matches_engine_and_torch():
    """The plain loop compiles (re-rolled, no fallbacks) and equals the engine and torch."""
    model, X, y, loss, mod = plain_form_compiled()
    assert mod.functions[0].fallbacks == []
    s = Setup(
        Case("plain", 2, (4, 4, 1), "micrograd", "svm", reg=True), model, gradgen.params.read(model), X, y, loss, mod
    )
    got = mod.loss_grad(*s.params.values(), X, y)
    assert_close(got, engine(s, X, y), "plain form: compiled vs engine")
    assert_close(got, pytorch(s, X, y), "plain form: compiled vs torch")
    assert np.isclose(mod.loss(*s.params.values(), X, y), got[0], rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("fn", ["loss", "loss_grad"])
@pytest.mark.parametrize("which", ["X", "y"])
def test_plain_list_form_refuses_another_batch_size(fn, which):
    """The plain form is specialised to the example's 7 rows: 3 rows raise ValueError naming the argument."""
    model, X, y, loss, mod = plain_form_compiled()
    params = gradgen.params.read(model)
    args = dict(X=X, y=y)
    args[which] = args[which][:3]
    with pytest.raises(ValueError, match=rf"\b{which}\b.*\(3"):
        getattr(mod, fn)(*params.values(), args["X"], args["y"])


def test_plain_list_form_unrolled_matches():
    """The plain form with rerolling=False (one line per scalar) gives the re-rolled numbers."""
    model, X, y, loss = plain_form(2)
    params = gradgen.params.read(model)
    a = compile_function(loss).loss_grad(*params.values(), X, y)
    b = compile_function(loss, rerolling=False).loss_grad(*params.values(), X, y)
    assert_close(a, b, "plain form: re-rolled vs unrolled", rel=1e-12)


# -- what re-rolled code looks like ------------------------------------------------------------------


def mean_form(width: int, batch: int):
    model = make_mlp(2, [width, width, 1], "micrograd")
    X, y = np.zeros((batch, 2)), np.ones(batch)

    def svm(x, yi):
        return (1 + -yi * model(x)).relu()

    @gradgen.export(example=dict(X=X, y=y), params=model)
    def loss(X, y):
        return gradgen.mean(svm, X, y) + 1e-4 * sum(p * p for p in model.parameters())

    return model, X, y, loss


def n_lines(text: str) -> int:
    """Lines of code: comment lines do not count (a rule comment moves above its line when a
    longer literal, 0.08333333333333333 for 0.5, leaves no room beside it)."""
    return sum(1 for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_rerolled_source_is_matrix_code_of_fixed_length():
    """gradgen.mean form: matrix code ("X @ W0.T"), the same length for width 4 or 32 and any example batch."""
    base = compile_function(mean_form(4, 1)[3], check=True)
    assert "@" in base.source and "X @ W0.T" in base.source
    assert base.functions[0].fallbacks == []
    assert n_lines(base.source) < 200
    for width, batch in ((32, 1), (4, 5)):
        mod = compile_function(mean_form(width, batch)[3])
        assert n_lines(mod.source) == n_lines(base.source), (width, batch)
        assert mod.functions[0].fallbacks == []


def test_rerolled_plain_form_does_not_grow():
    """Plain list form: the source does not grow with the width (4 -> 32) or the example's batch (2 -> 12)."""
    base = compile_function(plain_form(2)[3])
    assert "@" in base.source and n_lines(base.source) < 200
    for width, batch in ((32, 2), (4, 12)):
        mod = compile_function(plain_form(batch, width)[3])
        assert n_lines(mod.source) <= n_lines(base.source), (width, batch)
        assert mod.functions[0].fallbacks == []


def test_moons_model_has_no_fallbacks():
    """examples/moons.py (micrograd's demo) re-rolls completely: no per-element fallback in loss or scores."""
    mod = gradgen.compile_file(str(ROOT / "examples" / "moons.py"), check=True)
    assert {f.name for f in mod.functions} == {"loss", "scores"}
    for f in mod.functions:
        assert f.fallbacks == [], [str(x) for x in f.fallbacks]
    assert "X @ W0.T + b0" in mod.source


# -- regressions: bugs these tests found, now fixed -------------------------------------------
# one input per example (nin == 1) used to crash re-rolling; an example-independent term inside
# gradgen.mean got 1/B of its gradient; two means over different batch sizes only failed at call
# time; gradgen.compile_function lacked rerolling=; an empty batch raised ZeroDivisionError.


@pytest.mark.parametrize("case", WIDTH1_HIDDEN, ids=[c.id for c in WIDTH1_HIDDEN])
def test_width1_hidden_layer_compiles(case):
    """MLP(3, [1, 1]) and MLP(3, [1, 4, 1]) compile re-rolled and match the engine."""
    s = setup(case)
    for B in BATCHES:
        X, y = s.X[:B], s.y[:B]
        assert_close(s.mod.loss_grad(*s.params.values(), X, y), engine(s, X, y), f"{case.id} B={B}")


@pytest.mark.parametrize("case", WIDTH1_HIDDEN, ids=[c.id for c in WIDTH1_HIDDEN])
def test_width1_hidden_layer_unrolled(case):
    """The same width-1 networks with rerolling=False equal the engine and torch."""
    s = setup(case, rerolling=False)
    for B in BATCHES:
        X, y = s.X[:B], s.y[:B]
        got = s.mod.loss_grad(*s.params.values(), X, y)
        assert_close(got, engine(s, X, y), f"{case.id} B={B}: unrolled vs engine")
        assert_close(got, pytorch(s, X, y), f"{case.id} B={B}: unrolled vs torch")


def one_feature_loss(model, x, y):
    """Squared error of MLP(1, ...) on 1-D data: each example is one number."""

    def squared(xi, yi):
        return (model([xi]) - yi) ** 2

    @gradgen.export(example=dict(x=x[:1], y=y[:1]), params=model)
    def loss(x, y):
        return gradgen.mean(squared, x, y)

    return loss


def one_feature_model():
    """(model, x, y, loss): MLP(1, [4, 1]) on 5 one-number examples."""
    model = make_mlp(1, [4, 1], "micrograd")
    rng = np.random.RandomState(6)
    x, y = rng.randn(5), rng.randn(5)
    return model, x, y, one_feature_loss(model, x, y)


def test_one_feature_as_a_1d_array_compiles():
    """MLP(1, [4, 1]) on x of shape (B,) compiles re-rolled and equals the engine (as (B, 1) data does)."""
    model, x, y, loss = one_feature_model()
    mod = compile_function(loss, check=True)
    s = Setup(Case("1d", 1, (4, 1), "micrograd", "squared"), model, gradgen.params.read(model), x, y, loss, mod)
    assert_close(mod.loss_grad(*s.params.values(), x, y), engine(s, x, y), "1-D x")


def test_one_feature_as_a_1d_array_unrolled():
    """The same 1-D data with rerolling=False equals the engine."""
    model, x, y, loss = one_feature_model()
    mod = compile_function(loss, check=True, rerolling=False)
    s = Setup(Case("1d", 1, (4, 1), "micrograd", "squared"), model, gradgen.params.read(model), x, y, loss, mod)
    assert_close(mod.loss_grad(*s.params.values(), x, y), engine(s, x, y), "1-D x, unrolled")


def test_two_means_over_different_batch_sizes():
    """mean over (Xa, ya) + mean over (Xb, yb), 5 and 3 rows: one batch axis per function, so a
    clear compile error naming both arrays (the engine computes it; compile one function per batch)."""
    model = make_mlp(2, [3, 1], "micrograd")
    rng = np.random.RandomState(7)
    Xa, ya, Xb, yb = rng.randn(5, 2), rng.randn(5), rng.randn(3, 2), rng.randn(3)

    def squared(x, t):
        return (model(x) - t) ** 2

    @gradgen.export(example=dict(Xa=Xa, ya=ya, Xb=Xb, yb=yb), params=model)
    def two_means(Xa, ya, Xb, yb):
        return gradgen.mean(squared, Xa, ya) + gradgen.mean(squared, Xb, yb)

    with pytest.raises(gradgen.GradgenError, match=r"over Xb \(3 rows in the example\) and Xa \(5 rows\)"):
        compile_function(two_means, check=True)


def l2_inside_model():
    """(model, X, y, loss): the L2 term written inside the per-example loss."""
    model = make_mlp(3, [4, 1], "micrograd")
    rng = np.random.RandomState(4)
    X, y = rng.randn(6, 3), rng.randn(6)

    def per_example(x, yi):
        return (model(x) - yi) ** 2 + 1e-2 * sum(p * p for p in model.parameters())

    @gradgen.export(example=dict(X=X[:1], y=y[:1]), params=model)
    def loss(X, y):
        return gradgen.mean(per_example, X, y)

    return model, X, y, loss


@pytest.mark.parametrize("rerolling", [True, False], ids=["rerolled", "unrolled"])
def test_example_independent_term_inside_mean(rerolling):
    """L2 written inside the per-example loss: mean(loss_i + reg) == mean(loss_i) + reg, gradients included."""
    model, X, y, loss = l2_inside_model()
    mod = compile_function(loss, check=True, rerolling=rerolling)
    s = Setup(Case("l2_inside", 3, (4, 1), "micrograd", "squared"), model, gradgen.params.read(model), X, y, loss, mod)
    assert_close(mod.loss_grad(*s.params.values(), X, y), engine(s, X, y), "L2 inside the mean")


def scalar_argument_model():
    """(X, shifted): a scalar argument c next to a batch X."""
    X = np.random.RandomState(5).randn(5, 2)

    @gradgen.export(example=dict(X=X[:1], c=1.5))
    def shifted(X, c):
        return gradgen.mean(lambda x: x[0] + c * c, X)

    return X, shifted


def test_scalar_argument_inside_mean():
    """d/dc of mean over examples of (x[0] + c * c) is 2c for any batch size."""
    X, shifted = scalar_argument_model()
    mod = compile_function(shifted, check=True)
    value, (g_c,) = mod.shifted_grad(X, 1.5)
    assert np.isclose(value, X[:, 0].mean() + 2.25, rtol=1e-12)
    assert np.isclose(g_c, 3.0, rtol=1e-12), g_c


def test_package_compile_function_takes_rerolling():
    """gradgen.compile_function(fn, rerolling=False) is the documented way to get per-element code."""
    model, X, y, loss = plain_form(3)
    mod = gradgen.compile_function(loss, check=True, rerolling=False)
    assert "@" not in mod.source.split("def loss_grad")[1]


def test_empty_batch_is_a_value_error():
    """B = 0: the compiled loss raises ValueError, as gradgen.mean does on Values."""
    s = compiled(CASES[0])
    with pytest.raises(ValueError, match="empty"):
        s.loss(s.X[:0], s.y[:0])  # the engine
    with pytest.raises(ValueError):
        s.mod.loss_grad(*s.params.values(), s.X[:0], s.y[:0])


# -- every model above, for tests that walk them all (tests/test_dtypes.py) --------------------


@dataclass
class Model:
    """A model these tests compile: `fn` is called as fn(*params.values(), *data) for each `data`."""

    id: str
    fn: object  # the exported function
    params: dict  # its parameter arrays (gradgen.params.read), the first arguments
    data: list  # tuples of the other arguments
    mod: object = None  # the compiled module, where a test above already compiled it


def models() -> list[Model]:
    """Every model this file compiles (the mean-form MLPs use the modules the tests above share)."""
    out = []
    for case in CASES:
        s = compiled(case)
        out.append(Model(case.id, s.loss, s.params, [(s.X[:B], s.y[:B]) for B in BATCHES], s.mod))
    for case in WIDTH1_HIDDEN:
        model, X, y, loss = build(case)
        out.append(Model(case.id, loss, gradgen.params.read(model), [(X[:B], y[:B]) for B in BATCHES]))
    model, X, y, loss, mod = plain_form_compiled()
    out.append(Model("plain_form_7", loss, gradgen.params.read(model), [(X, y)], mod))
    model, X, y, loss = plain_form(2)
    out.append(Model("plain_form_2", loss, gradgen.params.read(model), [(X, y)]))
    model, X, scores = each_model()
    out.append(Model("each_scores", scores, gradgen.params.read(model), [(X[:B],) for B in BATCHES]))
    model, x, y, loss = one_feature_model()
    out.append(Model("one_feature_1d", loss, gradgen.params.read(model), [(x, y), (x[:1], y[:1])]))
    model, X, y, loss = l2_inside_model()
    out.append(Model("l2_inside_mean", loss, gradgen.params.read(model), [(X, y), (X[:1], y[:1])]))
    X, shifted = scalar_argument_model()
    out.append(Model("scalar_argument", shifted, {}, [(X, 1.5), (X[:1], -0.5)]))
    model, X, y, loss = mean_form(4, 1)
    rng = np.random.RandomState(8)
    out.append(Model("mean_form_4", loss, gradgen.params.read(model), [(rng.randn(3, 2), np.ones(3))]))
    return out
