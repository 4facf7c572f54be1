"""Helpers shared by the tests: build IR by hand, run emitted code, compare floats."""

from __future__ import annotations

import itertools
import math
import os
import types

from gradgen.backends.module import module_source
from gradgen.backends.base import emit_function
from gradgen.ir.graph import Builder, Graph, Origin
from gradgen.ir.ops import Op


def arg(b: Builder, name: str) -> int:
    """An input node named `name`, as the tracer makes it."""
    return b.add(Op.INPUT, (), name=name, origin=Origin("arg", name))


def run_emitted(graph: Graph, returns: str):
    """Emit `graph` with the scalar emitter, assemble a module (black included), exec it.

    Returns (function, source text).  `returns` is "value" or "grad".
    """
    fname = "f" if returns == "value" else "f_grad"
    emitted = emit_function(graph, fname, returns, "Test function.")
    text = module_source("test_model.py", None, [emitted], [fname])
    module = types.ModuleType("emitted")
    exec(compile(text, "<emitted>", "exec"), module.__dict__)
    return getattr(module, fname), text


def close(a: float, b: float, rel: float, abs_: float | None = None) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel if abs_ is None else abs_)


def same_float(a: float, b: float) -> bool:
    """Bit-for-bit equality (NaN equals NaN; 0.0 and -0.0 compare equal as in ==)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def is_array_function(fn) -> bool:
    """An exported function with array arguments (an MLP on a batch): checked in test_mlp/test_demos."""
    from gradgen.tools.check import is_array_function as check_says

    return check_says(fn)


_files = itertools.count()


def load_function(source: str, directory, stem: str = "model") -> types.FunctionType:
    """exec `source` from a real file in `directory` and return its `f`, so the tracer sees a model file and lines."""
    path = os.path.join(directory, f"{stem}_{next(_files)}.py")
    with open(path, "w") as fh:
        fh.write(source)
    namespace: dict = {"__name__": f"{stem}_model"}
    exec(compile(source, path, "exec"), namespace)
    return namespace["f"]
