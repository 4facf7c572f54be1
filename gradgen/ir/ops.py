"""The closed set of IR ops and the facts each one carries.

`OPS[op]` says how many arguments the op takes, what its attribute means
(the exponent of `pow`, the value of `const`), and its float semantics
(`evaluate`), which the IR interpreter and constant folding use.  The
emitters have their own tables (op -> format) and a test checks every op
against this one.

Forward traces use `input const add sub mul neg pow exp log tanh relu
sigmoid`; derivative rules may also use `div` and `step`, and reverse mode
uses `copy` to give an adjoint its own name where a rule passes a gradient
through unchanged (the `add` rule).

Array ops (shapes in `gradgen.ir.shapes`; the elementwise ops above
broadcast like NumPy):

* `elem x [i, j]` -- an element (or a row) of an array: the index covers the
  leading non-batch axes; a batched array keeps its batch axis;
* `pack a b ... [shape, indices]` -- zeros plus each piece at its index: the
  inverse of `elem`, and its reverse (a scatter-add: pieces whose indices
  overlap, a row `W[0]` and its elements `W[0, j]`, add up);
* `sum x [axes]`, `expand x [axes]` (insert size-1 axes), `bcast x [shape]`;
* `matmul a b` (NumPy's `@` on 1-D/2-D operands), `transpose x` (2-D);
* `batch` -- the batch size `B`, the length of the symbolic first axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable

import numpy as np

from gradgen import mathfn


class Op(str, Enum):
    INPUT = "input"
    CONST = "const"
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    NEG = "neg"
    POW = "pow"
    EXP = "exp"
    LOG = "log"
    TANH = "tanh"
    RELU = "relu"
    SIGMOID = "sigmoid"
    STEP = "step"
    COPY = "copy"
    ELEM = "elem"
    PACK = "pack"
    SUM = "sum"
    EXPAND = "expand"
    BCAST = "bcast"
    MATMUL = "matmul"
    TRANSPOSE = "transpose"
    BATCH = "batch"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class OpInfo:
    arity: int  # -1: any number of arguments (pack)
    attr: str | None  # None, "value" (const), "exponent" (pow), "index", "axes", "shape", "layout"
    evaluate: Callable | None  # (*args, attr) -> float; None for input/const/batch
    differentiable: bool = True
    array: Callable | None = None  # (*args, attr) -> ndarray: semantics on NumPy arrays
    elementwise: bool = False


def _pow(x, k):
    return x**k


def _ew(arity, fn, array, attr=None):
    return OpInfo(arity, attr, fn, array=array, elementwise=True)


_same2 = (lambda a, b, _: a + b, lambda a, b, _: a - b, lambda a, b, _: a * b, lambda a, b, _: a / b)

OPS: dict[Op, OpInfo] = {
    Op.INPUT: OpInfo(0, None, None, differentiable=False),
    Op.CONST: OpInfo(0, "value", None, differentiable=False),
    Op.ADD: _ew(2, _same2[0], _same2[0]),
    Op.SUB: _ew(2, _same2[1], _same2[1]),
    Op.MUL: _ew(2, _same2[2], _same2[2]),
    Op.DIV: _ew(2, _same2[3], _same2[3]),
    Op.NEG: _ew(1, lambda a, _: -a, lambda a, _: -a),
    Op.POW: _ew(1, lambda a, k: _pow(a, k), lambda a, k: a**k, "exponent"),
    Op.EXP: _ew(1, lambda a, _: math.exp(a), lambda a, _: np.exp(a)),
    Op.LOG: _ew(1, lambda a, _: math.log(a), lambda a, _: np.log(a)),
    Op.TANH: _ew(1, lambda a, _: math.tanh(a), lambda a, _: np.tanh(a)),
    Op.RELU: _ew(1, lambda a, _: mathfn.relu(a), lambda a, _: np.maximum(a, 0.0)),
    Op.SIGMOID: _ew(1, lambda a, _: mathfn.sigmoid(a), lambda a, _: mathfn.np_sigmoid(a)),
    Op.STEP: _ew(1, lambda a, _: mathfn.step(a), lambda a, _: (a > 0.0).astype(float)),
    Op.COPY: _ew(1, lambda a, _: a, lambda a, _: a),
    # these depend on the node's shape (batched or not): see gradgen.ir.interp
    Op.ELEM: OpInfo(1, "index", None),
    Op.PACK: OpInfo(-1, "layout", None),
    Op.SUM: OpInfo(1, "axes", None),
    Op.EXPAND: OpInfo(1, "axes", None),
    Op.BCAST: OpInfo(1, "shape", None),
    Op.MATMUL: OpInfo(2, None, None, array=lambda a, b, _: a @ b),
    Op.TRANSPOSE: OpInfo(1, None, None, array=lambda a, _: a.T),
    Op.BATCH: OpInfo(0, None, None, differentiable=False),
}

assert set(OPS) == set(Op), "every op needs an OPS entry"


def evaluate(op: Op, args, attr=None):
    """Apply `op` to float arguments with the IR's semantics."""
    return OPS[op].evaluate(*args, attr)
