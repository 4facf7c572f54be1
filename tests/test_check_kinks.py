"""`gradgen check` at kinks: correct code passes with a note, a planted wrong derivative fails.

A central difference whose step straddles relu's kink at 0 is no derivative
(relu(x + b) * 3 + x at 0: 2.5 where the engine's relu'(0) = 0 gives 1).  The
check then looks at the one-sided differences (see `gradgen.tools.check.report.add_fd`).
These tests run it at kinks exactly at the point (zero biases, a data row of
zeros), next to the point (inside the step only), and away from them, with
the correct compiled code and with planted bugs: twice the gradient, and a
relu rule that takes relu'(0) = 1.
"""

import math
import re

import pytest
from check_fixtures import rows, run, plant, write_model

from gradgen.tools import check




ALL_PASS = {"compiled vs engine": "PASS", "compiled vs torch": "PASS", "compiled vs finite diff": "PASS"}
SMOOTH, AT_KINK, NEAR_KINK = "x=0.5,b=0.25", "x=0,b=0", "x=1e-7,b=0"


def test_relu_kink_at_the_example_passes_with_a_note(capsys, tmp_path):
    """relu(x + b) * 3 + x at its example x = b = 0 used to FAIL (d/db off by 1.5)."""
    rc, out, err = run(capsys, write_model(tmp_path, "relu"))
    assert rc == 0, out + err
    assert rows(out) == ALL_PASS
    assert (
        "note: p0: d/db at a kink (one-sided slopes 0 and 3): compared with the one-sided difference it matches" in out
    )
    assert "note: p0: d/dx at a kink (one-sided slopes 1 and 4)" in out


def test_kink_inside_the_step_only(capsys, tmp_path):
    """At x = 1e-7 the function is differentiable (d/dx = 4) but the step h = 1e-6 crosses the kink."""
    rc, out, err = run(capsys, write_model(tmp_path, "relu"), "--at", NEAR_KINK, "--at", "x=-3e-7,b=0")
    assert rc == 0, out + err
    assert rows(out) == ALL_PASS
    assert "p0: d/dx at a kink (one-sided slopes 1.3 and 4): compared with the one-sided difference it matches" in out


def test_no_derivative_at_the_point_is_not_compared(capsys, tmp_path):
    """A leaky ReLU written relu(y) - 0.1 * relu(-y): at y = 0 the engine's convention gives 0, which
    is neither one-sided slope (0.1, 1); finite differences cannot judge it, and say so."""
    rc, out, err = run(capsys, write_model(tmp_path, "abs"))
    assert rc == 0, out + err
    assert rows(out) == ALL_PASS
    assert (
        "p0: d/dy at a kink (one-sided slopes 0.1 and 1): f has no derivative there and the compiled 0 "
        "matches neither slope (the engine takes relu'(0) = 0): not compared with finite differences"
    ) in out


@pytest.mark.parametrize("name", ["mlp", "data"])
def test_mlp_with_zero_biases_at_zero_input(capsys, tmp_path, name):
    """micrograd's zero biases and an input (or a data row) of zeros: every hidden ReLU on its kink,
    for the random direction through all parameters too."""
    rc, out, err = run(capsys, write_model(tmp_path, name))
    assert rc == 0, out + err
    assert "FAIL" not in out
    assert "note: p0: direction at a kink (one-sided slopes" in out


@pytest.mark.parametrize("at", [SMOOTH, AT_KINK, NEAR_KINK])
def test_twice_the_gradient_fails_with_and_without_kinks(capsys, tmp_path, at):
    """2x every derivative: the engine and torch rows fail everywhere; finite differences fail where
    they can tell (away from the kink, and next to it: the clean one-sided difference)."""
    model = write_model(tmp_path, "relu")
    module = plant(tmp_path, model)
    rc, out, err = run(capsys, model, "--module", module, "--at", at)
    assert rc == 1, out + err
    expected = "PASS" if at == AT_KINK else "FAIL"  # at the kink: 2 is between the slopes 1 and 4
    assert rows(out) == {"compiled vs engine": "FAIL", "compiled vs torch": "FAIL", "compiled vs finite diff": expected}
    assert out.splitlines()[-1] == "check FAILED for f (1 of 1 function)"


def test_relu_rule_with_the_wrong_convention_fails_at_the_kink(capsys, tmp_path):
    """relu'(0) = 1 instead of the engine's 0: only kinks show it, and check fails there."""
    model = write_model(tmp_path, "relu")
    module = plant(tmp_path, model, replace=("float(relu > 0.0)", "float(x + b >= 0.0)"))
    rc, out, _ = run(capsys, model, "--module", module)  # the example is x = b = 0
    assert rc == 1
    assert rows(out) == {"compiled vs engine": "FAIL", "compiled vs torch": "FAIL", "compiled vs finite diff": "PASS"}
    assert re.search(r"^FAIL f: compiled vs engine: d/db at p0 is off by 3\.0e\+00", out, re.M), out
    assert "d/db at a kink (one-sided slopes 0 and 3): compared with the one-sided difference it matches" in out
    rc, out, _ = run(capsys, model, "--module", module, "--at", SMOOTH, "--at", "x=-0.5,b=0.25")
    assert rc == 0, out  # the same module away from the kink: nothing to see


def test_wrong_relu_convention_in_an_mlp_fails_on_the_zero_row(capsys, tmp_path):
    model = write_model(tmp_path, "data")
    module = plant(tmp_path, model, replace=("(h1 > 0.0)", "(z1 >= 0.0)"))
    rc, out, _ = run(capsys, model, "--module", module)
    assert rc == 1
    assert re.search(r"^FAIL loss: compiled vs engine: d/d\w+\[[\d, ]+\] at p0 is off by", out, re.M), out
    assert rows(out)["compiled vs finite diff"] == "PASS"  # the random data sets have no kink


def test_twice_the_gradient_of_an_mlp_fails_at_the_zero_row_too(capsys, tmp_path):
    model = write_model(tmp_path, "data")
    module = plant(tmp_path, model, name="loss")
    rc, out, _ = run(capsys, model, "--module", module, "--points", "0")
    assert rc == 1 and "1 data set (1 example)" in out
    assert rows(out)["compiled vs engine"] == "FAIL"


# -- the decision, on finite differences of known functions -----------------------------


def relu(x):
    return max(x, 0.0)


def slope_of(f, x=0.0):
    return check.fd_grad(f, (x,))[0]


def fd_row():
    return check.Row("fd", check.FD_RTOL, check.FD_ATOL)


@pytest.mark.parametrize(
    "f, x, compiled, verdict",
    [
        # a kink at the point: slopes 0 and 3; f has no derivative at 0
        (lambda x: 3 * relu(x), 0.0, 0.0, "pass"),
        (lambda x: 3 * relu(x), 0.0, 3.0, "pass"),
        (lambda x: 3 * relu(x), 0.0, 1.5, "pass"),  # the central difference: (0 + 3) / 2
        (lambda x: 3 * relu(x), 0.0, 7.0, "not compared"),
        # a kink 2e-7 to the left, inside the step: f'(0) = 3, the left difference is polluted
        (lambda x: 3 * relu(x + 2e-7), 0.0, 3.0, "pass"),
        (lambda x: 3 * relu(x + 2e-7), 0.0, 0.0, "fail"),
        (lambda x: 3 * relu(x + 2e-7), 0.0, 6.0, "fail"),
        (lambda x: 3 * relu(x + 1e-8), 0.0, 0.0, "fail"),  # 1% of the step away is not at the point
        # curvature on both sides of a kink at the point: relu(x) * exp(5x) has slopes 0 and 1
        (lambda x: relu(x) * math.exp(5 * x), 0.0, 0.0, "pass"),
        (lambda x: relu(x) * math.exp(5 * x), 0.0, 1.0, "pass"),
        # no kink: smooth and wrong
        (lambda x: math.tanh(x), 0.3, 2 * (1 - math.tanh(0.3) ** 2), "fail"),
        (lambda x: math.tanh(x), 0.3, 1 - math.tanh(0.3) ** 2, "pass"),
    ],
)
def test_add_fd_decides(f, x, compiled, verdict):
    row = fd_row()
    check.add_fd(row, compiled, slope_of(f, x), "d/dx", 0)
    assert {"pass": (False, 1), "fail": (True, 1), "not compared": (False, 0)}[verdict] == (row.failed, row.compared)
    if verdict == "not compared":
        assert row.notes == [
            "p0: d/dx at a kink (one-sided slopes 0 and 3): f has no derivative there and the compiled "
            f"{compiled:g} matches neither slope (the engine takes relu'(0) = 0): not compared with finite differences"
        ]
    if verdict != "fail" and compiled in (0.0, 3.0, 1.0) and x == 0.0:
        assert row.notes[0].endswith("compared with the one-sided difference it matches")
