"""The op registry (`gradgen.ir.ops`): complete, consistent with the engine, and its new ops end to end.

* every op has what its kind needs (semantics, shape rule, a derivative rule
  unless it is not differentiable, comment templates whose placeholders are
  the contract's, a spelling for python, numpy and torch), and `Op` is built
  from it;
* every spelling computes its op's semantics: the python one on floats bit
  for bit, the numpy one on arrays bit for bit, the torch one on float64
  tensors to rounding;
* every op with a `method` is the engine's `Value` method: the same float,
  and the registry's rule (through reverse mode and the interpreter) gives
  the engine's gradient bit for bit; and every op method of `Value` is in
  the registry;
* `abs`, `sin`, `cos` compiled end to end with `gradgen.compile_function`:
  a scalar function and an MLP loss, against the engine and torch float64;
  `abs` at 0 has gradient 0, like torch.
"""

from __future__ import annotations

import math
import string
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import gradgen
from gradgen import Value
from gradgen.autodiff import comments
from gradgen.autodiff.reverse import grad
from gradgen.backends import numpy as numpy_backend
from gradgen.backends import python as python_backend
from gradgen.backends.module import helper_source
from gradgen.frontend.trace import Tracer, _Param
from gradgen.ir import shapes
from gradgen.ir.graph import Builder
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import BACKENDS, METHODS, OPS, RULES, Op
from gradgen.ir.verify import verify
from gradgen.backends import module_level_names
from gradgen.passes import optimize
from support import arg, run_emitted, same_float
from test_mlp import BATCHES, forward, make_mlp, torch_forward

PLACEHOLDERS = {"a", "b", "x", "out", "k", "k1"}
STRUCTURAL = {Op.INPUT, Op.CONST, Op.ELEM, Op.PACK, Op.SUM, Op.EXPAND, Op.BCAST, Op.BATCH}


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


# -- completeness -----------------------------------------------------------------------------


def test_op_enum_is_built_from_the_registry():
    """`Op` has one member per registry entry, named after it: Op.TANH, Op("tanh"), str(op)."""
    assert list(OPS) == list(Op)
    for op, info in OPS.items():
        assert Op(info.name) is op and Op[info.name.upper()] is op and str(op) == info.name == op.value
    assert Op.TANH == "tanh" and f"{Op.SIN}" == "sin"


@pytest.mark.parametrize("op", list(Op), ids=str)
def test_registry_entry_is_complete(op):
    """An op has semantics, a shape rule, a rule (unless not differentiable), valid comments and spellings."""
    info = OPS[op]
    assert callable(info.shape)
    if info.elementwise:
        assert info.shape is shapes.elementwise
        assert info.evaluate is not None and info.array is not None, "float and array semantics"
        assert set(info.spell) == set(BACKENDS), f"spelled for {sorted(info.spell)}"
    elif op in (Op.MATMUL, Op.TRANSPOSE):
        assert info.array is not None and set(info.spell) == {"numpy", "torch"}
    else:
        assert op in STRUCTURAL and not info.spell, "a structural op is a backend's special case"
    if info.differentiable and op is not Op.ELEM:  # (reverse mode gathers elem's reads itself)
        assert info.rule is not None and RULES[op].fn is info.rule
        assert 1 <= len(info.comments) <= max(info.arity, 1)
    else:
        assert info.rule is None and op not in RULES
    letters = {"a", "x"} if info.arity == 1 else {"a", "b"} if info.arity == 2 else {"a", "b", "x"}
    for template in info.comments:
        assert template.startswith(f"{op}: "), template
        used = _fields(template)
        assert used <= PLACEHOLDERS and not (used & {"a", "b", "x"}) - letters, (template, used)
        if info.attr is None:
            assert not used & {"k", "k1"}, template
        shown = comments.fill(template, SimpleNamespace(terms=()))  # without terms: the letters
        assert "{" not in shown and "}" not in shown, shown
    for backend, f in info.spell.items():
        assert len(f.operand_prec) == info.arity, (backend, f)
        assert _fields(f.template) <= {str(i) for i in range(info.arity)} | ({"k"} if info.attr else set())
        if f.helper:
            assert f.helper in module_level_names() and f.helper in f.template, (backend, f)
    if info.method:
        assert info.arity == 1 and info.elementwise and METHODS[info.method] is op


def test_backends_read_their_spellings_from_the_registry():
    """The python and numpy tables are views of `OPS[op].spell`; FRESH is `OpInfo.fresh`."""
    for backend, module in (("python", python_backend), ("numpy", numpy_backend)):
        for op in Op:
            assert module.spelling(op) is OPS[op].spell.get(backend)
            assert module.FORMATS.get(op) is OPS[op].spell.get(backend)
    assert numpy_backend.FRESH == {op for op in Op if OPS[op].fresh}
    assert numpy_backend.HELPERS == {Op.SIGMOID: "_np_sigmoid"}


# -- every spelling computes its op's semantics ------------------------------------------------

SIGNS = [-1.5, -0.0, 0.0, 0.4, 2.0]
POSITIVE = [0.3, 1.0, 2.5]


def _points(op):
    if op is Op.LOG:
        return [(x,) for x in POSITIVE], [None]
    if op is Op.POW:
        return [(x,) for x in POSITIVE], [2, 3, -1, 0.5]
    if OPS[op].arity == 2:
        return [(a, b) for a in SIGNS for b in (-0.75, 0.5, 2.0)], [None]
    return [(x,) for x in SIGNS], [None]


def _namespace():
    ns = {"math": math, "np": np, "torch": torch}
    for helper in ("_sigmoid", "_np_sigmoid"):
        exec(helper_source(helper), ns)
    return ns


ELEMENTWISE = [op for op in Op if OPS[op].elementwise]


@pytest.mark.parametrize("op", ELEMENTWISE, ids=str)
def test_each_spelling_computes_the_ops_semantics(op):
    """python: == evaluate on floats; numpy: == array on arrays; torch: array's values on float64 tensors."""
    info = OPS[op]
    points, attrs = _points(op)
    ns = _namespace()
    names = ["a", "b"][: info.arity]
    for k in attrs:
        text = {b: f.template.format(*names, k=repr(k)) for b, f in info.spell.items()}
        for p in points:
            got = eval(text["python"], ns, dict(zip(names, p)))
            assert type(got) is float and same_float(got, info.evaluate(*p, k)), (text["python"], p)
        columns = [np.array(c) for c in zip(*points)]
        want = info.array(*columns, k)
        got = eval(text["numpy"], ns, dict(zip(names, columns)))
        assert got.dtype == np.float64 and np.array_equal(got, want, equal_nan=True), text["numpy"]
        tensors = [torch.tensor(c, dtype=torch.float64) for c in columns]
        got = eval(text["torch"], ns, dict(zip(names, tensors)))
        assert got.dtype == torch.float64, text["torch"]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-14, atol=0.0, err_msg=text["torch"])


# -- the engine against the registry -----------------------------------------------------------

ENGINE_METHODS = sorted(
    name for name in dir(Value) if not name.startswith("_") and callable(getattr(Value, name)) and name != "backward"
)


def test_every_engine_op_method_is_a_registry_op():
    """The engine's op methods are exactly the registry's `method`s (and Tracer/_Param have them all)."""
    assert ENGINE_METHODS == sorted(METHODS)
    for name in METHODS:
        assert callable(getattr(Tracer, name)) and getattr(_Param, name) is not getattr(Value, name)
    assert getattr(Tracer, "__abs__") and _Param.__abs__ is not Value.__abs__


@pytest.mark.parametrize("name", sorted(METHODS))
def test_engine_method_equals_the_registry(name):
    """Value.<method> computes OPS[op].evaluate's float, and its gradient is the registry rule's, bit for bit."""
    op = METHODS[name]
    points = POSITIVE if op is Op.LOG else SIGNS + [-30.0, 3.0]
    b = Builder("f")
    x, s = arg(b, "x"), arg(b, "s")
    fwd = verify(b.build([x, s], [("value", b.add(Op.MUL, (b.add(op, (x,)), s)))]))
    g = optimize(grad(fwd), check=True)
    for p in points:
        v = Value(p)
        out = getattr(v, name)()
        assert same_float(out.data, OPS[op].evaluate(p, None)), (name, p)
        (out * -1.7).backward()
        got = evaluate(g, [p, -1.7])
        assert same_float(got["value"], out.data * -1.7)
        # (the engine's grad starts at 0.0, so its zeros are +0.0: == as everywhere)
        assert same_float(got["grad:x"], v.grad), (name, p, got["grad:x"], v.grad)


# -- abs at 0 -------------------------------------------------------------------------------------


def test_abs_at_zero_has_gradient_zero_like_torch():
    """d|x|/dx at 0 (and -0.0) is 0 in the engine, the interpreter, emitted code, compiled code and torch."""

    def f(x):
        return abs(x) * 3.0

    mod = gradgen.compile_function(f, check=True)
    b = Builder("f")
    x = arg(b, "x")
    g = optimize(grad(verify(b.build([x], [("value", b.add(Op.ABS, (x,)))]))), check=True)
    emitted, text = run_emitted(g, "grad")
    for zero in (0.0, -0.0):
        t = torch.tensor(zero, dtype=torch.float64, requires_grad=True)
        (want,) = torch.autograd.grad(torch.abs(t) * 3.0, [t])
        v = Value(zero)
        f(v).backward()
        assert want.item() == 0.0 and v.grad == 0.0
        assert mod.f_grad(zero) == (0.0, (0.0,))
        assert evaluate(g, [zero])["grad:x"] == 0.0 and emitted(zero)[1] == (0.0,)
    assert "abs: d|x|/dx = sign(x), 0 at 0" in text


# -- end to end: compile_function --------------------------------------------------------------


def scalar_model(x, y):
    t = (x * y).sin() * abs(x - y)
    return t + (x.cos() * y).abs() - (y * 0.5).cos()


def scalar_torch(x, y):
    return torch.sin(x * y) * torch.abs(x - y) + torch.abs(torch.cos(x) * y) - torch.cos(y * 0.5)


def test_compiled_abs_sin_cos_equal_engine_and_torch():
    """A scalar function of abs/sin/cos: compiled (checked) == engine bit for bit, == torch float64."""
    mod = gradgen.compile_function(scalar_model, check=True)
    src = mod.source
    assert "math.sin(" in src and "math.cos(" in src and "abs(" in src
    assert "# sin: d(sin x_y)/dx_y = cos x_y" in src and "# cos: d(cos mul_1)/dmul_1 = -sin mul_1" in src
    for p in [(0.3, -1.2), (2.0, 0.5), (-1.5, -0.75), (1.1, 4.0)]:
        vs = [Value(c) for c in p]
        out = scalar_model(*vs)
        out.backward()
        value, grads = mod.scalar_model_grad(*p)
        assert same_float(value, out.data) and same_float(mod.scalar_model(*p), out.data)
        assert all(same_float(a, v.grad) for a, v in zip(grads, vs)), (p, grads)
        ts = [torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in p]
        tout = scalar_torch(*ts)
        tg = torch.autograd.grad(tout, ts)
        assert math.isclose(value, tout.item(), rel_tol=1e-13, abs_tol=1e-15)
        assert all(math.isclose(a, b.item(), rel_tol=1e-12, abs_tol=1e-14) for a, b in zip(grads, tg))


def test_compiled_mlp_with_sin_loss_equals_engine_and_torch():
    """An MLP whose loss uses .sin(), .cos() and abs() on a batch: compiled == engine == torch (1e-9)."""
    model = make_mlp(3, [4, 1], "micrograd")
    rng = np.random.RandomState(3)
    X, y = rng.randn(max(BATCHES), 3), rng.randn(max(BATCHES))

    def wave(x, yi):
        score = forward(model, x)
        return abs(score.sin() - yi) + (score * yi).cos()

    @gradgen.export(example=dict(X=X[:1], y=y[:1]), params=model)
    def loss(X, y):
        return gradgen.mean(wave, X, y)

    mod = gradgen.compile_function(loss, check=True)
    assert "np.sin(" in mod.source and "np.cos(" in mod.source and "np.sign(" in mod.source
    params = gradgen.params.read(model)
    for B in BATCHES:
        value, grads = mod.loss_grad(*params.values(), X[:B], y[:B])
        model.zero_grad()
        out = loss(X[:B], y[:B])
        out.backward()
        assert np.isclose(value, out.data, rtol=1e-9, atol=0.0)
        for a, w in zip(grads, gradgen.params.read_grads(model).values()):
            np.testing.assert_allclose(a, w, rtol=1e-9, atol=1e-12)
        leaves, score = torch_forward(model, params, X[:B])
        t = torch.tensor(y[:B], dtype=torch.float64)
        total = (torch.abs(torch.sin(score[:, 0]) - t) + torch.cos(score[:, 0] * t)).mean()
        tg = torch.autograd.grad(total, list(leaves.values()))
        assert np.isclose(value, total.item(), rtol=1e-9, atol=0.0)
        for a, w in zip(grads, tg):
            np.testing.assert_allclose(a, w.numpy(), rtol=1e-9, atol=1e-12)
