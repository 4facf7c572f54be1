"""`gradgen check`: compiled gradients against the engine, PyTorch and finite differences.

Each test runs the CLI in-process (`gradgen.cli.main`) and reads what it
printed.  The examples must pass; a module with a planted wrong derivative
must fail with a row that names the function and the comparison; bad input
is one line on stderr and exit status 1.
"""

import glob
import math
import os
import re

import pytest

from gradgen.tools import check
from gradgen.cli import main

from check_fixtures import rows, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
NEURON = os.path.join(ROOT, "examples", "neuron.py")
LECTURE = "x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432"




def planted(tmp_path) -> str:
    """A compiled neuron module whose tanh rule has the wrong sign."""
    assert main(["compile", NEURON, "-o", str(tmp_path)]) == 0
    module = tmp_path / "neuron.py"
    text = module.read_text()
    assert "g_n = 1.0 - o * o" in text
    module.write_text(text.replace("g_n = 1.0 - o * o", "g_n = 1.0 + o * o"))
    return str(module)


def one_error_line(rc, out, err):
    assert rc == 1
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradgen: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("model", EXAMPLES, ids=os.path.basename)
def test_every_example_passes(capsys, model):
    """Every exported function of every example agrees three ways at the example and 5 random points."""
    rc, out, err = run(capsys, model)
    assert rc == 0, out + err
    assert "FAIL" not in out
    assert out.splitlines()[-1].startswith("check passed")
    # a learner's own Value class (examples/lecture_value.py, micrograd_demo.py): its backward() is the
    # reference, and is graded in rows of its own (tests/test_grade_engine.py)
    foreign = " on your " in out
    engine = "compiled vs your backward()" if foreign else "compiled vs engine"
    if "data sets (1 example, 5 random)" in out:  # an MLP on a batch: engine and directions
        graded = {"your backward() vs torch": "SKIP", "your backward() vs finite diff": "PASS"}
        assert rows(out) == {
            engine: "PASS",
            "compiled vs torch": "SKIP",
            "compiled vs finite diff": "PASS",
            **(dict(graded, **{"your backward() per op": "PASS"}) if foreign else {}),
        }
        return
    assert "SKIP" not in out
    assert out.count(engine) == out.count("compiled vs torch") == out.count("compiled vs finite diff")
    assert "(1 example, 5 random)" in out


def test_planted_wrong_derivative_fails(capsys, tmp_path):
    """tanh's rule with the wrong sign in a compiled module: every comparison fails and says where."""
    module = planted(tmp_path)
    capsys.readouterr()

    rc, out, err = run(capsys, NEURON, "--module", module)
    assert rc == 1, out + err
    assert rows(out) == dict.fromkeys(["compiled vs engine", "compiled vs torch", "compiled vs finite diff"], "FAIL")
    assert re.search(r"^FAIL neuron: compiled vs engine: d/d\w+ at p\d+ is off by ", out, re.M), out
    assert out.splitlines()[-1] == "check FAILED for neuron (1 of 1 function)"
    # the worst point is printed so it can be pasted back
    m = re.search(r"^  (p\d+) \((?:example|random)\): --at (\S+)$", out, re.M)
    assert m, out
    rc2, out2, _ = run(capsys, NEURON, "--module", module, "--at", m.group(2))
    assert rc2 == 1 and "1 point (1 --at)" in out2


def test_unchanged_module_passes(capsys, tmp_path):
    """The same module, not edited, passes: --module really checks the file."""
    assert main(["compile", NEURON, "-o", str(tmp_path)]) == 0
    capsys.readouterr()
    rc, out, err = run(capsys, NEURON, "--module", str(tmp_path / "neuron.py"))
    assert rc == 0, out + err


def test_lecture_point_and_at_replaces_random_points(capsys):
    """--at points replace the example and the random points; the lecture's point passes."""
    rc, out, err = run(capsys, NEURON, "--at", LECTURE, "--at", "x1=1,x2=1,w1=1,w2=1,b=1")
    assert rc == 0, out + err
    assert out.startswith("neuron(x1, x2, w1, w2, b): 2 points (2 --at)")


def test_random_points_are_reproducible(capsys):
    """Same seed, same report; another seed, other points."""
    a = run(capsys, NEURON, "--seed", "3", "--points", "4")[1]
    b = run(capsys, NEURON, "--seed", "3", "--points", "4")[1]
    assert a == b
    assert "(1 example, 4 random)" in a
    fn = check_fn()
    pts = check.random_points(fn, 4, 3)[0]
    assert pts == check.random_points(fn, 4, 3)[0] != check.random_points(fn, 4, 4)[0]
    assert len(pts) == 4 and all(-2 <= x <= 2 for p in pts for x in p)


def check_fn():
    from gradgen.frontend.loader import load_model

    return load_model(NEURON)[1][0]


def test_random_points_stay_in_the_domain(capsys, tmp_path):
    """log(x - 1) is defined for x > 1 only: random points come from (1, 2] and the check passes."""
    model = tmp_path / "logs.py"
    model.write_text("import gradgen\n\n@gradgen.export\ndef f(x):\n    return (x - 1).log() * x\n")
    rc, out, err = run(capsys, str(model), "--points", "6")
    assert rc == 0, out + err
    assert "6 points (6 random)" in out


def test_no_point_in_the_domain_is_a_failure(capsys, tmp_path):
    """log(x - 5) has no point in [-2, 2]: say so, and exit 1 (nothing was checked)."""
    model = tmp_path / "nodomain.py"
    model.write_text("import gradgen\n\n@gradgen.export\ndef f(x):\n    return (x - 5).log()\n")
    rc, out, err = run(capsys, str(model), "--points", "2")
    assert rc == 1
    assert "found 0 of 2 random points" in out and "give points with --at" in out
    rc, out, err = run(capsys, str(model), "--at", "x=6")
    assert rc == 0, out + err


def test_without_torch_the_torch_row_is_skipped(capsys, monkeypatch):
    monkeypatch.setattr(check, "torch_available", lambda: False)
    rc, out, err = run(capsys, NEURON)
    assert rc == 0, out + err
    assert rows(out)["compiled vs torch"] == "SKIP"
    assert "note: PyTorch not installed: skipped" in out


def test_function_torch_cannot_run_gets_a_note(capsys, monkeypatch):
    """When the function fails on tensors (an op torch lacks), a note, not a crash or a failure."""

    def no_such_op(fn, xs):
        raise AttributeError("'Tensor' object has no attribute 'softsign'")

    monkeypatch.setattr(check, "torch_grad", no_such_op)
    rc, out, err = run(capsys, NEURON)
    assert rc == 0, out + err
    assert "note: PyTorch cannot run neuron on tensors (AttributeError: 'Tensor' object has no attribute" in out


def test_in_place_operators_on_tensors_rebind_like_values():
    """`c += ...` rebinds for Values; the torch reference must not mutate an aliased tensor."""

    def f(a):
        b = a * 1
        c = b
        c += 1
        return b * c

    assert check.engine_grad(f, (2.0,)) == (6.0, (5.0,))
    assert check.torch_grad(f, (2.0,)) == (6.0, (5.0,))


def test_tolerances_are_options(capsys, tmp_path):
    """--fd-rtol 1 lets the planted bug (94% off) through the finite-difference row only;
    --rtol/--atol 0 demand bit-equal results, which torch's tanh does not give."""
    module = planted(tmp_path)
    capsys.readouterr()
    rc, out, _ = run(capsys, NEURON, "--module", module, "--fd-rtol", "1", "--fd-atol", "0")
    assert rc == 1
    assert rows(out) == {"compiled vs engine": "FAIL", "compiled vs torch": "FAIL", "compiled vs finite diff": "PASS"}
    rc, out, _ = run(capsys, NEURON, "--rtol", "0", "--atol", "0")
    assert rows(out)["compiled vs engine"] == "PASS"
    assert rows(out)["compiled vs torch"] == "FAIL" and rc == 1
    rc, out, err = run(capsys, NEURON, "--fd-atol", "-1")
    assert rc == 1 and "--fd-atol must be a number >= 0" in err


def test_function_option_and_points_for_several_functions(capsys):
    """With several functions, an --at point goes to the functions whose arguments it names."""
    path = os.path.join(ROOT, "examples", "activations.py")
    rc, out, err = run(capsys, path, "--at", "x=1.5")
    assert rc == 0, out + err
    assert "powers(x): 1 point (1 --at)" in out
    assert "logistic(x, w, b): skipped: no --at point names its arguments" in out
    rc, out, err = run(capsys, path, "--function", "logistic", "--points", "1")
    assert rc == 0 and out.startswith("logistic(x, w, b): 2 points")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/no/such/model.py"], "no such file"),
        ([NEURON, "--at", "x1:2"], "bad --at 'x1:2': 'x1:2' is not NAME=NUMBER"),
        ([NEURON, "--at", "x1=two,x2=0"], "'two' is not a number"),
        ([NEURON, "--at", "x1=2,,x2=0"], "is not NAME=NUMBER"),
        ([NEURON, "--at", "x1=2,x1=3"], "x1 is given twice"),
        ([NEURON, "--at", "x1=2"], "neuron.py:12: --at: no value for x2, w1, w2, b"),
        ([NEURON, "--at", LECTURE + ",z=1"], "has no argument z"),
        ([NEURON, "--module", "/no/such/module.py"], "no such module file"),
        ([NEURON, "--function", "nope"], "no exported function named 'nope'"),
        ([os.path.join(ROOT, "examples", "activations.py"), "--at", "q=1"], "names the arguments of none of"),
    ],
)
def test_bad_input_is_one_line(capsys, argv, expected):
    line = one_error_line(*run(capsys, *argv))
    assert expected in line


def test_module_without_the_function(capsys, tmp_path):
    module = tmp_path / "other.py"
    module.write_text("def something_else(x):\n    return x\n")
    line = one_error_line(*run(capsys, NEURON, "--module", str(module)))
    assert "has no function neuron" in line and "gradgen compile" in line


def test_row_compares_nan_inf_and_complex():
    row = check.Row("r", 1e-9, 1e-12)
    row.add(float("nan"), float("nan"), "value", 0)
    row.add(float("inf"), float("inf"), "value", 0)
    assert not row.failed and row.max_abs == 0
    row.add(1j, 1.0, "value", 1)
    assert row.failed and row.worst == (float("inf"), "value", 1)
    row = check.Row("r", 1e-9, 1e-12)
    row.add(1.0, 1.0 + 1e-12, "d/dx", 0)
    assert not row.failed
    row.add(1.0, 1.0 + 1e-6, "d/dy", 2)
    assert row.failed and row.worst[1:] == ("d/dy", 2)


def test_rounding_in_a_long_chain_is_not_a_failure(capsys, tmp_path):
    """3,000 rounded steps make finite differences noisy (~3e-5 relative at h = 1e-6, and this
    test fails without the error estimate); the estimate absorbs the noise."""
    model = tmp_path / "chain.py"
    model.write_text(
        "import gradgen\n\n"
        "@gradgen.export(example=dict(x=1.0, y0=0.5))\n"
        "def decay(x, y0):\n"
        "    y = y0\n"
        "    for _ in range(3000):\n"
        "        y = y * 0.9999 + x * 1e-6\n"
        "    return y\n"
    )
    rc, out, err = run(capsys, str(model), "--points", "8", "--seed", "1")
    assert rc == 0, out + err


def test_fd_error_estimate_is_small_for_smooth_functions():
    def f(x, y):
        return math.tanh(x) * y

    dx, dy = check.fd_grad(f, (0.3, -1.2))
    assert dx.central == pytest.approx(-1.2 * (1 - math.tanh(0.3) ** 2), rel=1e-9)
    assert dy.central == pytest.approx(math.tanh(0.3), rel=1e-9)
    assert dx.error < 1e-8 and dy.error < 1e-8
    # the one-sided differences are good to O(h) and say so
    assert dx.left == pytest.approx(dx.central, rel=1e-5) and dx.right == pytest.approx(dx.central, rel=1e-5)
    assert 1e-12 < dx.left_error < 1e-5 and dy.left_error < 1e-8


# -- messages: numbers are numbers, printed points paste back ---------------------------


def test_numpy_scalars_ints_and_bools_are_numbers():
    """Only a complex result is "a complex number"; NumPy scalars, ints and bools are real."""
    import numpy as np

    for x in (np.float32(1.5), np.float64(1.5), np.int64(3), 3, True, np.bool_(True), np.array(2.5)):
        assert check.real(x) == float(x)
    for x in (1j, np.complex128(1 + 0j), "1.0", None, [1.0]):
        assert check.real(x) is None


def test_an_engine_giving_numpy_floats_is_checked_not_called_complex():
    """The engine's numbers are np.float32 here (a float32 constant); they used to be skipped as
    "the engine gives a complex number there"."""
    import numpy as np

    from gradgen.engine import Value

    def fn(x):
        return x * Value(np.float32(0.5))

    assert type(check.engine_grad(fn, (1.5,))[0]) is np.float32
    report = check.check_function(
        fn, lambda x: x * 0.5, lambda x: (x * 0.5, (0.5,)), [(1.5,)], ["--at"], check.Tolerances(), False
    )
    assert len(report.points) == 1 and not report.failed
    assert not any("complex" in n for n in report.notes)


def test_a_real_complex_result_is_called_complex(capsys, tmp_path):
    model = tmp_path / "root.py"
    model.write_text("import gradgen\n\n@gradgen.export(example=dict(x=-1.0))\ndef f(x):\n    return x ** 0.5\n")
    rc, out, err = run(capsys, str(model), "--points", "2")
    assert rc == 0, out + err
    assert "note: example point --at x=-1.0 skipped: the engine gives a complex number there" in out
    rc, out, err = run(capsys, str(model), "--at", "x=-1.0")  # pasted back: the same note, nothing left
    assert rc == 1 and "note: --at point --at x=-1.0 skipped: the engine gives a complex number there" in out


@pytest.mark.parametrize("x", [1.5, -0.1, 1e-300, 2.0**60, float("nan"), float("inf"), float("-inf"), -0.0])
def test_format_point_pastes_back(x):
    """repr(float(x)) for every number, NumPy's too (np.float64(1.5) would print as `np.float64(1.5)`)."""
    import numpy as np

    def fn(a, b):
        return a

    for value in (x, np.float64(x), np.float32(x) if math.isfinite(x) and abs(x) < 1e30 else x):
        text = check.format_point(fn, (value, 2))
        assert "np." not in text
        back = check.parse_at(text)
        assert list(back) == ["a", "b"] and back["b"] == 2.0
        assert back["a"] == float(value) or (math.isnan(back["a"]) and math.isnan(float(value)))


def points_printed(out: str) -> list[str]:
    """Every `--at POINT` the report printed (the worst points and the skipped ones)."""
    return re.findall(r"--at (\S+?)(?:$| skipped)", out, re.M)


@pytest.mark.parametrize("planted_bug", [False, True], ids=["correct", "planted"])
def test_every_printed_point_gives_the_same_verdict_pasted_back(capsys, tmp_path, planted_bug):
    """Each printed --at, fed back alone, is checked and gets the verdict of the whole run."""
    argv = [NEURON, "--module", planted(tmp_path)] if planted_bug else [NEURON]
    capsys.readouterr()
    rc, out, _ = run(capsys, *argv, "--points", "8", "--seed", "5")
    points = points_printed(out)
    assert rc == int(planted_bug) and points
    for at in points:
        rc2, out2, err2 = run(capsys, *argv, "--at", at)
        assert rc2 == rc, out2 + err2
        assert "1 point (1 --at)" in out2


def test_points_the_notes_name_are_printed_and_paste_back(capsys, tmp_path):
    """A note about p0 (a kink at the example) comes with p0's --at, even when p0 is not the worst."""
    model = tmp_path / "kinked.py"
    model.write_text(
        "import gradgen\n\n@gradgen.export(example=dict(x=0.0, y=0.0))\ndef f(x, y):\n"
        "    return x.relu() * 2 + y * x\n"
    )
    rc, out, err = run(capsys, str(model), "--points", "3")
    assert rc == 0, out + err
    assert "note: p0: d/dx at a kink (one-sided slopes 0 and 2)" in out
    assert "  p0 (example): --at x=0.0,y=0.0" in out
    for at in points_printed(out):
        rc, out2, err2 = run(capsys, str(model), "--at", at)
        assert rc == 0, out2 + err2
        assert ("note: p0: d/dx at a kink (one-sided slopes 0 and 2)" in out2) == (at == "x=0.0,y=0.0")


def test_compiled_code_that_raises_is_one_note_per_point(capsys, tmp_path):
    """The same error used to be listed three times per point (once per row)."""
    assert main(["compile", NEURON, "-o", str(tmp_path)]) == 0
    module = tmp_path / "neuron.py"
    module.write_text(module.read_text().replace("    # backward\n", "    # backward\n    1 / 0\n"))
    capsys.readouterr()
    rc, out, _ = run(capsys, NEURON, "--module", str(module), "--points", "2")
    assert rc == 1
    notes = [line for line in out.splitlines() if "compiled code raised" in line]
    assert notes == [f"  note: p{p}: compiled code raised ZeroDivisionError: division by zero" for p in range(3)]
