"""The Python backend: an IR graph of floats -> one flat Python function on floats.

Operators come from `FORMATS` (op -> template + precedence), read through
`PythonBackend.spelling` (the op registry's "python" spelling once it has one);
parentheses are added only where Python's precedence needs them, and operands of
`**` are written the way black writes them, so black leaves the output unchanged.
Scalar functions take no argument check: they compute on whatever numbers they get,
like the engine.  Which nodes get lines and names: gradgen.backends.schedule.
"""

from __future__ import annotations

import inspect

from gradgen import mathfn
from gradgen.backends.base import ADD, ATOM, LINE, MUL, POW, UNARY, Backend, Emitted, Format, emit_function, literal
from gradgen.ir.ops import Op

__all__ = ["ATOM", "POW", "UNARY", "MUL", "ADD", "LINE", "Format", "FORMATS", "PythonBackend", "PYTHON"]
__all__ += ["literal", "emit_function", "Emitted", "HELPERS"]



def _sigmoid_source():
    return inspect.getsource(mathfn.sigmoid).replace("def sigmoid(", "def _sigmoid(", 1), ("math",)


def spelling(op: Op) -> Format | None:
    """How this backend writes `op` (the op registry's "python" spelling when it has one), or None."""
    try:
        return PYTHON.spelling(op)
    except KeyError:
        return None


class PythonBackend(Backend):
    name = "python"
    imports = {"math": "import math"}
    module_names = reserved = frozenset({"math", "_sigmoid"})
    helpers = {"_sigmoid": _sigmoid_source}
    inplace_ok = frozenset(Op)  # a float is a value: `g += c` rebinds the name


PYTHON = PythonBackend()
FORMATS: dict[Op, Format] = {op: spelling(op) for op in Op if spelling(op) is not None}
HELPERS = {op: f.helper for op, f in FORMATS.items() if getattr(f, "helper", None)}
