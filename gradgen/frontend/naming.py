"""Names and source locations for a trace: what the user called each value.

    hook = frame_namer(trace, {model_file})   # sys.settrace(hook) while the model runs

A traced value gets, in order of preference:

1. the `label` the model set on it (`Tracer.label = "n"`);
2. the first local variable it is bound to in a model-file frame: the hook
   looks at each frame's locals on every line event, so `score = model(x)`
   names the value `score`;
3. the name of the model-file helper function that computed and returned
   it, when neither a local of the caller nor the exported function named
   it: `svm_loss` for moons.py's `return (1 + -yi * score).relu()` inside
   `def svm_loss(x, yi)`.  Only for a value the call itself computed (not
   an argument, an array element or a parameter passed through), only for a
   plain function name (not `<lambda>`, comprehensions or dunders such as a
   module's `__call__`), and never for the exported function itself, whose
   returned value is named by `trace` (`out` when it has no other name);
4. otherwise the emitter names it after its op (`gradgen.names`).

`def_line(fn)` is the line of a function's `def`, the line errors about the
function as a whole name; `is_internal(file)` tells gradgen's own files from
the model's (a traced value's `Loc` is the innermost frame outside gradgen).
"""

from __future__ import annotations

import inspect
import os

from gradgen.ir.ops import Op

_READS = (
    Op.INPUT,
    Op.ELEM,
    Op.CONST,
)  # a helper that returns one of these computed nothing

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # gradgen/


def is_internal(filename: str) -> bool:
    """A file of the gradgen package (never a model line)."""
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def def_line(fn) -> int:
    """The line of `def` (co_firstlineno is the first decorator's line)."""
    first = fn.__code__.co_firstlineno
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return first
    for k, text in enumerate(lines):
        if text.lstrip().startswith(("def ", "async def ")):
            return start + k
    return first


def helper_name(code) -> str | None:
    """The name a helper function's returned value may take: a plain identifier, else None."""
    name = code.co_name
    if not name.isidentifier() or name.startswith("__"):
        return None  # <lambda>, <listcomp>, <genexpr>, __call__, ...
    return name


def frame_namer(trace, files: set[str]):
    """A sys.settrace hook that names `trace`'s values after the locals (and helpers) that hold them.

    `trace` is a `tracer._Trace`; only frames whose file is in `files` (the model file) are
    watched.  A helper's name is only proposed (`trace.helper_names`, the first helper to
    return a value wins): `name_helpers` gives it once the trace is done, to a value that
    neither a local of the caller nor the exported function's result named.  The hook also
    records the line the exported function returned from (`trace.return_line`, for errors
    about the result).
    """
    from gradgen.frontend.tracer import Tracer  # (tracer imports this module)

    nodes = trace.b.nodes

    def name_locals(frame):
        for var, val in frame.f_locals.items():
            if isinstance(val, Tracer) and val._trace is trace and nodes[val._id].name is None:
                trace.b.set_meta(val._id, name=var)

    def watch(start: int, helper: str | None):
        """The local hook of one call; `start`: the node count when it began."""

        def local(frame, event, arg):
            if event in ("line", "return"):
                name_locals(frame)
                if event == "return":
                    if frame.f_code is trace.code:
                        trace.return_line = frame.f_lineno
                    elif (
                        helper is not None
                        and isinstance(arg, Tracer)
                        and arg._trace is trace
                        and arg._id >= start
                        and nodes[arg._id].name is None
                        and nodes[arg._id].op not in _READS
                    ):
                        trace.helper_names.setdefault(arg._id, helper)
            return local

        return local

    def global_(frame, event, arg):
        if frame.f_code.co_filename in files:
            code = frame.f_code
            return watch(len(nodes), None if code is trace.code else helper_name(code))
        return None

    return global_


def name_helpers(trace) -> None:
    """Name each value still unnamed after the helper function that returned it (see frame_namer)."""
    nodes = trace.b.nodes
    for nid, name in trace.helper_names.items():
        if nodes[nid].name is None:
            trace.b.set_meta(nid, name=name)
