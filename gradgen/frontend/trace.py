"""Trace a Python function of `Value`s into IR, once: the front end's entry point.

    graph = trace(fn, example=..., params=...)                    # the forward IR
    graph, sig = trace_function(fn, example=..., params=...)      # and its Signature
    sig = signature_of(fn)     # with the example and params of fn's @gradgen.export

The function is called with one `Tracer` per argument (an `ArrayArg` for
an argument whose `example` is an array), with every module parameter
switched to a recording `_Param` and a `naming.Namer` naming values after
the model's variables (no global `sys.settrace`).  The pieces, one job each:

* `frontend.tracer`: `Tracer`, `_Param` and `_Trace`, which records nodes;
* `frontend.arrays`: array arguments and `gradgen.mean` / `gradgen.each`;
* `frontend.discovery`: the function's arguments and defaults, its modules;
* `frontend.naming`: names from labels, locals and helper functions;
  source lines;
* `frontend.signature`: the `Signature` built here, once.

Parameters of `params` (or of the nn modules among the model file's
globals) become array inputs, listed first, module by module; each used
module contributes all its arrays.  Anything that cannot be compiled,
including an exception the model itself raises or a random draw, is a
`GradgenError` naming the model file and line.
"""

from __future__ import annotations

import gc
import inspect
import keyword
import os
import sys
import traceback

from gradgen import engine
from gradgen import params as params_mod
from gradgen.engine import Value
from gradgen.errors import GradgenError
from gradgen.frontend import randomness
from gradgen.frontend.arrays import ArrayArg, batch_each, batch_mean, example_shapes  # noqa: F401 (batch.py)
from gradgen.frontend.discovery import arguments, modules_of  # noqa: F401 (arguments: re-exported)
from gradgen.frontend.naming import Namer, def_line, is_internal, name_helpers
from gradgen.frontend.signature import SigInput, Signature
from gradgen.frontend.tracer import _ACTIVE, Tracer, _Param, _Trace  # noqa: F401 (progress reads _ACTIVE)
from gradgen.ir.graph import VALUE, Graph, Origin
from gradgen.ir.ops import Op


def trace(fn, name: str | None = None, example=None, params=None) -> Graph:
    """Trace `fn` into a forward IR graph (see `trace_function`)."""
    return trace_function(fn, name, example, params)[0]


def signature_of(fn) -> Signature:
    """The Signature of an exported function, traced with its `@gradgen.export` example and params."""
    from gradgen.export import example_of, params_of

    return trace_function(fn, example=example_of(fn), params=params_of(fn))[1]


def trace_function(fn, name: str | None = None, example=None, params=None) -> tuple[Graph, Signature]:
    """Trace `fn` (see `_trace_function`), with the parameter layouts computed once (params.cached)
    and the cyclic garbage collector off (as `api` has it for a whole compile: a collection
    re-scans every node recorded so far, and the trace makes no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        with params_mod.cached():
            return _trace_function(fn, name, example, params)
    finally:
        if was:
            gc.enable()


def _trace_function(fn, name: str | None = None, example=None, params=None) -> tuple[Graph, Signature]:
    """Trace `fn` into a forward IR graph and its `Signature`.

    Each argument is a scalar input, or an array input when `example` gives
    an array for it; parameters of `params` (or of the nn modules among the
    model file's globals) become array inputs, listed first.  Raises
    `GradgenError` naming the model file and line for anything that cannot
    be compiled, including exceptions the model itself raises.
    """
    name = name or fn.__name__
    file = inspect.getsourcefile(fn) or fn.__code__.co_filename
    if not name.isidentifier() or keyword.iskeyword(name):
        raise GradgenError(
            f"an exported function needs a Python identifier as its name, not {name!r}; define it with `def`",
            file,
            fn.__code__.co_firstlineno,
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        kind = "an async def" if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) else "a generator (it yields)"
        raise GradgenError(
            f"{name} is {kind}; gradgen compiles plain functions: define it with `def` and `return` one Value",
            file,
            def_line(fn),
        )
    from gradgen.frontend import foreign

    if foreign.wants(fn, params):  # micrograd's package, the lecture's Value, a fork: run and walk
        return foreign.trace_foreign(fn, name, example, params, file)
    sig = arguments(fn, file)
    arg_names = [a for a, _ in sig]
    shapes = example_shapes(fn, arg_names, example, file)
    for a, default in sig:
        if a in shapes and default is not inspect.Parameter.empty:
            raise GradgenError(
                f"argument {a} of {name} is an array (its example is one) and has a default; "
                "drop the default: array arguments are always passed",
                file,
                def_line(fn),
            )
    t = _Trace(name, file)
    t.code = fn.__code__
    t.namer = namer = Namer(t, fn.__code__.co_filename)
    found, eager = modules_of(fn, params)
    modules = [(m.prefix, m.module) for m in found]
    t.set_modules(modules, eager)
    args = []
    for a in arg_names:
        shape = shapes.get(a, ())
        nid = t.b.add(Op.INPUT, (), name=a, origin=Origin("arg", a), shape=shape)
        args.append(ArrayArg(t, nid, a, shape) if shape else Tracer(t, nid))
    arg_inputs = [a._id for a in args]
    taken = {arr.name for prefix, m in modules for arr in params_mod.arrays(m, prefix)}
    for a in arg_names:
        if a in taken:
            raise GradgenError(
                f"argument {a} of {name} has the name of a parameter array of the model; rename the argument",
                file,
                def_line(fn),
            )

    swapped = [v for v in t.param_values() if type(v) is Value]
    rng_before = randomness.snapshot(fn.__globals__)
    old = sys.gettrace()
    _ACTIVE.append(t)
    engine.TRACING[0] += 1
    for v in swapped:
        v.__class__ = _Param
    wrapped = namer.wrap_helpers(fn.__globals__)  # helpers called by name: no return hook
    sys.settrace(namer.capture)  # one call event: the exported function's frame (then off)
    try:
        result = fn(*args)
        namer.finish()
        drawn = randomness.changed(rng_before)
        if drawn is not None:
            randomness.restore(rng_before)
            namer.hooks = False  # locate() runs the model again under its own line hook
            raise _random_draw(fn, args, name, file, drawn, rng_before)
    except (GradgenError, KeyboardInterrupt):
        raise
    except BaseException as e:  # the model raised (or called sys.exit): report where, in one line
        raise _model_raised(e, name, file) from e
    finally:
        sys.settrace(old)
        namer.unwrap_helpers(fn.__globals__, wrapped)
        for v in swapped:
            v.__class__ = Value
        engine.TRACING[0] -= 1
        _ACTIVE.pop()

    line = t.return_line or def_line(fn)
    if isinstance(result, Tracer) and result._trace is t:
        if t.b.nodes[result._id].name is None:
            t.b.set_meta(result._id, name="out")
        name_helpers(t)
        graph = t.b.build(t.param_inputs() + arg_inputs, [(VALUE, result._id)])
        return graph, _signature(graph, t, found, dict(sig))
    if isinstance(result, (list, tuple)):
        raise GradgenError(
            f"{name} returns a {type(result).__name__} of {len(result)} values; gradgen compiles "
            "scalar-valued functions: return one Value (a sum or mean, say)",
            file,
            line,
        )
    if isinstance(result, Value):
        raise GradgenError(
            f"{name} returns a Value that does not depend on its arguments; "
            "compute the result from the arguments",
            file,
            line,
        )
    raise GradgenError(
        f"{name} returns {type(result).__name__}, not a Value; return one Value computed "
        "from the arguments",
        file,
        line,
    )


def _random_draw(fn, args, name: str, file: str, drawn: str, before) -> GradgenError:
    """The refusal for randomness drawn while tracing, at the first line that draws."""
    sys.settrace(None)
    try:
        found = randomness.locate(lambda: fn(*args), before)
    finally:
        randomness.restore(before)
    where, line = (file, def_line(fn)) if found is None else found
    return GradgenError(
        f"{name} draws a random number while it is traced (from {drawn}): the draw would be frozen into "
        "the compiled module; pass random numbers (a dropout mask, noise) in as arguments and "
        "draw them outside the exported function",
        where,
        line,
    )


def _model_raised(e: BaseException, name: str, file: str) -> GradgenError:
    """`e`, raised by the model while tracing, as one line at the model's innermost line.

    The innermost frame in the model file wins; else the innermost frame of
    any other real file outside gradgen (a helper module of the user's);
    generated code such as a dataclass's `__init__` (`<string>`) never.
    """
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not is_internal(f.filename)]
    mine = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(file)]
    real = [f for f in frames if not f.filename.startswith("<")]
    best = (mine or real or [None])[-1]
    where, line = (best.filename, best.lineno) if best is not None else (file, None)
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:197] + "..."
    what = f"{type(e).__name__}: {text}" if text else type(e).__name__
    hint = "fix the model so it runs on Values"
    if isinstance(e, RecursionError):
        hint = "a recursion that does not end, or nesting deeper than Python's recursion limit; " + hint
    return GradgenError(f"tracing {name} raised {what}; {hint}", where, line)


def _signature(graph: Graph, t: _Trace, found: list, defaults: dict) -> Signature:
    """The Signature of a finished trace: its inputs as the graph has them (batch axes included)."""
    module_of = {i: found[m].name for m, arrays in t._param_inputs.items() for i in arrays.values()}
    inputs = []
    for i in graph.inputs:
        node = graph[i]
        name = node.origin.name  # the argument's or array's own name (a label may rename the node)
        if i in module_of:
            inputs.append(SigInput(name, "param", node.shape, module_of[i]))
        else:
            default = defaults[name]
            default = None if default is inspect.Parameter.empty else default
            inputs.append(SigInput(name, "data" if node.shape else "scalar", node.shape, None, default))
    prefixes = tuple((m.name, m.prefix) for m in found)
    return Signature(graph.name, tuple(inputs), graph[graph.output(VALUE)].shape, prefixes)
