"""The Python API: compile functions or model files in-process.

    mod = gradgen.compile_function(neuron)      # a CompiledModule
    mod.neuron_grad(2.0, 0.0, -3.0, 1.0, 6.88)  # (value, (g_x1, ...))
    print(mod.source)                           # the generated module's text

`compile_file(path, out_dir)` is what `gradgen compile` runs: it compiles
everything in memory first and writes the module atomically only when all
of it succeeded, so a failed compile never clobbers an existing module.
"""

from __future__ import annotations

import os
import time
import types
from dataclasses import dataclass, field

from gradgen.autodiff import grad
from gradgen.codegen.module import atomic_write, module_source
from gradgen.codegen.scalar import emit_function
from gradgen.errors import GradgenError
from gradgen.ir.graph import Graph
from gradgen.ir.verify import verify
from gradgen.loader import load_model
from gradgen.names import RESERVED
from gradgen.passes import PassStat, optimize
from gradgen.trace import trace


@dataclass
class FunctionIR:
    name: str
    forward: Graph  # traced
    grad: Graph  # reverse mode of forward_opt, before passes
    forward_opt: Graph  # after passes: what `f` computes
    grad_opt: Graph  # after passes: what `f_grad` computes


@dataclass
class CompiledModule:
    source: str  # the generated module's text
    module: types.ModuleType  # that text, executed
    functions: list[FunctionIR]
    stats: list[PassStat] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name):
        return getattr(self.module, name)


def lower(fn, check: bool = False, stats: list | None = None) -> FunctionIR:
    """Trace `fn`, differentiate, and optimise both graphs."""
    fwd = trace(fn)
    if check:
        verify(fwd)
    fwd_opt = optimize(fwd, check=check, stats=stats)
    # differentiate the optimised forward: a value CSE merged accumulates its
    # gradient once, instead of once per copy the trace recorded
    g = grad(fwd_opt)
    if check:
        verify(g)
    return FunctionIR(fn.__name__, fwd, g, fwd_opt, optimize(g, check=check, stats=stats))


def _public_names(fns) -> None:
    names = [f.__name__ for f in fns]
    taken = set(names)
    for f in fns:
        clash = f.__name__ + "_grad"
        if clash in taken:
            raise GradgenError(
                f"exported functions {f.__name__} and {clash} would both define {clash}; rename one",
                f.__code__.co_filename,
                f.__code__.co_firstlineno,
            )
        if f.__name__ in RESERVED or f.__name__ == "_sigmoid":
            raise GradgenError(
                f"an exported function may not be called {f.__name__} (generated code "
                "uses that name); rename it",
                f.__code__.co_filename,
                f.__code__.co_firstlineno,
            )


def build_source(fns, source_path: str, out_dir: str | None = None, check: bool = False):
    """(source text, [FunctionIR], stats, seconds) for the exported functions `fns`."""
    _public_names(fns)
    stats: list[PassStat] = []
    t0 = time.perf_counter()
    irs = [lower(f, check=check, stats=stats) for f in fns]
    t1 = time.perf_counter()
    functions, helpers, summary = [], set(), []
    for ir in irs:
        params = [ir.forward[i].name for i in ir.forward.inputs]
        sig = ", ".join(params)
        f = emit_function(ir.forward_opt, ir.name, params, "value", f"Value of {ir.name}.")
        g = emit_function(
            ir.grad_opt,
            ir.name + "_grad",
            params,
            "grad",
            f"Value of {ir.name} and its gradient, one entry per argument.",
        )
        functions += [f.lines, g.lines]
        helpers |= f.helpers | g.helpers
        summary.append(f"{ir.name}({sig}) -> value")
        summary.append(f"{ir.name}_grad({sig}) -> (value, gradients)")
    t2 = time.perf_counter()
    text = module_source(source_path, out_dir, functions, helpers, summary)
    t3 = time.perf_counter()
    seconds = {"trace+passes": t1 - t0, "emit": t2 - t1, "black": t3 - t2}
    return text, irs, stats, seconds


def load_source(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(text, f"<gradgen:{name}>", "exec"), module.__dict__)
    return module


def compile_function(*fns, check: bool = False) -> CompiledModule:
    """Compile one or more functions of `Value`s in-process."""
    if not fns:
        raise TypeError("compile_function needs at least one function")
    path = fns[0].__code__.co_filename
    text, irs, stats, seconds = build_source(list(fns), path, check=check)
    return CompiledModule(text, load_source(text, fns[0].__name__), irs, stats, seconds)


def output_path(path: str, out_dir: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(out_dir, f"{stem}.py")


def compile_file(path: str, out_dir: str | None = None, check: bool = False, write: bool = True) -> CompiledModule:
    """Compile the model file `path`; with `out_dir`, write `out_dir/<stem>.py` atomically."""
    _, fns = load_model(path)
    text, irs, stats, seconds = build_source(fns, path, out_dir, check=check)
    stem = os.path.splitext(os.path.basename(path))[0]
    compiled = CompiledModule(text, load_source(text, stem), irs, stats, seconds)
    if out_dir is not None and write:
        atomic_write(output_path(path, out_dir), text)
    return compiled
