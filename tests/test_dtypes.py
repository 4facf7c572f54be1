"""Compiled functions return floats of the IR's shapes, and refuse arguments they cannot compute with.

The contract (README, "Arrays and batches"):

* `f_grad(...)` returns `(value, gradients)`: the value is a float (a Python
  float or `np.float64`, its subclass), a gradient has exactly its argument's
  shape -- a float64 `np.ndarray` for an array argument, a float (never a
  0-d array, never a bool) for a scalar one (a Neuron's bias, a scalar
  argument).  A `gradgen.each` function returns a float64 array (B,).
* The IR interpreter (`gradgen.ir.interp`) gives the same types and, to
  rounding, the same numbers as the emitted code.
* An array argument must be a NumPy array of its compiled shape with a real
  dtype: float64 is used as it is, float32/float16/int arrays are converted to
  float64 (so values and gradients are float64 and match the engine's numbers
  on those inputs); a list, a torch tensor, a bool, complex or object array
  is a ValueError naming the argument.  A scalar argument is any real number.

Walked here: every exported function of examples/*.py, every model of
tests/test_mlp.py (`test_mlp.models()`), and small models at the edges where
the NumPy code used to assume an array or a float dtype (one example, one
neuron, one input, width 1, L2 over one layer, a relu or sigmoid output),
each against the interpreted engine, re-rolled and not.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import gradgen
import test_mlp
from gradgen import Value, mathfn, nn
from gradgen.api import compile_function
from gradgen.export import example_of
from gradgen.ir.interp import evaluate, node_values
from gradgen.ir.ops import Op
from gradgen.frontend.loader import load_model
from gradgen.tools.check.layout import modules_of  # (foreign engines' modules too)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
REL, ABS = 1e-9, 1e-12


def assert_float(x, shape, what: str) -> None:
    """`x` is a float (shape ()) or a float64 ndarray of exactly `shape`."""
    if shape == ():
        assert type(x) in (float, np.float64), f"{what}: {type(x).__name__} {x!r}, expected a float"
    else:
        assert type(x) is np.ndarray, f"{what}: {type(x).__name__}, expected an ndarray of shape {shape}"
        assert x.dtype == np.float64, f"{what}: dtype {x.dtype}, expected float64"
        assert x.shape == shape, f"{what}: shape {x.shape}, expected {shape}"


def check_module(mod, name: str, args: list, what: str):
    """Call `name_grad` (or `name` for per-example values) at `args`; assert the types; compare the interpreter.

    Returns (value, gradients) -- gradients None for a per-example function.
    """
    ir = next(f for f in mod.functions if f.name == name)
    graph = ir.grad_opt if ir.grad_opt is not None else ir.forward_opt
    B = next((np.shape(a)[0] for i, a in zip(graph.inputs, args) if graph[i].shape[:1] == ("B",)), None)
    shape_of = {graph[i].name: np.shape(a) for i, a in zip(graph.inputs, args)}
    interp = evaluate(graph, args)
    for n, v in zip(graph.nodes, node_values(graph, args)):  # every node, not only the outputs
        if n.op is not Op.BATCH:
            assert_float(v, tuple(B if d == "B" else d for d in n.shape), f"{what}: interpreted node {n.id} ({n.op})")
    if ir.grad_opt is None:
        got = getattr(mod, name)(*args)
        assert_float(got, (B,), f"{what}: {name}")
        assert_float(interp["value"], (B,), f"{what}: interpreted {name}")
        np.testing.assert_allclose(got, interp["value"], rtol=1e-12, atol=1e-15)
        return got, None
    value, grads = getattr(mod, name + "_grad")(*args)
    assert_float(value, (), f"{what}: value")
    assert_float(interp["value"], (), f"{what}: interpreted value")
    assert np.isclose(value, interp["value"], rtol=1e-12, atol=0.0), f"{what}: compiled vs interpreted value"
    roles = [str(r) for r, _ in graph.grads()]
    assert len(grads) == len(roles)
    for role, g in zip(roles, grads):
        shape = shape_of[role.split(":", 1)[1]]
        assert_float(g, shape, f"{what}: {role}")
        assert_float(interp[role], shape, f"{what}: interpreted {role}")
        np.testing.assert_allclose(g, interp[role], rtol=1e-12, atol=1e-15, err_msg=f"{what}: {role}")
    forward = getattr(mod, name)(*args)
    assert_float(forward, (), f"{what}: {name}")
    return value, grads


# -- every example, every test_mlp model -------------------------------------------------------


def example_args(fn, graph) -> list:
    """Arguments for `graph`'s inputs: the model's parameter arrays, random data (B = 3), scalar examples."""
    arrays = {}
    for prefix, m in modules_of(fn):
        arrays.update(gradgen.params.read(m, prefix))
    ex = example_of(fn) or {}
    rng = np.random.RandomState(0)
    out = []
    for i in graph.inputs:
        n = graph[i]
        if n.origin.kind == "param":
            out.append(arrays[n.name])
        elif n.shape:
            out.append(rng.uniform(-1, 1, tuple(3 if d == "B" else d for d in n.shape)))
        else:
            out.append(float(ex[n.name]))
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_returns_floats_of_its_arguments_shapes(path):
    """Each exported function of examples/*.py: value a float, each gradient its argument's shape, float64."""
    _, fns = load_model(str(path))
    mod = compile_function(*fns)
    for fn, ir in zip(fns, mod.functions):
        graph = ir.grad_opt if ir.grad_opt is not None else ir.forward_opt
        check_module(mod, fn.__name__, example_args(fn, graph), f"{path.name}:{fn.__name__}")


def test_every_test_mlp_model_returns_floats_of_its_arguments_shapes():
    """Each model tests/test_mlp.py compiles, at each batch it is called with there."""
    for m in test_mlp.models():
        mod = m.mod or compile_function(m.fn)
        for data in m.data:
            args = list(m.params.values()) + list(data)
            check_module(mod, m.fn.__name__, args, f"test_mlp {m.id} B={len(data[0])}")


# -- the edges: small models against the engine ---------------------------------------------------


def seeded(kind, *args, seed=0, **kw):
    """An nn module with seeded random parameters (biases too)."""
    random.seed(seed)
    m = getattr(nn, kind)(*args, **kw)
    rng = np.random.RandomState(seed)
    gradgen.params.write(m, {k: rng.uniform(-1, 1, a.shape) for k, a in gradgen.params.read(m).items()})
    return m


def outputs(module, x):
    """module(x) as one Value (a sum if it gives several); a width-1 layer's output goes on as a list."""
    if isinstance(module, nn.MLP):
        for layer in module.layers:
            x = layer(x if isinstance(x, list) else [x])
    else:
        x = module(x)
    return sum(x) if isinstance(x, list) else x


def plain(module, nin, B, l2=None, seed=1):
    """micrograd's plain list form over B examples: mean of squared errors (+ 0.01 * L2 over `l2`)."""
    rng = np.random.RandomState(seed)
    X, y = rng.randn(B, nin), rng.randn(B)

    @gradgen.export(example=dict(X=X, y=y), params=module)
    def loss(X, y):
        outs = [outputs(module, list(map(Value, row))) for row in X]
        r = sum((o - t) ** 2 for o, t in zip(outs, y)) * (1.0 / len(outs))
        return r + 1e-2 * sum(p * p for p in l2) if l2 is not None else r

    return loss, (X, y)


def mean(module, nin, B, l2=None, seed=1):
    """gradgen.mean of squared errors (+ 0.01 * L2 over `l2`), called with B examples."""
    rng = np.random.RandomState(seed)
    X, y = rng.randn(B, nin), rng.randn(B)

    def squared(x, t):
        return (outputs(module, x) - t) ** 2

    @gradgen.export(example=dict(X=X[:1], y=y[:1]), params=module)
    def loss(X, y):
        r = gradgen.mean(squared, X, y)
        return r + 1e-2 * sum(p * p for p in l2) if l2 is not None else r

    return loss, (X, y)


def direct(module, nin, tail=None, seed=2):
    """The module's output on one input vector x, through `tail` (a Value method name) if given."""
    x = np.random.RandomState(seed).randn(nin)

    @gradgen.export(example=dict(x=x), params=module)
    def out(x):
        o = outputs(module, list(x))
        return getattr(o, tail)() if tail else o

    return out, (x,)


def _l2_layer(form, B, layer):
    m = seeded("MLP", 2, [3, 1])
    return m, form(m, 2, B, l2=m.layers[layer].parameters())


EDGES = {
    # one example in the plain list form: the seed's gradient went through `1.0[None]`
    "plain_one_example": lambda: (m := seeded("MLP", 2, [3, 1]), plain(m, 2, 1)),
    "plain_one_example_nin1_width1": lambda: (m := seeded("MLP", 1, [1]), plain(m, 1, 1)),
    "plain_one_example_neuron": lambda: (m := seeded("Neuron", 2), plain(m, 2, 1)),
    # L2 over one layer / one bias: the loss reads a one-element array
    "plain_l2_first_layer": lambda: _l2_layer(plain, 1, 0),
    "plain_l2_last_layer_3_examples": lambda: _l2_layer(plain, 3, 1),
    "mean_l2_last_layer": lambda: _l2_layer(mean, 3, 1),
    "mean_l2_one_bias": lambda: (m := seeded("MLP", 2, [3, 1]), mean(m, 2, 3, l2=[m.layers[1].neurons[0].b])),
    "mean_neuron_l2": lambda: (m := seeded("Neuron", 2), mean(m, 2, 3, l2=m.parameters())),
    "mean_nin1_width1": lambda: (m := seeded("MLP", 1, [1]), mean(m, 1, 1)),
    "mean_width1_hidden": lambda: (m := seeded("MLP", 2, [1, 1]), mean(m, 2, 3)),
    "mean_one_neuron_layer": lambda: (m := seeded("Layer", 2, 1), mean(m, 2, 3)),
    # a relu output: its gradient is relu's step itself (np.True_ before)
    "relu_neuron": lambda: (m := seeded("Neuron", 2), direct(m, 2)),
    "relu_neuron_one_input": lambda: (m := seeded("Neuron", 1), direct(m, 1)),
    "relu_one_neuron_layer": lambda: (m := seeded("Layer", 2, 1), direct(m, 2)),
    "relu_of_mlp": lambda: (m := seeded("MLP", 2, [3, 1]), direct(m, 2, "relu")),
    # scalar functions of a neuron's output (a 0-d array from _np_sigmoid before)
    "sigmoid_of_neuron": lambda: (m := seeded("Neuron", 2, nonlin=False), direct(m, 2, "sigmoid")),
    "tanh_of_neuron": lambda: (m := seeded("Neuron", 2, nonlin=False), direct(m, 2, "tanh")),
    "exp_of_relu_neuron": lambda: (m := seeded("Neuron", 2), direct(m, 2, "exp")),
}


def engine(module, fn, data):
    module.zero_grad()
    out = fn(*data)
    out.backward()
    return out.data, list(gradgen.params.read_grads(module).values())


@pytest.mark.parametrize("rerolling", [True, False], ids=["rerolled", "unrolled"])
@pytest.mark.parametrize("edge", list(EDGES))
def test_edge_models_match_the_engine_with_float_results(edge, rerolling):
    """Each edge model: compiles, runs, returns floats of the arguments' shapes, equals the engine (1e-9)."""
    module, (fn, data) = EDGES[edge]()
    mod = compile_function(fn, check=True, rerolling=rerolling)
    params = gradgen.params.read(module)
    value, grads = check_module(mod, fn.__name__, list(params.values()) + list(data), edge)
    want_value, want_grads = engine(module, fn, data)
    assert np.isclose(value, want_value, rtol=REL, atol=0.0), (value, want_value)
    for k, g, w in zip(params, grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=REL, atol=ABS, err_msg=f"{edge}: g_{k}")


def test_step_of_nan_is_zero_as_in_the_engine():
    """relu's backward at a NaN output: step(nan) = 0.0 (mathfn.step, the engine's `out.data > 0`)."""
    assert mathfn.step(float("nan")) == 0.0
    for module in (seeded("Neuron", 2), seeded("Layer", 2, 3)):
        fn, _ = direct(module, 2)
        x = np.array([np.nan, 1.0])
        for rerolling in (True, False):
            mod = compile_function(fn, rerolling=rerolling)
            params = gradgen.params.read(module)
            with np.errstate(invalid="ignore"):
                _, grads = mod.out_grad(*params.values(), x)
            _, want = engine(module, fn, (x,))
            for k, g, w in zip(params, grads, want):
                np.testing.assert_array_equal(g, w, err_msg=f"{module!r} g_{k}")  # NaN where the engine has NaN
            assert np.all(np.asarray(grads[-1]) == 0.0)  # the bias: step(nan) * 1


def test_no_bool_mask_or_array_syntax_on_floats_in_emitted_code():
    """The relu neuron's module: step is a float mask, and a float is never indexed with [None]."""
    module, (fn, _) = EDGES["relu_neuron_one_input"]()
    src = compile_function(fn).source
    assert ".astype(float)" in src or "float(" in src
    assert "g_out[None]" not in src and "1.0[None]" not in src


# -- arguments: dtypes and types ------------------------------------------------------------------

_MLP: list = []


def mlp():
    """(module, params, X, y, compiled) for a small gradgen.mean MLP, compiled once."""
    if not _MLP:
        m = seeded("MLP", 2, [3, 1])
        fn, (X, y) = mean(m, 2, 4)
        _MLP.append((m, gradgen.params.read(m), X, y, compile_function(fn, check=True)))
    return _MLP[0]


def _bad(kind, a):
    return {
        "list": lambda: a.tolist(),
        "torch": lambda: torch.tensor(a),
        "bool": lambda: a > 0,
        "object": lambda: a.astype(object),
        "complex": lambda: a.astype(complex),
        "str": lambda: a.astype(str),
    }[kind]()


@pytest.mark.parametrize("fname", ["loss", "loss_grad"])
@pytest.mark.parametrize("which", ["W0", "b1", "X", "y"])
@pytest.mark.parametrize("kind", ["list", "torch", "bool", "object", "complex", "str"])
def test_non_numeric_or_non_numpy_array_is_a_value_error_naming_it(kind, which, fname):
    """A list, a torch tensor, or a bool/object/complex/str array is a ValueError naming the argument."""
    module, params, X, y, mod = mlp()
    args = dict(params, X=X, y=y)
    want = {"W0": r"\(3, 2\)", "b1": r"\(1,\)", "X": r"\(B, 2\)", "y": r"\(B,\)"}[which]
    args[which] = _bad(kind, args[which])
    with pytest.raises(ValueError, match=rf"{fname}: {which} must be a float64 NumPy array of shape {want}, got "):
        getattr(mod, fname)(*args.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.uint8, ">f8"])
def test_other_real_dtypes_are_computed_in_float64(dtype):
    """float32, float16, int, byte-swapped arrays: converted to float64, so the results equal the
    float64 call on the converted arrays exactly, gradients float64; the caller's arrays are untouched."""
    module, params, X, y, mod = mlp()
    rng = np.random.RandomState(9)
    raw = {k: (rng.uniform(-3, 3, a.shape)).astype(dtype) for k, a in params.items()}
    Xr, yr = (rng.uniform(-3, 3, X.shape)).astype(dtype), np.sign(rng.randn(len(y))).astype(dtype)
    copies = [a.copy() for a in (*raw.values(), Xr, yr)]
    value, grads = check_module(mod, "loss", [*raw.values(), Xr, yr], str(dtype))
    f64 = [np.asarray(a, dtype=np.float64) for a in (*raw.values(), Xr, yr)]
    want_value, want_grads = mod.loss_grad(*f64)
    assert value == want_value
    for g, w in zip(grads, want_grads):
        assert np.array_equal(g, w)
    assert mod.loss(*raw.values(), Xr, yr) == mod.loss(*f64)
    for a, c in zip((*raw.values(), Xr, yr), copies):
        assert a.dtype == c.dtype and np.array_equal(a, c)


def test_scalar_parameter_and_scalar_argument():
    """A Neuron's bias (a 0-d array from params.read, or a float, or an int) and a scalar argument:
    the gradient is a float; an array where a number belongs is a ValueError naming it."""
    module = seeded("Neuron", 2)
    fn, (x,) = direct(module, 2)
    mod = compile_function(fn)
    w, b = gradgen.params.read(module).values()
    assert b.shape == ()  # params.read: 0-d (so `b -= lr * g_b` updates it in place)
    ref = mod.out_grad(w, b, x)
    for b_as in (float(b), np.float64(b), np.float32(b), np.array(float(b))):
        value, (g_w, g_b) = mod.out_grad(w, b_as, x)
        assert type(g_b) in (float, np.float64)
        assert np.isclose(value, ref[0], rtol=1e-6)
    (v_int, (gw_int, gb_int)), (v, (gw, gb)) = mod.out_grad(w, 1, x), mod.out_grad(w, 1.0, x)
    assert v_int == v and np.array_equal(gw_int, gw) and type(gb_int) in (float, np.float64) and gb_int == gb
    for bad, what in ((np.ones(2), r"an array of shape \(2,\)"), ("x", "str"), (np.array([True]), "an array")):
        with pytest.raises(ValueError, match=rf"out_grad: b must be a number \(a float\), got {what}"):
            mod.out_grad(w, bad, x)


def test_wrong_shapes_still_name_the_argument():
    """The shape messages (compiled shape, batch size) survive the dtype checks; B = 0 still refused."""
    module, params, X, y, mod = mlp()
    p = list(params.values())
    with pytest.raises(ValueError, match=r"loss_grad: W0 has shape \(2, 3\), but loss_grad was compiled for \(3, 2\)"):
        mod.loss_grad(p[0].T, *p[1:], X, y)
    with pytest.raises(ValueError, match=r"loss_grad: y has shape \(3,\), but loss_grad takes \(B,\) with B = 4"):
        mod.loss_grad(*p, X, y[:3])
    with pytest.raises(ValueError, match="no rows"):
        mod.loss_grad(*p, X[:0], y[:0])
    with pytest.raises(ValueError, match=r"X must be a float64 NumPy array of shape \(B, 2\), got float"):
        mod.loss_grad(*p, 1.0, y)


def test_fixed_batch_data_message_says_to_use_mean():
    """A data array whose batch size the trace fixed (lecture_mlp's xs, ys) names gradgen.mean when its
    shape is wrong; a parameter of the wrong shape does not."""
    _, fns = load_model(str(ROOT / "examples" / "lecture_mlp.py"))
    mod = compile_function(*fns)
    args = example_args(fns[0], mod.functions[0].grad_opt)
    *p, xs, ys = args
    hint = " (the batch size is fixed by the traced example: use gradgen.mean for any batch size)"
    for f in ("loss", "loss_grad"):
        with pytest.raises(ValueError) as e:
            getattr(mod, f)(*p, xs[:3], ys)
        assert str(e.value) == f"{f}: xs has shape (3, 3), but {f} was compiled for (4, 3)" + hint
        with pytest.raises(ValueError) as e:
            getattr(mod, f)(p[0].T, *p[1:], xs, ys)
        assert str(e.value) == f"{f}: W0 has shape (3, 4), but {f} was compiled for (4, 3)"


def test_argument_check_remembers_only_what_it_checked():
    """The fast path (shapes seen before) never lets through what the full check refuses: after good
    calls with B = 5 and B = 3, mixed batch sizes, float32 and a list are still refused or converted,
    and the results equal a fresh module's."""
    module, params, X, y, mod = mlp()
    p = list(params.values())
    fresh = compile_function(mean(module, 2, 4)[0])  # a second module: its own remembered shapes
    X3, y3 = X[:3].copy(), y[:3].copy()
    for _ in range(2):
        assert mod.loss_grad(*p, X, y)[0] == fresh.loss_grad(*p, X, y)[0]
        assert mod.loss_grad(*p, X3, y3)[0] == fresh.loss_grad(*p, X3, y3)[0]
    with pytest.raises(ValueError, match=r"^loss_grad: y has shape \(4,\), but loss_grad takes \(B,\) with B = 3 "):
        mod.loss_grad(*p, X3, y)
    with pytest.raises(ValueError, match=r"^loss_grad: y must be a float64 NumPy array of shape \(B,\), got list"):
        mod.loss_grad(*p, X3, list(y3))
    value, grads = mod.loss_grad(*p, X3.astype(np.float32), y3)
    assert value == fresh.loss_grad(*p, X3.astype(np.float32).astype(float), y3)[0]
    assert all(g.dtype == np.float64 for g in grads)
