"""Backends: a scheduled IR graph -> the source of one function, and the module around it.

* `base`: the `Backend` interface and the shared renderer (`emit_function`);
* `schedule`: which nodes get lines, their names, in-place updates (backend-independent);
* `python`, `numpy`, `torch`: the backends; `module`: header, imports, helpers, black, writing.

`backend_for(name, graph)` picks the backend for one function: the "numpy" choice
(the default) is the Python backend for functions of floats and the NumPy backend for
array functions; "torch" is the torch backend for both; "numba" the NumPy code compiled with `@njit` for both.
"""

from __future__ import annotations

from gradgen.errors import GradgenError

DEFAULT = "numpy"
NAMES = ("numpy", "torch", "numba")


def backend_for(name: str, graph):
    """The `Backend` that emits `graph` under the backend choice `name`."""
    if name == "numpy":
        from gradgen.backends.numpy import NUMPY, is_array_graph
        from gradgen.backends.python import PYTHON

        return NUMPY if is_array_graph(graph) else PYTHON
    if name == "python":
        from gradgen.backends.python import PYTHON

        return PYTHON
    if name == "torch":
        from gradgen.backends.torch import TORCH

        return TORCH
    if name == "numba":
        from gradgen.backends.numba import NUMBA

        return NUMBA
    raise GradgenError(f"unknown backend {name!r}: choose one of {', '.join(NAMES)}")


def module_level_names() -> frozenset:
    """Every name some backend's modules define or import at module level (an exported function may not take one)."""
    from gradgen.backends.numba import NUMBA
    from gradgen.backends.numpy import NUMPY
    from gradgen.backends.python import PYTHON
    from gradgen.backends.torch import TORCH

    out: set[str] = set()
    for b in (PYTHON, NUMPY, TORCH, NUMBA):
        out |= set(b.helpers) | set(b.imports) | b.module_names
    return frozenset(out)
