"""Foreign micrograd-style engines: what a Value of theirs is, and what its `_op` strings mean.

A learner's engine (micrograd's package, the lecture's class typed along,
a fork) is any class whose objects carry `data` (a number), `_prev` (the
children: a set, tuple or list) and `_op` (a string saying what made it).

    is_engine_value(x)   -> True for such an object (gradgen's own Value too)
    is_foreign_value(x)  -> True for such an object that is not gradgen's Value
    parse_op("**2")      -> (Op.POW, 2.0); parse_op("tanh") -> (Op.TANH, None)
    parse_op("?")        -> None: an op string gradgen does not know

The table is the one place the op strings live: micrograd's ('+', '*',
'**k', 'ReLU'), the lecture's ('tanh', 'exp'), and spellings forks use.
A leaf has `_op == ""`.
"""

from __future__ import annotations

import re

from gradgen.ir.ops import Op

OP_STRINGS: dict[str, Op] = {
    "+": Op.ADD,
    "add": Op.ADD,
    "*": Op.MUL,
    "mul": Op.MUL,
    "-": Op.SUB,
    "sub": Op.SUB,
    "/": Op.DIV,
    "div": Op.DIV,
    "neg": Op.NEG,
    "tanh": Op.TANH,
    "exp": Op.EXP,
    "log": Op.LOG,
    "ReLU": Op.RELU,
    "relu": Op.RELU,
    "sigmoid": Op.SIGMOID,
    "abs": Op.ABS,
    "sin": Op.SIN,
    "cos": Op.COS,
}

_POW = re.compile(r"\s*(?:\*\*|\^|pow)\s*\(?\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*\)?\s*")


def parse_op(op: str) -> tuple[Op, float | None] | None:
    """(IR op, attribute) for an engine's `_op` string; None if gradgen does not know it."""
    if not isinstance(op, str):
        return None
    if op in OP_STRINGS:
        return OP_STRINGS[op], None
    m = _POW.fullmatch(op)
    if m:
        return Op.POW, float(m[1])
    return None


def is_engine_value(x) -> bool:
    """An object of a micrograd-style engine: it has `data`, `_prev` and `_op`."""
    try:
        return hasattr(x, "_prev") and hasattr(x, "_op") and hasattr(x, "data") and not isinstance(x, type)
    except Exception:  # a property that raises: not a Value
        return False


def is_foreign_value(x) -> bool:
    """An engine Value that is not gradgen's own (`gradgen.engine.Value`)."""
    from gradgen.engine import Value

    return not isinstance(x, Value) and is_engine_value(x)
