"""The interpreted engine (`gradgen.engine.Value`) against PyTorch float64.

The first three tests are micrograd's own `test/test_engine.py`
(karpathy/micrograd, MIT licence), unchanged except for the import line:
gradgen's engine must stay a drop-in replacement for micrograd's.  The rest
check what gradgen's engine adds or fixes: ops micrograd's test does not
cover, deep graphs, tanh at large inputs, ordered `_prev`.
"""

import math
import sys

import pytest
import torch

from gradgen.engine import Value, topological_order

# --- micrograd's test/test_engine.py -----------------------------------------


def test_sanity_check():

    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xmg, ymg = x, y

    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xpt, ypt = x, y

    # forward pass went well
    assert ymg.data == ypt.data.item()
    # backward pass went well
    assert xmg.grad == xpt.grad.item()


def test_more_ops():

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    amg, bmg, gmg = a, b, g

    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    apt, bpt, gpt = a, b, g

    tol = 1e-6
    # forward pass went well
    assert abs(gmg.data - gpt.data.item()) < tol
    # backward pass went well
    assert abs(amg.grad - apt.grad.item()) < tol
    assert abs(bmg.grad - bpt.grad.item()) < tol


def test_unary_tensor_fns():
    def test_unary_tensor_fn(value_fn, tensor_fn, xs, tol=1e-6):
        for x in xs:
            xv = Value(x)
            yv = value_fn(xv)
            yv.backward()

            xt = torch.Tensor([x]).double()
            xt.requires_grad = True
            yt = tensor_fn(xt)
            yt.backward()

            # forward pass went well
            assert abs(yv.data - yt.data.item()) < tol
            # backward pass went well
            assert abs(xv.grad - xt.grad.item()) < tol

    test_unary_tensor_fn(Value.tanh, torch.Tensor.tanh, [-1.0, 0.123, 2.0])
    test_unary_tensor_fn(Value.exp, torch.Tensor.exp, [-1.0, 0.123, 2.0])


# --- what gradgen's engine adds ------------------------------------------------


def _engine(fn, *xs):
    """(value, [grads]) of `fn` on Values."""
    vs = [Value(x) for x in xs]
    out = fn(*vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def _torch(fn, *xs):
    """(value, [grads]) of `fn` on float64 tensors, by torch.autograd.grad."""
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out = fn(*ts)
    grads = torch.autograd.grad(out, ts, allow_unused=True)
    return out.item(), [0.0 if g is None else g.item() for g in grads]


def _close(a, b, rel=1e-12):
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel)


def test_deep_chain_backward_has_no_recursion_limit():
    """A 200,000-node chain backpropagates with an explicit stack (micrograd recurses)."""
    assert sys.getrecursionlimit() < 200_000
    x = Value(1.0)
    y = Value(0.0)
    for _ in range(200_000):
        y = y + x
    y.backward()
    assert y.data == 200_000.0
    assert x.grad == 200_000.0


def test_tanh_saturates_without_overflow():
    """`Value(1000.0).tanh()` is exactly 1.0 (micrograd's exp formula overflows there)."""
    for x, want in [(1000.0, 1.0), (-1000.0, -1.0), (1e308, 1.0)]:
        v = Value(x)
        y = v.tanh()
        assert y.data == want
        y.backward()
        assert v.grad == 0.0


def test_prev_is_an_ordered_tuple_in_argument_order():
    """`_prev` lists the operands in the order they were written, whatever their hashes."""
    a, b = Value(1.0), Value(2.0)
    for out, want in [
        (a + b, (a, b)),
        (b + a, (b, a)),
        (a * b, (a, b)),
        (b * a, (b, a)),
    ]:
        assert type(out._prev) is tuple
        assert len(out._prev) == len(want)
        assert all(p is w for p, w in zip(out._prev, want))
    assert (a**2)._prev[0] is a and len((a**2)._prev) == 1
    assert a.tanh()._prev[0] is a
    # `a - b` is micrograd's `a + (-b)`, and `-b` is `b * -1`
    d = a - b
    assert d._op == "+" and d._prev[0] is a
    neg = d._prev[1]
    assert neg._op == "*" and neg._prev[0] is b and neg._prev[1].data == -1
    # `a / b` is `a * b**-1`
    q = a / b
    assert q._op == "*" and q._prev[0] is a
    assert q._prev[1]._op == "**-1" and q._prev[1]._prev[0] is b


def test_topological_order_is_deterministic_and_complete():
    """Post-order from the root, children in argument order, every node once."""
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = topological_order(e)
    assert order[-1] is e
    assert len(order) == len({id(v) for v in order}) == 5
    assert [v for v in order] == [a, b, c, d, e]


def test_grad_starts_as_float_zero():
    """`grad` is the float 0.0 (micrograd's int 0 would print and divide differently)."""
    v = Value(3.0)
    assert type(v.grad) is float and v.grad == 0.0


@pytest.mark.parametrize(
    "name, vfn, tfn, points",
    [
        ("log", lambda x: x.log(), lambda x: x.log(), [0.1, 1.0, 2.5, 40.0]),
        (
            "sigmoid",
            lambda x: x.sigmoid(),
            lambda x: x.sigmoid(),
            [-30.0, -1.5, 0.0, 0.7, 30.0],
        ),
        ("relu", lambda x: x.relu(), lambda x: x.relu(), [-2.0, -0.1, 0.3, 4.0]),
        ("neg", lambda x: -x, lambda x: -x, [-2.0, 0.5]),
        ("sin", lambda x: x.sin(), lambda x: x.sin(), [-2.0, -0.3, 0.0, 1.2, 10.0]),
        ("cos", lambda x: x.cos(), lambda x: x.cos(), [-2.0, -0.3, 0.0, 1.2, 10.0]),
        ("abs", lambda x: x.abs(), lambda x: x.abs(), [-2.0, -0.3, 0.0, -0.0, 1.2]),
        ("abs()", lambda x: abs(x), lambda x: abs(x), [-2.0, 0.0, 1.2]),
        ("pow-1.5", lambda x: x**-1.5, lambda x: x**-1.5, [0.3, 2.0]),
        ("pow3", lambda x: x**3, lambda x: x**3, [-1.7, 0.4]),
        ("rmul", lambda x: 2 * x, lambda x: 2 * x, [-1.25, 3.0]),
        ("rsub", lambda x: 1 - x, lambda x: 1 - x, [-1.25, 3.0]),
        ("rdiv", lambda x: 10.0 / x, lambda x: 10.0 / x, [-0.3, 0.7, 5.0]),
        ("div-const", lambda x: x / 4.0, lambda x: x / 4.0, [-0.3, 7.0]),
        ("radd", lambda x: 2.5 + x, lambda x: 2.5 + x, [-0.3, 7.0]),
        ("sub-const", lambda x: x - 2.5, lambda x: x - 2.5, [-0.3, 7.0]),
        (
            "compose",
            lambda x: (x * x + 1).log().sigmoid() / (1 - x.relu()),
            None,
            [-0.8, 0.3],
        ),
    ],
)
def test_unary_ops_match_torch(name, vfn, tfn, points):
    """Each op (and each reflected operator) matches torch.autograd in float64."""
    tfn = tfn or vfn
    for x in points:
        v, (g,) = _engine(vfn, x)
        tv, (tg,) = _torch(tfn, x)
        assert _close(v, tv), (name, x, v, tv)
        assert _close(g, tg), (name, x, g, tg)


@pytest.mark.parametrize(
    "name, fn, points",
    [
        ("div", lambda a, b: a / b, [(3.0, -0.5), (-1.2, 2.0)]),
        ("sub", lambda a, b: a - b, [(3.0, -0.5), (-1.2, 2.0)]),
        (
            "mul-shared",
            lambda a, b: (a * b) * (a + b) - a / (b * b),
            [(0.7, -1.3), (2.0, 0.25)],
        ),
        (
            "relu-kink-side",
            lambda a, b: (a - b).relu() * a,
            [(1.0, 0.999), (0.999, 1.0)],
        ),
    ],
)
def test_binary_ops_match_torch(name, fn, points):
    """Binary operators and small compositions match torch.autograd in float64."""
    for a, b in points:
        v, g = _engine(fn, a, b)
        tv, tg = _torch(fn, a, b)
        assert _close(v, tv), (name, a, b, v, tv)
        assert all(_close(x, y) for x, y in zip(g, tg)), (name, a, b, g, tg)


def test_relu_at_zero_has_zero_gradient_like_torch():
    """relu's derivative at exactly 0 is 0 (micrograd's `out.data > 0`), as in torch."""
    v, (g,) = _engine(lambda x: x.relu(), 0.0)
    tv, (tg,) = _torch(lambda x: x.relu(), 0.0)
    assert v == tv == 0.0 and g == tg == 0.0


def test_abs_at_zero_has_zero_gradient_like_torch():
    """abs's derivative at 0 (and -0.0) is taken to be 0, sign(0), as torch.abs's gradient."""
    for zero in (0.0, -0.0):
        v, (g,) = _engine(lambda x: abs(x) * 2.0, zero)
        tv, (tg,) = _torch(lambda x: abs(x) * 2.0, zero)
        assert v == tv == 0.0 and g == tg == 0.0
    assert _engine(lambda x: x.abs(), -3.0) == (3.0, [-1.0])


def test_sigmoid_extremes_do_not_overflow():
    """sigmoid at +-1000 is 1.0 / 0.0 with zero gradient, no OverflowError."""
    for x, want in [(1000.0, 1.0), (-1000.0, 0.0)]:
        v, (g,) = _engine(lambda t: t.sigmoid(), x)
        assert v == want and g == 0.0


def test_gradients_accumulate_across_backward_calls():
    """Like micrograd, a second backward() adds to grad instead of resetting it."""
    x = Value(3.0)
    y = x * x
    y.backward()
    assert x.grad == 6.0
    y.backward()
    assert x.grad == 12.0


def test_value_pow_value_is_refused():
    """`Value ** Value` raises TypeError (only constant exponents are supported)."""
    with pytest.raises(TypeError):
        Value(2.0) ** Value(3.0)


def test_unknown_operand_types_fall_through():
    """Operators return NotImplemented for foreign types, so Python raises TypeError."""
    with pytest.raises(TypeError):
        Value(1.0) + "a"
    with pytest.raises(TypeError):
        Value(1.0) - "a"
    with pytest.raises(TypeError):
        Value(1.0) / "a"
