"""The array ops' derivative rules, checked numerically: one case per op and shape pattern.

Each case builds `out = sum(op(inputs) * S)` by hand on the IR (`S` a fixed
random array, so the incoming adjoint is not all ones), differentiates it
with `gradgen.autodiff.grad`, optimises it with the verifier on, and checks
every input's gradient -- through the IR interpreter and through emitted
NumPy code -- against `torch.autograd.grad` in float64 (rtol 1e-12) and
central finite differences (rtol 1e-6).  Inputs with a first axis "B" are
batched: the same compiled graph is run with B = 1 and B = 5.  Elementwise
cases with broadcasting check that reverse mode sums a contribution down
to its argument's shape.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

from gradgen.autodiff.reverse import grad
from gradgen.backends import numpy as numpy_
from gradgen.backends.module import module_source
from gradgen.backends.base import emit_function
from gradgen.ir.graph import Builder, Origin
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import Op
from gradgen.ir.verify import verify
from gradgen.passes import optimize


@dataclass(frozen=True)
class ArrayCase:
    name: str
    shapes: tuple  # one shape per input ("B" first for batched)
    build: Callable  # (builder, input ids) -> result id
    torch_fn: Callable  # the same on float64 tensors


def _op(op, attr=None):
    return lambda b, xs: b.add(op, xs, attr)


ARRAY_CASES: dict[Op, list[ArrayCase]] = {
    Op.MATMUL: [
        ArrayCase("matrix@matrix", ((3, 4), (4, 2)), _op(Op.MATMUL), lambda a, c: a @ c),
        ArrayCase("vector@matrix", ((4,), (4, 2)), _op(Op.MATMUL), lambda a, c: a @ c),
        ArrayCase("matrix@vector", ((3, 4), (4,)), _op(Op.MATMUL), lambda a, c: a @ c),
        ArrayCase("vector@vector", ((4,), (4,)), _op(Op.MATMUL), lambda a, c: a @ c),
        ArrayCase("batch@matrix.T", (("B", 4), (2, 4)),
                  lambda b, xs: b.add(Op.MATMUL, (xs[0], b.add(Op.TRANSPOSE, (xs[1],)))), lambda a, c: a @ c.T),
    ],
    Op.TRANSPOSE: [ArrayCase("2-D", ((3, 4),), _op(Op.TRANSPOSE), lambda a: a.T)],
    Op.SUM: [
        ArrayCase("axis 0", ((3, 4),), _op(Op.SUM, (0,)), lambda a: a.sum(0)),
        ArrayCase("axis 1", ((3, 4),), _op(Op.SUM, (1,)), lambda a: a.sum(1)),
        ArrayCase("all", ((3, 4),), _op(Op.SUM, (0, 1)), lambda a: a.sum()),
        ArrayCase("batch axis", (("B", 3),), _op(Op.SUM, (0,)), lambda a: a.sum(0)),
        ArrayCase("per example", (("B", 3),), _op(Op.SUM, (1,)), lambda a: a.sum(1)),
    ],
    Op.EXPAND: [
        ArrayCase("new last axis", ((3,),), _op(Op.EXPAND, (1,)), lambda a: a[:, None]),
        ArrayCase("new first axis", ((3,),), _op(Op.EXPAND, (0,)), lambda a: a[None]),
        ArrayCase("per example", (("B",),), _op(Op.EXPAND, (1,)), lambda a: a[:, None]),
    ],
    Op.BCAST: [
        ArrayCase("scalar", ((),), _op(Op.BCAST, (3, 4)), lambda a: a.expand(3, 4)),
        ArrayCase("rows", ((4,),), _op(Op.BCAST, (3, 4)), lambda a: a.expand(3, 4)),
    ],
    Op.ELEM: [
        ArrayCase("row", ((3, 4),), _op(Op.ELEM, (1,)), lambda a: a[1]),
        ArrayCase("element", ((3, 4),), _op(Op.ELEM, (1, 2)), lambda a: a[1, 2]),
        ArrayCase("column of a batch", (("B", 3),), _op(Op.ELEM, (2,)), lambda a: a[:, 2]),
        ArrayCase("two reads of one array", ((3,),),
                  lambda b, xs: b.add(Op.MUL, (b.add(Op.ELEM, xs, (0,)), b.add(Op.ELEM, xs, (2,)))),
                  lambda a: a[0] * a[2]),
    ],
    Op.PACK: [
        ArrayCase("full grid", ((), (), (), ()),
                  lambda b, xs: b.add(Op.PACK, xs, (False, (2, 2), ((0, 0), (0, 1), (1, 0), (1, 1)))),
                  lambda *p: torch.stack(p).reshape(2, 2)),
        ArrayCase("with holes", ((), ()),
                  lambda b, xs: b.add(Op.PACK, xs, (False, (3,), ((0,), (2,)))),
                  lambda p, q: torch.stack([p, torch.zeros((), dtype=torch.float64), q])),
        ArrayCase("batched pieces", (("B",), ("B",)),
                  lambda b, xs: b.add(Op.PACK, xs, (True, (2,), ((0,), (1,)))),
                  lambda p, q: torch.stack([p, q], dim=1)),
    ],
    # elementwise ops broadcast: reverse mode sums the contribution to each argument's shape
    Op.ADD: [
        ArrayCase("matrix + row", ((3, 4), (4,)), _op(Op.ADD), lambda a, c: a + c),
        ArrayCase("batch + scalar", (("B", 3), ()), _op(Op.ADD), lambda a, c: a + c),
    ],
    Op.MUL: [
        ArrayCase("batch * row", (("B", 3), (3,)), _op(Op.MUL), lambda a, c: a * c),
        ArrayCase("column * row", ((3, 1), (4,)), _op(Op.MUL), lambda a, c: a * c),
    ],
    # the unary ops added through the registry, on a batch (NumPy spellings np.sin, np.cos, np.abs)
    Op.SIN: [ArrayCase("batch", (("B", 3),), _op(Op.SIN), torch.sin)],
    Op.COS: [ArrayCase("batch", (("B", 3),), _op(Op.COS), torch.cos)],
    Op.ABS: [ArrayCase("batch", (("B", 3),), _op(Op.ABS), torch.abs)],
}

CASES = [pytest.param(op, case, id=f"{op.value}-{case.name}") for op, cs in ARRAY_CASES.items() for case in cs]


def _concrete(shape, B):
    return tuple(B if d == "B" else d for d in shape)


def build(case: ArrayCase):
    b = Builder("f")
    names = [f"x{i}" for i in range(len(case.shapes))]
    xs = [b.add(Op.INPUT, (), name=n, origin=Origin("param", n), shape=tuple(s)) for n, s in zip(names, case.shapes)]
    r = case.build(b, xs)
    s = b.add(Op.INPUT, (), name="s", origin=Origin("arg", "s"), shape=b.nodes[r].shape)
    prod = b.add(Op.MUL, (r, s))
    axes = tuple(range(len(b.nodes[prod].shape)))
    out = b.add(Op.SUM, (prod,), axes) if axes else prod
    fwd = verify(b.build(xs + [s], [("value", out)]))
    g = optimize(verify(grad(fwd, wrt=xs)), check=True)
    return fwd, g


def emitted(g):
    e = emit_function(g, "f_grad", "grad", "Test.", numpy_.NUMPY)
    text = module_source("test_model.py", None, [e], ["f_grad"])
    module = types.ModuleType("emitted")
    exec(compile(text, "<emitted>", "exec"), module.__dict__)
    return module.f_grad, text


@pytest.mark.parametrize("op,case", CASES)
def test_array_rule(op, case):
    """The rule's gradient equals torch's and finite differences, through interp and emitted code."""
    fwd, g = build(case)
    f_grad, text = emitted(g)
    rng = np.random.default_rng(0)
    for B in (1, 5):
        xs = [rng.standard_normal(_concrete(s, B)) for s in case.shapes]
        if case.name == "with holes" or not case.shapes[0]:
            xs = [np.float64(x) if np.ndim(x) == 0 else x for x in xs]
        ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
        r = case.torch_fn(*ts)
        s = rng.standard_normal(tuple(r.shape))
        (r * torch.tensor(s)).sum().backward()
        want = [t.grad.numpy() for t in ts]
        outs = evaluate(g, xs + [s])
        got_interp = [outs[f"grad:x{i}"] for i in range(len(xs))]
        value, got_emitted = f_grad(*xs, s)
        assert np.allclose(value, (r.detach().numpy() * s).sum(), rtol=1e-12, atol=1e-12)
        for i, w in enumerate(want):
            for got in (got_interp[i], got_emitted[i]):
                assert np.shape(got) == w.shape, (i, np.shape(got), w.shape, text)
                np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-12, err_msg=text)
        # finite differences of the forward graph along a random direction
        for i, x in enumerate(xs):
            t = rng.standard_normal(np.shape(x))
            h = 1e-6
            up = evaluate(fwd, xs[:i] + [x + h * t] + xs[i + 1 :] + [s])["value"]
            down = evaluate(fwd, xs[:i] + [x - h * t] + xs[i + 1 :] + [s])["value"]
            fd = (up - down) / (2 * h)
            assert abs(fd - np.sum(want[i] * t)) <= 1e-6 * max(1.0, abs(fd))


def test_pack_pieces_that_overlap_add_up():
    """A row and its own elements packed into one array (reverse mode gathering `W[0]` and `W[0, j]`
    reads) add, through the interpreter and emitted code; assigning them lost the row's gradient."""
    b = Builder("f")
    row = b.add(Op.INPUT, (), name="r", origin=Origin("arg", "r"), shape=(3,))
    e0 = b.add(Op.INPUT, (), name="e", origin=Origin("arg", "e"))
    packed = b.add(Op.PACK, (row, e0, e0), (False, (1, 3), ((0,), (0, 0), (0, 2))))
    out = b.add(Op.SUM, (b.add(Op.MUL, (packed, packed)),), (0, 1))
    g = verify(b.build([row, e0], [("value", out)]))
    r, e = np.array([1.0, 2.0, 3.0]), 0.5
    want = np.array([[1.5, 2.0, 3.5]])
    assert evaluate(g, [r, e])["value"] == pytest.approx(float((want * want).sum()))
    module_text = module_source(
        "test_model.py",
        None,
        [emit_function(g, "f", "value", "Test.", numpy_.NUMPY)],
        ["f"],
    )
    ns: dict = {}
    exec(compile(module_text, "<emitted>", "exec"), ns)
    assert ns["f"](r, e) == pytest.approx(float((want * want).sum()))
