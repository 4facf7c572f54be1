"""`gradgen check` grades the learner's own engine (gradgen/tools/check/engine.py).

For a model written with a foreign micrograd-style Value class (the
lecture's, typed in the model file: tests/engines/lecture.py; micrograd's
package), the reference is the user's own `backward()`: it is compared with
PyTorch float64 and finite differences of the user's forward, and every op's
`_backward` is graded alone against the op's local derivative.  A planted
bug in one `_backward` must fail the check with one verdict naming the op
and the line of that `_backward` in the model file.
"""

import math
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from gradgen.cli import main
from gradgen.frontend.loader import load_model
from gradgen.tools import check
from gradgen.tools.check import engine as grading

LECTURE = Path(__file__).parent / "engines" / "lecture.py"


def run(capsys, *argv):
    rc = main(["check", *map(str, argv)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def rows(out: str) -> dict[str, str]:
    """{comparison: PASS/FAIL/SKIP} of the printed tables (the last table wins)."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"  ((?:compiled|your backward\(\)) [^ ].*?)  +.*\b(PASS|FAIL|SKIP)\b", line)
        if m:
            found[m[1].strip()] = m[2]
    return found


def plant(tmp_path, old: str, new: str, count: int = 1) -> Path:
    text = LECTURE.read_text()
    assert text.count(old) == count, old
    path = tmp_path / "model.py"
    path.write_text(text.replace(old, new))
    return path


def backward_line(path: Path, method: str) -> int:
    """The line of `def _backward():` inside `method` of the model file."""
    lines = path.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip().startswith(f"def {method}("))
    return next(i for i in range(start, len(lines)) if lines[i].strip() == "def _backward():") + 1


def method_line(path: Path, method: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, l in enumerate(lines) if l.strip().startswith(f"def {method}(")) + 1


# -- the correct class passes -----------------------------------------------------------


def test_the_lecture_class_passes(capsys):
    rc, out, err = run(capsys, LECTURE, "--points", "2")
    assert rc == 0, out + err
    assert out.splitlines()[-1] == "check passed: 3 functions"
    assert "neuron(x1, x2, w1, w2, b) on your Value class (" in out
    assert "FAIL" not in out


def test_the_neuron_rows_compare_your_backward_with_compiled_torch_and_fd(capsys):
    rc, out, err = run(capsys, LECTURE, "--function", "neuron", "--points", "1")
    assert rc == 0, out + err
    assert rows(out) == {
        "compiled vs your backward()": "PASS",
        "compiled vs torch": "PASS",
        "compiled vs finite diff": "PASS",
        "your backward() vs torch": "PASS",
        "your backward() vs finite diff": "PASS",
        "your backward() per op": "PASS",
    }


def test_the_reference_is_the_users_own_backward():
    """At the lecture's point: o = 0.7071..., and the grads are those of the class's backward()
    (the lecture's numbers: dw1 = 1.0, dx1 = -1.5, dx2 = 0.5, dw2 = 0, db = 0.5)."""
    mod, fns = load_model(str(LECTURE))
    fn = next(f for f in fns if f.__name__ == "neuron")
    eng = grading.find_engine(fn)
    assert eng is not None and eng.cls is mod.Value
    layout = grading.engine_layout(fn, eng)
    value, grads = grading.user_grad(eng)(fn, (2.0, 0.0, -3.0, 1.0, 6.8813735870195432), layout)
    assert value == pytest.approx(math.sqrt(0.5), rel=1e-12)
    assert grads == pytest.approx((-1.5, 0.5, 1.0, 0.0, 0.5), rel=1e-9, abs=1e-12)


def test_the_mlp_parameters_get_your_grads():
    """The MLP loss: its 41 parameters are found (W0 (4, 3) ... b2 (1,)) and their grads are the
    class's own .grad after backward()."""
    mod, fns = load_model(str(LECTURE))
    fn = next(f for f in fns if f.__name__ == "mlp_loss")
    eng = grading.find_engine(fn)
    layout = grading.engine_layout(fn, eng)
    assert layout.params == ["W0", "b0", "W1", "b1", "W2", "b2"]
    _, grads = grading.user_grad(eng)(fn, (2.0, 3.0, -1.0), layout)
    for p in mod.mlp.parameters():
        p.grad = 0.0
    xs = [mod.Value(2.0), mod.Value(3.0), mod.Value(-1.0)]
    out = (mod.mlp(xs) - 1.0) ** 2
    out.backward()
    assert grads[0][2, 1] == mod.mlp.layers[0].neurons[2].w[1].grad
    assert grads[5][0] == mod.mlp.layers[2].neurons[0].b.grad
    assert grads[-1] == xs[2].grad and sum(a.size for a in grads[:6]) == 41


def test_gradgen_models_are_not_foreign():
    _, (fn,) = load_model(str(Path(__file__).parent / "learners" / "global_neuron.py"))
    assert grading.find_engine(fn) is None


# -- planted bugs fail, naming the op and its line -----------------------------------------

BUGS = {
    # name: (old, new, count, method, function, what the verdict says)
    "tanh": (
        "self.grad += (1 - t**2) * out.grad",
        "self.grad += (1 - t) * out.grad",
        1,
        "tanh",
        "neuron",
        "tanh's backward in your Value class disagrees (d out/d x = 0.292893 expected 0.5, at x = 0.881374)",
    ),
    "mul": (
        "self.grad += other.data * out.grad",
        "self.grad += self.data * out.grad",
        1,
        "__mul__",
        "neuron",
        "mul ('*')'s backward in your Value class disagrees (d out/d ",
    ),
    "assign": (
        "self.grad += out.grad * 1.0\n            other.grad += out.grad * 1.0",
        "self.grad = out.grad * 1.0\n            other.grad = out.grad * 1.0",
        1,
        "__add__",
        "ops",
        "add ('+')'s backward in your Value class overwrites the child's grad: use += not =",
    ),
    "pow": (
        "self.grad += other * (self.data ** (other - 1)) * out.grad",
        "self.grad += other * (self.data ** other) * out.grad",
        1,
        "__pow__",
        "ops",
        "pow ('**-1')'s backward in your Value class disagrees (d out/d x = -0.390244 expected -0.15229, at x = 2.5625)",
    ),
    "exp": (
        "self.grad += out.data * out.grad",
        "self.grad += x * out.grad",
        1,
        "exp",
        "ops",
        "exp's backward in your Value class disagrees (d out/d x = ",
    ),
    "no_out_grad": (
        "self.grad += (1 - t**2) * out.grad",
        "self.grad += (1 - t**2)",
        1,
        "tanh",
        "neuron",
        "tanh's backward in your Value class ignores out.grad (multiply the local derivative 0.5 by out.grad)",
    ),
}


@pytest.mark.parametrize("name", sorted(BUGS))
def test_a_planted_wrong_backward_fails_naming_the_op_and_line(capsys, tmp_path, name):
    old, new, count, method, function, says = BUGS[name]
    model = plant(tmp_path, old, new, count)
    rc, out, err = run(capsys, model, "--function", function, "--points", "2")
    assert rc == 1, out + err
    verdicts = [l for l in out.splitlines() if l.startswith(f"FAIL {function}: ") and "Value class" in l]
    assert len(verdicts) == 1, out
    assert says in verdicts[0]
    assert verdicts[0].startswith(f"FAIL {function}: {says.split(chr(39))[0]}")
    assert f"model.py:{backward_line(model, method)} [" in verdicts[0]
    assert rows(out)["your backward() per op"] == "FAIL"
    assert out.splitlines()[-1] == f"check FAILED for {function} (1 of 1 function)"


def test_a_wrong_mul_also_fails_against_torch_and_finite_differences(capsys, tmp_path):
    old, new, count, *_ = BUGS["mul"]
    rc, out, _ = run(
        capsys,
        plant(tmp_path, old, new, count),
        "--function",
        "neuron",
        "--points",
        "1",
    )
    assert rc == 1
    got = rows(out)
    assert got["your backward() vs torch"] == "FAIL" and got["your backward() vs finite diff"] == "FAIL"
    assert got["compiled vs your backward()"] == "FAIL"
    assert got["compiled vs torch"] == "PASS"  # the compiled code is right: the class is wrong


def test_a_missing_backward_names_the_method(capsys, tmp_path):
    """exp without `out._backward = _backward`: its children's grads never change."""
    text = LECTURE.read_text()
    start = text.index("    def exp(self):")
    end = text.index("        out._backward = _backward", start)
    path = tmp_path / "model.py"
    path.write_text(text[:end] + "        pass" + text[end + len("        out._backward = _backward") :])
    rc, out, _ = run(capsys, path, "--function", "ops", "--points", "1")
    assert rc == 1
    (verdict,) = [l for l in out.splitlines() if l.startswith("FAIL ops: exp")]
    assert "exp has no backward in your Value class: its _backward leaves the children's grads unchanged" in verdict
    assert f"model.py:{method_line(path, 'exp')} [" in verdict


def test_a_wrong_forward_is_named_too(capsys, tmp_path):
    model = plant(
        tmp_path,
        "out = Value(math.exp(x), (self, ), 'exp')",
        "out = Value(math.exp(x) + 1, (self, ), 'exp')",
    )
    rc, out, _ = run(capsys, model, "--function", "ops", "--at", "x=0.5,y=-1.25")
    assert rc == 1
    assert (
        "FAIL ops: exp's forward in your Value class disagrees (exp at x = -0.625 gives 1.53526, expected 0.535261)"
        in out
    )


# -- per-op grading on a graph built by hand ----------------------------------------------


def test_grade_node_restores_every_grad_and_counts_a_plus_a_twice():
    mod, fns = load_model(str(LECTURE))
    eng = grading.find_engine(fns[0])
    a = mod.Value(0.5)
    a.grad = 3.0
    out = a + a
    out.grad = -2.0
    g = grading.OpGrade(check.Row("per op", 1e-7, 1e-12))
    grading.grade_graph(out, eng.cls, 0, g)
    assert (a.grad, out.grad) == (3.0, -2.0)
    assert g.row.compared == 1 + 2 and not g.row.failed and not g.verdicts  # the forward, two trials
    # the same graph with `=`: caught though a's two contributions are one call
    sq = a * a

    def wrong():
        a.grad = 2 * a.data * sq.grad

    sq._backward = wrong
    grading.grade_graph(sq, eng.cls, 0, g)
    assert "overwrites the child's grad" in g.verdicts[grading.Op.MUL][0]


# -- micrograd's own package ---------------------------------------------------------------

MICROGRAD = """
import random

import gradgen
from micrograd.engine import Value
from micrograd.nn import MLP

random.seed(1337)
model = MLP(2, [4, 4, 1])


@gradgen.export(example=dict(x1=0.5, x2=-1.5))
def loss(x1, x2):
    return (1 + -model([x1, x2])).relu() + model([x2, x1]) ** 2


@gradgen.export(example=dict(x=0.5, y=-1.5))
def f(x, y):
    return (x * y + x).relu() * y - x / y
"""


def test_micrograds_package_passes(capsys, tmp_path):
    pytest.importorskip("micrograd")
    path = tmp_path / "mg.py"
    path.write_text(textwrap.dedent(MICROGRAD))
    rc, out, err = run(capsys, path, "--points", "3")
    assert rc == 0, out + err
    assert "loss(x1, x2) with parameters W0, b0, W1, b1, W2, b2" in out or "loss(x1, x2) on your Value class" in out
    assert rows(out)["your backward() per op"] == "PASS"
    assert out.splitlines()[-1] == "check passed: 2 functions"


def test_micrograds_relu_planted_wrong_fails(capsys, tmp_path, monkeypatch):
    """micrograd's relu with `>=` in place of `>`... is right off the kink; a relu whose backward
    passes the gradient through unchanged (an identity) is wrong wherever the input is negative.
    """
    mg = pytest.importorskip("micrograd.engine")

    def relu(self):
        out = mg.Value(0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward():
            self.grad += out.grad

        out._backward = _backward
        return out

    monkeypatch.setattr(mg.Value, "relu", relu)
    path = tmp_path / "mg.py"
    path.write_text(textwrap.dedent(MICROGRAD))
    rc, out, _ = run(capsys, path, "--function", "f", "--at", "x=0.5,y=-1.5")
    assert rc == 1
    (verdict,) = [l for l in out.splitlines() if l.startswith("FAIL f: ReLU")]
    assert "ReLU's backward in your Value class disagrees (d out/d x = 1 expected 0, at x = -0.25)" in verdict
    assert f"test_grade_engine.py:{relu.__code__.co_firstlineno + 3} [" in verdict


# -- a fork: its own ops, non-commutative ones among them ----------------------------------

FORK = '''
import math

import gradgen


class V:
    """A fork of the lecture's class: subtraction, division, log and sigmoid as ops of their own."""

    def __init__(self, data, _children=(), _op=""):
        self.data, self.grad = data, 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def _lift(self, other):
        return other if isinstance(other, V) else V(other)

    def __add__(self, other):
        other = self._lift(other)
        out = V(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __sub__(self, other):
        other = self._lift(other)
        out = V(self.data - other.data, (self, other), "-")

        def _backward():
            self.grad += out.grad
            other.grad -= out.grad

        out._backward = _backward
        return out

    def __truediv__(self, other):
        other = self._lift(other)
        out = V(self.data / other.data, (self, other), "/")

        def _backward():
            self.grad += out.grad / other.data
            other.grad -= out.grad * self.data / other.data**2

        out._backward = _backward
        return out

    def log(self):
        out = V(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        out = V(s, (self,), "sigmoid")

        def _backward():
            self.grad += s * (1 - s) * out.grad

        out._backward = _backward
        return out

    def backward(self):
        topo, seen, stack = [], set(), [(self, False)]
        while stack:
            v, done = stack.pop()
            if done:
                topo.append(v)
            elif v not in seen:
                seen.add(v)
                stack.append((v, True))
                stack.extend((c, False) for c in v._prev)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


@gradgen.export(example=dict(x=0.75, y=2.5))
def f(x, y):
    return ((x - y) / (y + 1.0)).sigmoid() + (y / x).log() - (x - x)
'''


def test_a_fork_with_non_commutative_ops_passes_and_a_wrong_sub_fails(capsys, tmp_path):
    """`-` and `/` are not symmetric: their children come as a set, and the grader tells which is
    which from the forward; a sub whose backward adds to both children fails naming `-` and its line."""
    path = tmp_path / "fork.py"
    path.write_text(FORK)
    rc, out, err = run(capsys, path, "--at", "x=0.75,y=2.5", "--at", "x=1.5,y=0.5")
    assert rc == 0, out + err
    assert rows(out)["your backward() per op"] == "PASS"
    path.write_text(FORK.replace("other.grad -= out.grad\n", "other.grad += out.grad\n"))
    rc, out, _ = run(capsys, path, "--at", "x=0.75,y=2.5")
    assert rc == 1
    (verdict,) = [l for l in out.splitlines() if l.startswith("FAIL f: ") and "Value class" in l]
    # the first wrong node is x - x (one child in the set): its grad must not change, it gains 2
    says = (
        "FAIL f: sub ('-')'s backward in your Value class disagrees (d out/d a = 2 expected 0, at a = 0.75, b = 0.75)"
    )
    assert verdict.startswith(says)
    assert f"fork.py:{FORK.splitlines().index('    def __sub__(self, other):') + 5} [" in verdict


DEMO = """
import random

import numpy as np
from micrograd.engine import Value
from micrograd.nn import MLP

import gradgen

random.seed(1337)
model = MLP(2, [8, 1])


def svm_loss(x, yi):
    score = model(list(map(Value, x)))
    return (1 + -yi * score).relu()


def score_of(x):
    return model(list(map(Value, x)))


@gradgen.export(example=dict(X=np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5]]), y=np.array([1.0, -1.0, 1.0])))
def loss(X, y):
    return gradgen.mean(svm_loss, X, y) + 1e-4 * sum((p * p for p in model.parameters()))


@gradgen.export(example=dict(X=np.zeros((1, 2))))
def scores(X):
    return gradgen.each(score_of, X)
"""


def test_micrograds_demo_loss_with_gradgen_mean_is_graded_on_data_sets(capsys, tmp_path):
    """micrograd's demo wraps each row itself (`list(map(Value, x))`), so gradgen.mean hands it rows
    of numbers while its backward() is graded; the per-example `scores` has nothing to grade."""
    pytest.importorskip("micrograd")
    path = tmp_path / "demo.py"
    path.write_text(DEMO)
    rc, out, err = run(capsys, path, "--points", "1")
    assert rc == 0, out + err
    assert re.search(r"loss\(X, y\).* on your Value class .*: 2 data sets \(1 example, 1 random\)", out)
    got = rows(out)
    assert got["your backward() vs finite diff"] == "PASS" and got["your backward() per op"] == "PASS"
    assert "scores(X): skipped: per-example values: no gradient" in out
    assert "skipped: your backward() raised" not in out


def test_the_local_derivatives_match_torch():
    """The grader's own table (opgrade.LOCAL) against torch.autograd.grad, float64, on a grid."""
    torch = pytest.importorskip("torch")
    from gradgen.tools.check import opgrade

    unary = {
        grading.Op.NEG: torch.neg,
        grading.Op.EXP: torch.exp,
        grading.Op.LOG: torch.log,
        grading.Op.TANH: torch.tanh,
        grading.Op.RELU: torch.relu,
        grading.Op.SIGMOID: torch.sigmoid,
        grading.Op.ABS: torch.abs,
        grading.Op.SIN: torch.sin,
        grading.Op.COS: torch.cos,
    }
    binary = {
        grading.Op.ADD: torch.add,
        grading.Op.SUB: torch.sub,
        grading.Op.MUL: torch.mul,
        grading.Op.DIV: torch.div,
    }
    assert set(unary) | set(binary) | {grading.Op.POW} == set(opgrade.LOCAL)
    grid = [-1.75, -0.5, 0.25, 1.5, 3.0]
    for op, f in unary.items():
        for x in grid:
            if op is grading.Op.LOG and x <= 0:
                continue
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (want,) = torch.autograd.grad(f(t), t)
            assert opgrade.LOCAL[op](x, None) == pytest.approx((want.item(),), rel=1e-12, abs=1e-15), op
    for op, f in binary.items():
        for a in grid:
            for b in grid:
                ta, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b))
                want = torch.autograd.grad(f(ta, tb), (ta, tb))
                assert opgrade.LOCAL[op](a, b, None) == pytest.approx(tuple(w.item() for w in want), rel=1e-12), op
    for k in (2.0, 3.0, -1.0, 0.5):
        for x in (0.25, 1.5, 3.0):
            t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            (want,) = torch.autograd.grad(t**k, t)
            assert opgrade.LOCAL[grading.Op.POW](x, k) == pytest.approx((want.item(),), rel=1e-12)
