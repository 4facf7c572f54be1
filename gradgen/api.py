"""The Python API: compile functions or model files in-process.

    mod = gradgen.compile_function(neuron)      # a CompiledModule
    mod.neuron_grad(2.0, 0.0, -3.0, 1.0, 6.88)  # (value, (g_x1, ...))
    print(mod.source)                           # the generated module's text

`compile_file(path, out_dir)` compiles a model file as `gradgen compile`
does: everything in memory first, then the module is written (never over a
file gradgen did not generate; see gradgen.output), so a failed compile never
clobbers an existing module.  Each phase is announced to gradgen.progress.
"""

from __future__ import annotations

import contextlib
import gc
import time
import types
from dataclasses import dataclass, field, replace

from gradgen.autodiff.reverse import grad
from gradgen import progress
from gradgen.backends import DEFAULT, NAMES, backend_for, module_level_names
from gradgen.backends.base import emit_function
from gradgen.backends.schedule import forward_part, schedule
from gradgen.backends.module import Header, file_header, function_header, module_source
from gradgen.errors import GradgenError
from gradgen.export import example_of, info_of, params_of
from gradgen.backends.lean import step_tables
from gradgen.backends.step import check_step, emit_step
from gradgen.backends.second import KINDS as SECOND_KINDS, emit_second
from gradgen.frontend.trace import def_line
from gradgen.ir.graph import Graph
from gradgen.ir.ops import Op
from gradgen.ir.verify import verify
from gradgen.frontend.loader import load_model
from gradgen.names import MODULE_LEVEL, RESERVED
from gradgen.output import module_name, output_path, plan, write_all  # noqa: F401 (output_path: the old api name)
from gradgen.passes import PassStat, optimize
from gradgen.passes.reroll import reroll
from gradgen.frontend.signature import Signature
from gradgen.frontend.trace import trace_function


@dataclass
class FunctionIR:
    name: str
    forward: Graph  # traced
    grad: Graph  # reverse mode of forward_opt, before passes
    forward_opt: Graph  # after passes (and re-rolling): what `f` computes
    grad_opt: Graph  # after passes: what `f_grad` computes
    fallbacks: list = field(default_factory=list)  # where re-rolling fell back to per-element code
    traced_opt: Graph | None = None  # the optimised scalar trace, before re-rolling
    defaults: dict = field(default_factory=dict)  # argument -> its default (a float): signature.defaults()
    signature: Signature | None = None  # built by the front end (gradgen.frontend.signature)


@dataclass
class CompiledModule:
    """A compiled module: its text, the IR it came from, and the text executed as a module.

    The text is executed on first use of `module` (or of a function through the compiled
    module, `mod.f_grad(...)`), not when it is compiled: Python's own `compile` of a large
    module costs about as much as gradgen's emission of it (~14 us a line), and
    `gradgen compile`, which only writes the module, never needs it.
    """

    source: str  # the generated module's text
    name: str  # the module's name (its `__name__` once loaded)
    functions: list[FunctionIR]
    stats: list[PassStat] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    _module: types.ModuleType | None = field(default=None, repr=False)

    @property
    def module(self) -> types.ModuleType:
        """The text, executed (`load_source`) the first time it is asked for."""
        if self._module is None:
            self._module = load_source(self.source, self.name)
        return self._module

    def __getattr__(self, name):
        if name.startswith("__") or name in ("module", "_module"):
            raise AttributeError(name)  # never load the module for dunder lookups (copy, pickle)
        return getattr(self.module, name)


def lower(
    fn, check: bool = False, stats: list | None = None, rerolling: bool = True, phases: dict | None = None
) -> FunctionIR:
    """Trace `fn`, optimise, re-roll into array ops, differentiate, optimise again.

    `phases`, when given, accumulates seconds per phase: trace, passes, reroll, autodiff.
    """
    name = fn.__name__
    clock = _Phases(phases)
    progress.phase(f"tracing {name}", progress.tracing_nodes)
    fwd, sig = trace_function(fn, example=example_of(fn), params=params_of(fn))
    clock.lap("trace")
    progress.phase(f"optimising {name}", len(fwd.nodes))
    if check:
        verify(fwd)
    # a trace that reads arrays is re-rolled and optimised again afterwards: one round
    # of passes before re-rolling is enough (a second one costs ~10 s on the wide MLP)
    elem = Op.ELEM  # bound: an Op.X read costs ~0.45 us, once per node in the generator
    will_reroll = rerolling and any(n.op is elem for n in fwd.nodes)
    traced_opt = fwd_opt = optimize(fwd, check=check, stats=stats, max_rounds=1 if will_reroll else 8)
    clock.lap("passes")
    fallbacks: list = []
    if rerolling:
        t0 = time.perf_counter()
        before = len(fwd_opt.nodes)
        progress.phase(f"re-rolling {name}", before)
        fwd_opt = reroll(fwd_opt, fallbacks)
        if stats is not None:
            stats.append(PassStat(fwd_opt.name, "reroll", before, len(fwd_opt.nodes), time.perf_counter() - t0))
        clock.lap("reroll")
        if fwd_opt is not traced_opt:
            if check:
                verify(fwd_opt)
            progress.phase(f"optimising {name}", len(fwd_opt.nodes))
            fwd_opt = optimize(fwd_opt, check=check, stats=stats)
            clock.lap("passes")
    if fwd_opt[fwd_opt.output("value")].shape:
        # a value per example (gradgen.each): a forward function only
        return FunctionIR(name, fwd, None, fwd_opt, None, fallbacks, traced_opt, sig.defaults(), sig)
    # differentiate the optimised forward: a value CSE merged accumulates its
    # gradient once, instead of once per copy the trace recorded
    progress.phase(f"differentiating {name}", len(fwd_opt.nodes))
    g = grad(fwd_opt, wrt=differentiable_inputs(fwd_opt))
    if check:
        verify(g)
    clock.lap("autodiff")
    progress.phase(f"optimising the gradient of {name}", len(g.nodes))
    g_opt = optimize(g, check=check, stats=stats)
    clock.lap("passes")
    return FunctionIR(name, fwd, g, fwd_opt, g_opt, fallbacks, traced_opt, sig.defaults(), sig)


class _Phases:
    """Seconds per phase, added into a dict (or nothing without one)."""

    def __init__(self, into: dict | None):
        self.into, self.t = into, time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.into is not None:
            self.into[phase] = self.into.get(phase, 0.0) + now - self.t
        self.t = now


def differentiable_inputs(graph: Graph) -> list[int]:
    """Parameters and scalar arguments; array arguments are data (no gradient)."""
    return [i for i in graph.inputs if graph[i].origin.kind == "param" or not graph[i].shape]


def _public_names(fns) -> None:
    """Refuse exported names that would break the module: f and f_grad twice, or a name the
    module itself defines or calls at module level (names.MODULE_LEVEL: its imports and
    helpers; builtins and keywords too); the error names the def line."""
    from gradgen.frontend.trace import def_line

    names = [f.__name__ for f in fns]
    taken = set(names)
    for f in fns:
        clash = f.__name__ + "_grad"
        if clash in taken:
            raise GradgenError(
                f"exported functions {f.__name__} and {clash} would both define {clash}; rename one",
                f.__code__.co_filename,
                def_line(f),
            )
        module_level = MODULE_LEVEL | module_level_names() | {f"_{g}_args" for g in names} | step_tables(names)
        if f.__name__ in module_level or f.__name__ in RESERVED:
            what = "defines or imports" if f.__name__ in module_level else "uses"
            raise GradgenError(
                f"an exported function may not be called {f.__name__} (the generated module "
                f"{what} that name); rename it",
                f.__code__.co_filename,
                def_line(f),
            )


def build_source(
    fns, source_path, out_dir: str | None = None, check: bool = False, rerolling: bool = True, backend: str = DEFAULT
):
    """(source text, [FunctionIR], stats, seconds) for the exported functions `fns`.

    `source_path`: the model file (named in the header relative to `out_dir`'s parent, see
    backends.module.file_header), or a `backends.module.Header`.  `backend`: "numpy" (plain
    Python for functions of floats, NumPy for arrays) or "torch" (gradgen.backends).
    """
    _public_names(fns)
    if backend not in NAMES:
        raise GradgenError(f"unknown backend {backend!r}: choose one of {', '.join(NAMES)}")
    stats: list[PassStat] = []
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    with _no_gc():
        irs = [lower(f, check=check, stats=stats, rerolling=rerolling, phases=phases) for f in fns]
        t1 = time.perf_counter()
        text, emitted = _emit_module(fns, irs, source_path, out_dir, backend, t1)
    seconds = {"trace+passes": t1 - t0, **emitted}
    seconds.update((f"phase:{k}", v) for k, v in phases.items())
    return text, irs, stats, seconds


@contextlib.contextmanager
def _no_gc():
    """The cyclic garbage collector off while a module is built (it was ~15% of a large
    trace's time, re-scanning millions of nodes that all stay alive); IR nodes form no
    cycles, so reference counting frees what each phase drops.  Restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if not gc.get_freeze_count():
                # what the compile made and kept goes to the oldest generation, as if it had
                # survived collections (freeze then unfreeze: two list splices, no scan); else
                # the first collection after enabling scans every object made while disabled
                # (~1 s for a 200,000-step chain's graphs, all alive)
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _emit_module(fns, irs, source_path, out_dir, backend, t1):
    """(module text, seconds of emit and black) for the lowered functions `irs`."""
    functions, summary = [], []
    notes: list = []  # (name, Signature with the emitted names, has a gradient)
    for fn, ir in zip(fns, irs):
        opt = info_of(fn).step
        if opt is not None:
            check_step(fn, ir, opt, (fn.__code__.co_filename, def_line(fn)))
        # every name in the docstrings is one the emitter chose (through the namespace)
        progress.phase(f"emitting {ir.name}", len((ir.grad_opt or ir.forward_opt).nodes))
        if ir.grad_opt is None:  # per-example values (gradgen.each): no gradient function
            asked = [k for k in SECOND_KINDS if getattr(info_of(fn), k)]
            if asked:
                raise GradgenError(
                    f"{fn.__name__}: {asked[0]}=True needs a scalar loss (this function returns one value "
                    "per example); export the loss built with gradgen.mean instead",
                    fn.__code__.co_filename,
                    def_line(fn),
                )
            doc = f"{ir.name} of each example: an array of shape (B,)."
            f = _emit(ir.forward_opt, ir.name, "value", doc, ir.defaults, backend)
            functions.append(f)
            summary.append(f"{ir.name}({', '.join(f.signature)}) -> array of shape (B,)")
            notes.append((ir.name, ir.signature.renamed(f.params), False))
            continue
        # f_grad is scheduled first; f is the forward part of that schedule (the same lines and names)
        b = backend_for(backend, ir.grad_opt)
        sched = schedule(ir.grad_opt, b, reserved={ir.name, ir.name + "_grad"}, like=b.layout_like(ir.grad_opt))
        g = emit_function(ir.grad_opt, ir.name + "_grad", "grad", None, b, ir.defaults, sched)
        part = forward_part(sched)
        # its forward statements are the gradient function's (reused when they are the same)
        f = emit_function(part.graph, ir.name, "value", f"Value of {ir.name}.", b, ir.defaults, part, prefix=g.prefix)
        g.prefix = None
        sig = ", ".join(f.signature)
        functions += [f, g]
        summary.append(f"{ir.name}({sig}) -> value")
        summary.append(f"{ir.name}_grad({sig}) -> (value, gradients)")
        notes.append((ir.name, ir.signature.renamed(f.params), True))
        if opt is not None:  # <name>_step and <name>_train (gradgen.backends.step)
            functions += b.step_functions(ir.name, emit_step(ir.name, g, opt, b), opt)
            st = ", state" if opt.stateful else ""
            summary.append(f"{ir.name}_step({sig}, lr{st}) -> value before the update (in place)")
            summary.append(f"{ir.name}_train({sig}, lrs{st}) -> the losses of len(lrs) steps")
        for kind in SECOND_KINDS:  # <name>_hvp, _hessian, _jvp (gradgen.backends.second)
            if getattr(info_of(fn), kind):
                try:
                    sf, line = emit_second(ir, kind, backend_for(backend, ir.grad_opt))
                except GradgenError as err:
                    raise GradgenError(err.message, fn.__code__.co_filename, def_line(fn)) from None
                functions.append(sf)
                summary.append(line)
        f.sched = g.sched = None  # the step and second-order functions are written: free the schedules
    t2 = time.perf_counter()
    progress.phase("formatting (black)", None)
    header = source_path if isinstance(source_path, Header) else file_header(source_path, out_dir, backend)
    text = module_source(header, out_dir, functions, summary, arguments_text(notes))
    t3 = time.perf_counter()
    return text, {"emit": t2 - t1, "black": t3 - t2}


def arguments_text(notes) -> list[str]:
    """The module docstring's paragraphs on the arguments, from the functions' Signatures: what
    the arrays are, and which arguments get gradients.  The functions of one model share their
    argument names, so one paragraph describes the union of their arguments (functions of
    floats only: the summary lines say it all)."""
    out = []
    for sigs, text in (
        ([sig for _, sig, _ in notes if sig.arrays()], lambda sig: sig.describe(call=False)),
        ([sig for _, sig, has_grad in notes if has_grad], lambda sig: sig.gradient_note()),
    ):
        if sigs:
            union = {}
            for sig in sigs:
                for i in sig.inputs:
                    union.setdefault(i.name, i)
            out.append(text(replace(sigs[0], inputs=tuple(union.values()))))
    return out


def _emit(graph: Graph, fname: str, returns: str, doc: str | None, defaults: dict, backend: str = DEFAULT):
    """The function's source (a `backends.base.Emitted`) with the backend `backend` picks for `graph`.

    `doc=None` for a gradient function: its docstring names the arguments it differentiates.
    """
    return emit_function(graph, fname, returns, doc, backend_for(backend, graph), defaults=defaults)


def load_source(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(text, f"<gradgen:{name}>", "exec"), module.__dict__)
    return module


def compile_function(*fns, check: bool = False, rerolling: bool = True, backend: str = DEFAULT) -> CompiledModule:
    """Compile one or more functions of `Value`s in-process (`backend`: "numpy" or "torch")."""
    if not fns:
        raise TypeError("compile_function needs at least one function")
    _public_names(fns)  # before function_header reads the names
    text, irs, stats, seconds = build_source(
        list(fns), function_header(fns), check=check, rerolling=rerolling, backend=backend
    )
    return CompiledModule(text, fns[0].__name__, irs, stats, seconds)


def compile_file(
    path: str,
    out_dir: str | None = None,
    check: bool = False,
    write: bool = True,
    rerolling: bool = True,
    backend: str = DEFAULT,
) -> CompiledModule:
    """Compile the model file `path`; with `out_dir`, write `out_dir/<module>.py` (gradgen.output)."""
    targets = plan([path], out_dir) if out_dir is not None and write else None
    _, fns = load_model(path)
    text, irs, stats, seconds = build_source(fns, path, out_dir, check=check, rerolling=rerolling, backend=backend)
    compiled = CompiledModule(text, module_name(path), irs, stats, seconds)
    if targets is not None:
        write_all([(targets[0].path, text)])
    return compiled
