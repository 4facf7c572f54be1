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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable

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

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class OpInfo:
    arity: int
    attr: str | None  # None, "value" (const) or "exponent" (pow)
    evaluate: Callable | None  # (*args, attr) -> float; None for input/const
    differentiable: bool = True


def _pow(x, k):
    return x**k


OPS: dict[Op, OpInfo] = {
    Op.INPUT: OpInfo(0, None, None, differentiable=False),
    Op.CONST: OpInfo(0, "value", None, differentiable=False),
    Op.ADD: OpInfo(2, None, lambda a, b, _: a + b),
    Op.SUB: OpInfo(2, None, lambda a, b, _: a - b),
    Op.MUL: OpInfo(2, None, lambda a, b, _: a * b),
    Op.DIV: OpInfo(2, None, lambda a, b, _: a / b),
    Op.NEG: OpInfo(1, None, lambda a, _: -a),
    Op.POW: OpInfo(1, "exponent", lambda a, k: _pow(a, k)),
    Op.EXP: OpInfo(1, None, lambda a, _: math.exp(a)),
    Op.LOG: OpInfo(1, None, lambda a, _: math.log(a)),
    Op.TANH: OpInfo(1, None, lambda a, _: math.tanh(a)),
    Op.RELU: OpInfo(1, None, lambda a, _: mathfn.relu(a)),
    Op.SIGMOID: OpInfo(1, None, lambda a, _: mathfn.sigmoid(a)),
    Op.STEP: OpInfo(1, None, lambda a, _: mathfn.step(a)),
    Op.COPY: OpInfo(1, None, lambda a, _: a),
}

assert set(OPS) == set(Op), "every op needs an OPS entry"


def evaluate(op: Op, args, attr=None):
    """Apply `op` to float arguments with the IR's semantics."""
    return OPS[op].evaluate(*args, attr)
