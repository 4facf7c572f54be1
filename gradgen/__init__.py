"""gradgen: a code-generating automatic-differentiation compiler for micrograd-style Python.

Pipeline (one module per box; see docs/architecture.md):

    model.py --loader--> exported functions --trace--> IR (forward)
        --autodiff (rules table)--> IR (forward + backward)
        --passes (fold, cse, dce)--> IR --codegen (scalar emitter, module writer)--> generated/<stem>.py

* `engine.Value`, `nn`: the interpreted reference (micrograd compatible).
* `ir`: ops (closed set), graph + builder, printer, verifier, interpreter.
* `trace`: Value code -> IR, once; `rules`: the derivative table;
  `autodiff`: reverse mode as an IR transform; `passes`: Graph -> Graph.
* `codegen`: names, the scalar emitter, the module writer.
* `api`: `compile_function`, `compile_file`; `cli`: `gradgen compile | ir`.
"""

__version__ = "0.1.0"

from gradgen.engine import Value  # noqa: E402
from gradgen.errors import GradgenError  # noqa: E402
from gradgen.export import export  # noqa: E402
from gradgen import nn  # noqa: E402,F401
from gradgen import params  # noqa: E402,F401
from gradgen.batch import each, mean  # noqa: E402
from gradgen import optim  # noqa: E402,F401
from gradgen.optim import adam, sgd  # noqa: E402


def compile_function(*fns, check=False, rerolling=True, backend="numpy"):
    """Compile functions of `Value`s in-process; returns a `CompiledModule` (`backend`: "numpy" or "torch")."""
    from gradgen.api import compile_function as _cf

    return _cf(*fns, check=check, rerolling=rerolling, backend=backend)


def compile_file(path, out_dir=None, check=False, rerolling=True, backend="numpy"):
    """Compile a model file; with `out_dir`, write `out_dir/<stem>.py` (`backend`: "numpy" or "torch")."""
    from gradgen.api import compile_file as _cf

    return _cf(path, out_dir, check=check, rerolling=rerolling, backend=backend)


__all__ = [
    "Value",
    "GradgenError",
    "export",
    "nn",
    "params",
    "mean",
    "each",
    "optim",
    "sgd",
    "adam",
    "compile_function",
    "compile_file",
    "__version__",
]
