"""`gradgen check` on functions with nn-module parameters: called the way they were compiled.

The compiled `f(W0, b0, ..., x1, x2)` takes the modules' parameter arrays
first.  These tests run check on learner-style models (a global Neuron,
Layer or MLP on scalar arguments; `params=`; two modules; data arrays plus a
scalar argument) and compare its numbers with the engine's own `.grad`s, and
plant wrong gradients (for the parameters, or for one scalar argument only)
that must fail with exit status 1.
"""

import re

import numpy as np
import pytest
from check_fixtures import rows, run, compile_to, plant, write_model

import gradgen
from gradgen import params
from gradgen.tools import check
from gradgen.frontend.loader import load_model




SCALAR_MODELS = {  # model: its parameter arrays in the compiled order
    "neuron": ["w", "b"],
    "layer": ["W", "b"],
    "mlp": ["W0", "b0", "W1", "b1"],
    "params": ["W0", "b0", "W1", "b1"],
    "two_modules": ["a_w", "a_b", "b_w", "b_b"],
}


@pytest.mark.parametrize("name", sorted(SCALAR_MODELS))
def test_module_parameters_and_scalar_arguments(capsys, tmp_path, name):
    """Every point used to fail with "f() missing 2 required positional arguments"; now the call is
    built from the compiled signature and the engine and finite-difference rows pass."""
    model = write_model(tmp_path, name)
    rc, out, err = run(capsys, model)
    assert rc == 0, out + err
    assert f"f(x1, x2) with parameters {', '.join(SCALAR_MODELS[name])}: " in out
    assert rows(out) == {"compiled vs engine": "PASS", "compiled vs torch": "SKIP", "compiled vs finite diff": "PASS"}
    assert "compiled code raised" not in out


def test_every_element_and_scalar_gradient_is_compared_with_the_engine(tmp_path):
    """At each point: 2 values, every element of every parameter gradient, and d/dx1, d/dx2;
    the engine's numbers are the modules' .grad after backward() (params.read_grads)."""
    model = write_model(tmp_path, "mlp")
    (report,) = check.check_model(model, n_random=3)
    sizes = 3 * 2 + 3 + 1 * 3 + 1  # W0 (3, 2), b0 (3,), W1 (1, 3), b1 (1,)
    engine, _, fd = report.rows
    assert len(report.points) == 4 and engine.compared == 4 * (2 + sizes + 2)
    assert fd.compared == 4  # one direction per point
    # the oracle really is the engine: its gradients at the example, by hand
    mod, (fn,) = load_model(model)
    layout = check.layout_of(fn, gradgen.compile_function(fn).f)
    value, grads = check.engine_grad(fn, (0.3, -0.7), layout)
    mod.model.zero_grad()
    x1, x2 = gradgen.Value(0.3), gradgen.Value(-0.7)
    out = fn(x1, x2)
    out.backward()
    ref = params.read_grads(mod.model)
    assert value == out.data and grads[-2:] == (x1.grad, x2.grad)
    for k, g in zip(layout.params, grads):
        np.testing.assert_array_equal(g, ref[k])


@pytest.mark.parametrize("name", ["neuron", "mlp", "two_modules"])
def test_planted_wrong_parameter_gradients_fail(capsys, tmp_path, name):
    """Twice every gradient: the engine row and the direction fail, exit status 1."""
    model = write_model(tmp_path, name)
    module = plant(tmp_path, model)
    rc, out, err = run(capsys, model, "--module", module)
    assert rc == 1, out + err
    assert rows(out) == {"compiled vs engine": "FAIL", "compiled vs torch": "SKIP", "compiled vs finite diff": "FAIL"}
    assert out.splitlines()[-1] == "check FAILED for f (1 of 1 function)"


def test_a_wrong_scalar_argument_gradient_alone_fails(capsys, tmp_path):
    """Only d/dx2 is wrong (the parameters' are right): it used to be never compared."""
    model = write_model(tmp_path, "neuron")
    module = plant(tmp_path, model, factors=[1, 1, 1, 1.5])
    rc, out, err = run(capsys, model, "--module", module)
    assert rc == 1, out + err
    assert re.search(r"^FAIL f: compiled vs engine: d/dx2 at p\d is off by", out, re.M), out
    assert rows(out)["compiled vs finite diff"] == "FAIL"


def test_data_arrays_and_a_scalar_argument(capsys, tmp_path):
    """loss(X, y, alpha) with an MLP: data sets (the example, then random), d/dalpha compared;
    a wrong d/dalpha alone fails (it was dropped before: only the parameters were zipped)."""
    model = write_model(tmp_path, "data")
    rc, out, err = run(capsys, model)
    assert rc == 0, out + err
    assert "loss(X, y, alpha) with parameters W0, b0, W1, b1, W2, b2: 6 data sets (1 example, 5 random)" in out
    (report,) = check.check_model(model, n_random=2)
    sizes = 4 * 2 + 4 + 3 * 4 + 3 + 1 * 3 + 1
    assert report.rows[0].compared == 3 * (2 + sizes + 1)
    module = plant(tmp_path, model, name="loss", factors=[1] * 6 + [1.01])
    rc, out, err = run(capsys, model, "--module", module)
    assert rc == 1, out + err
    assert re.search(r"^FAIL loss: compiled vs engine: d/dalpha at p\d is off by", out, re.M), out


def test_planted_wrong_gradient_of_a_data_function_fails(capsys, tmp_path):
    model = write_model(tmp_path, "data")
    module = plant(tmp_path, model, name="loss")
    rc, out, err = run(capsys, model, "--module", module)
    assert rc == 1
    assert rows(out) == {"compiled vs engine": "FAIL", "compiled vs torch": "SKIP", "compiled vs finite diff": "FAIL"}


def test_data_sets_are_reproducible_as_printed(tmp_path):
    """ "random data set k of --seed S: rerun with --seed S --points k" is true: set k is the same
    in both runs, and the printed text says so."""
    model = write_model(tmp_path, "data")
    (five,) = check.check_model(model, n_random=5, seed=3)
    (two,) = check.check_model(model, n_random=2, seed=3)
    assert five.labels == ["example"] + ["random"] * 5
    for a, b in zip(five.points[:3], two.points):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert five.point_text[2] == "random data set 2 of --seed 3 (rerun with --seed 3 --points 2 to see it again)"
    assert not np.array_equal(five.points[1][0], check.check_model(model, n_random=1, seed=4)[0].points[1][0])


def test_at_for_a_data_function_is_one_line(capsys, tmp_path):
    model = write_model(tmp_path, "data")
    rc, out, err = run(capsys, model, "--at", "X=1,y=2,alpha=3")
    assert rc == 1 and out == ""
    assert "X, y of loss(X, y, alpha) are arrays" in err and "--points N and --seed S" in err
    assert len(err.splitlines()) == 1


def test_a_module_compiled_from_another_model_is_one_line(capsys, tmp_path):
    """--module from a model whose parameters differ: say so and how to fix it, not a traceback."""
    model = write_model(tmp_path, "neuron")
    other = compile_to(tmp_path, write_model(tmp_path, "mlp"))
    capsys.readouterr()
    rc, out, err = run(capsys, model, "--module", other)
    assert rc == 1 and out == ""
    assert "does not take the parameters and arguments of f(x1, x2); regenerate it with gradgen compile" in err


def test_at_points_of_a_module_function_paste_back(capsys, tmp_path):
    """The printed --at of a module function is its scalar arguments; pasted back it is checked."""
    model = write_model(tmp_path, "mlp")
    rc, out, _ = run(capsys, model, "--seed", "2")
    points = re.findall(r"^  p\d+ \(\w+\): --at (\S+)$", out, re.M)
    assert rc == 0 and points
    for at in points:
        rc, out, err = run(capsys, model, "--at", at)
        assert rc == 0, out + err
        assert "1 point (1 --at)" in out
