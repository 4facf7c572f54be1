"""Names and source locations for a trace: what the user called each value.

    trace.namer = Namer(trace, model_file)   # Tracer.op calls namer.at(frame, line)

A traced value gets, in order of preference:

1. the `label` the model set on it (`Tracer.label = "n"`);
2. the first local variable it is bound to in a model-file frame, as a
   line hook reading each frame's locals at every line would find it (the
   `Namer` reads them only where that can name something: see its
   docstring), so `score = model(x)` names the value `score`;
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

import functools
import inspect
import os
import sys
import types

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


class Namer:
    """Names `trace`'s values after the locals (and helpers) of the model file's frames, without
    a global `sys.settrace`.

    The rule is the one a line hook on every model frame would apply (`name_locals` at each
    line and each return of a frame of `file`), sampled where it can matter instead:

    * at every recorded op (`Tracer.op` calls `at(frame, line)` with the innermost model frame):
      that frame's locals are read when its line changed since its last op, or the code jumped
      back (a loop), which is where a line event would have fired;
    * when the innermost model frame is another one (`_switch`): the frames that returned since
      (or a generator that yielded) are read as they ended (a finished frame keeps its locals),
      innermost first, then the frame that ran in between and each new frame, outermost first;
    * at the end (`finish`), every frame still watched and the exported function's own frame,
      which a one-shot call hook (`capture`) finds (its last line: `trace.return_line`).

    Reading a frame again whose locals did not change names nothing new, so the extra reads
    change no name.

    A helper's name needs the value it returned, which a finished frame no longer holds.  The
    model-file functions among the model's globals are wrapped while the trace runs
    (`wrap_helpers`): the model calls them by name, and the wrapper sees the result (and names
    an unnamed value passed in after the parameter, `called`, as a line hook did at the
    function's first line, even when the function records no op).  A helper with a plain name
    (`helper_name`) called any other way (a method, a closure, a recursion's inner calls) gets a
    return hook (`frame.f_trace`, no line events) from its first op on, and `sys.settrace` is
    on only while such a helper runs, with a hook (`_call_hook`) that reads each model frame's
    parameters as it starts; generators always take this way (each yield is a return).  Its
    name is only proposed
    (`trace.helper_names`, the first helper to return a value wins): `name_helpers` gives it
    once the trace is done, to a value that neither a local nor the exported function's
    result named.

    What a line hook named and this does not: a value bound and rebound again on lines that
    record no op in between (`a = x * w` then `a = x`); and a value passed unnamed to a model
    function that records no op and is called other than by its global name, outside a hooked
    helper (`lin(x * w)` with `Lin.__call__` returning `v`; `(lambda q: q)(x * w)`): a line hook
    named it after the parameter.
    """

    def __init__(self, trace, file: str):
        from gradgen.frontend.tracer import Tracer  # (tracer imports this module)

        self._tracer = Tracer
        self.trace = trace
        self.file = file  # the model file: its frames are watched
        self.root = None  # the exported function's frame, once called
        self.frame = None  # the innermost model frame at the last op
        self.line = -1  # its line then
        self.lasti = -1  # its instruction then
        self.loc = None  # the Loc of that line (Tracer.op reuses it while the line runs)
        self.chain: list = []  # the model frames of that op, outermost first
        self.marks: list = []  # (line, instruction) of each where its locals were last read
        self.helpers = 0  # helper frames with a return hook, running now
        self.hooks = True  # False: never touch sys.settrace (randomness.locate traces itself)

    # -- the exported function's frame ----------------------------------------------
    def capture(self, frame, event, arg):
        """A one-shot `sys.settrace` hook: the first call is the exported function's."""
        sys.settrace(None)
        if frame.f_code is self.trace.code:
            self.root = frame
        return None

    # -- sampling ---------------------------------------------------------------------
    def name_locals(self, frame) -> None:
        trace, Tracer = self.trace, self._tracer
        nodes = trace.b.nodes
        for var, val in frame.f_locals.items():
            if isinstance(val, Tracer) and val._trace is trace:
                node = nodes[val._id]
                if node.name is None:
                    # in place, not Builder.set_meta's new Node: only this trace's builder has
                    # seen its nodes (a chain names a third of them)
                    node.name = var

    def at(self, frame, line: int) -> None:
        """An op is recorded in `frame`, the innermost model frame, at `line` (Tracer.op's slow path)."""
        if frame is self.frame:
            lasti = frame.f_lasti
            if line != self.line or lasti <= self.lasti:
                self.name_locals(frame)
            self.line, self.lasti = line, lasti
            return
        self._switch(frame)
        self.frame, self.line, self.lasti = frame, line, frame.f_lasti

    def sync(self, frame) -> None:
        """Bring the names up to date at `frame` (a label is read or set there)."""
        while frame is not None and frame.f_code.co_filename != self.file:
            frame = frame.f_back
        if frame is not None:
            self.at(frame, frame.f_lineno)
            self.line = -1  # the next op takes Tracer.op's slow path: its own Loc, the locals read again

    def _switch(self, frame) -> None:
        chain = []
        f = frame
        while f is not None:
            if f.f_code.co_filename == self.file:
                chain.append(f)
            if f is self.root:
                break
            f = f.f_back
        chain.reverse()
        old, marks = self.chain, self.marks
        if old:
            marks[-1] = (self.line, self.lasti)
        k = 0
        while k < len(old) and k < len(chain) and old[k] is chain[k]:
            k += 1
        for f in reversed(old[k:]):  # returned (or a generator that yielded): as it ended
            self.name_locals(f)
        marks = marks[:k]
        if k:  # the frame that ran in between: read where a line hook would have
            f, (line, lasti) = chain[k - 1], marks[k - 1]
            marks[k - 1] = (f.f_lineno, f.f_lasti)
            if marks[k - 1][0] != line or marks[k - 1][1] <= lasti:
                self.name_locals(f)
        for f in chain[k:]:
            self._enter(f)
            marks.append((f.f_lineno, f.f_lasti))
        self.chain, self.marks = chain, marks

    def _enter(self, frame) -> None:
        """A model frame seen for the first time (or a generator resumed)."""
        trace = self.trace
        code = frame.f_code
        helper = None if code is trace.code else helper_name(code)
        if helper is not None and self.hooks and getattr(frame.f_back, "f_code", None) is not _CALL_CODE:
            frame.f_trace_lines = False
            frame.f_trace = self._return_hook(len(trace.b.nodes), helper)
            if self.helpers == 0:
                sys.settrace(self._call_hook)
            self.helpers += 1
        self.name_locals(frame)

    def _return_hook(self, start: int, helper: str):
        """The local hook of one helper call; `start`: the node count when it was first seen."""
        trace, Tracer = self.trace, self._tracer
        nodes = trace.b.nodes

        def local(frame, event, arg):
            if event == "return":
                frame.f_trace = None
                self.name_locals(frame)
                if (
                    isinstance(arg, Tracer)
                    and arg._trace is trace
                    and arg._id >= start
                    and nodes[arg._id].name is None
                    and nodes[arg._id].op not in _READS
                ):
                    trace.helper_names.setdefault(arg._id, helper)
                self.helpers -= 1
                if self.helpers == 0:
                    sys.settrace(None)
            return local

        return local

    def called(self, caller, code, args, kwargs) -> None:
        """A model function (`code`) is called from `caller` with `args`: what a line hook reads
        at its first line, its parameters, after the caller's own pending names."""
        self.sync(caller)
        names = code.co_varnames
        n = code.co_argcount
        bound = dict(zip(names[:n], args))
        if kwargs:
            for name in names[code.co_posonlyargcount : n + code.co_kwonlyargcount]:
                if name in kwargs:
                    bound[name] = kwargs[name]
        trace, Tracer = self.trace, self._tracer
        nodes = trace.b.nodes
        for name in names[: n + code.co_kwonlyargcount]:  # the frame's order
            val = bound.get(name)
            if isinstance(val, Tracer) and val._trace is trace and nodes[val._id].name is None:
                nodes[val._id].name = name  # (in place: see name_locals)

    def _call_hook(self, frame, event, arg):
        """The global hook while a hooked helper runs: a model frame's parameters as it starts."""
        if event == "call" and frame.f_code.co_filename == self.file:
            self.sync(frame.f_back)
            self.name_locals(frame)
        return None

    # -- helpers called by their global name ----------------------------------------------
    def wrap_helpers(self, namespace: dict) -> list:
        """Put a wrapper that sees the returned value around each plain model-file function among
        `namespace`'s values (the model's globals), so that the helpers the model calls by name
        need no return hook; undone by `unwrap_helpers` with what this returns."""
        wrapped = []
        for key, value in list(namespace.items()):
            if type(value) is not _FunctionType:
                continue
            code = value.__code__
            if (
                code.co_filename != self.file
                or code is self.trace.code
                or code.co_flags & _GENERATOR_FLAGS  # each yield is a return: the hook sees those
                or helper_name(code) is None
            ):
                continue
            namespace[key] = _helper_call(self, value, helper_name(code), namespace, key)
            wrapped.append((key, value))
        return wrapped

    @staticmethod
    def unwrap_helpers(namespace: dict, wrapped: list) -> None:
        for key, original in wrapped:
            current = namespace.get(key)
            if getattr(current, "__wrapped__", None) is original:  # (unless the model rebound it)
                namespace[key] = original

    def finish(self) -> None:
        """The model has returned: the frames still watched as they ended, innermost first."""
        frames = list(reversed(self.chain))
        if self.root is not None and (not frames or frames[-1] is not self.root):
            frames.append(self.root)
        for f in frames:
            self.name_locals(f)
        if self.root is not None:
            self.trace.return_line = self.root.f_lineno
        self.chain, self.marks, self.frame, self.root = [], [], None, None


def _helper_call(namer: Namer, fn, helper: str, namespace: dict, key: str):
    """`fn` wrapped to propose `helper` as the name of the value it returns (see Namer).

    While it runs, `namespace[key]` is `fn` itself, so a recursion adds no wrapper frame per
    level (Python's recursion limit stays the model's own) and its inner calls get the hook."""
    trace, Tracer = namer.trace, namer._tracer
    nodes = trace.b.nodes

    def call(*args, **kwargs):
        start = len(nodes)
        for a in args:  # an unnamed value passed in: named after the parameter, as at fn's first line
            if isinstance(a, Tracer) and a._trace is trace and nodes[a._id].name is None:
                namer.called(_getframe(1), fn.__code__, args, kwargs)
                break
        else:
            for a in kwargs.values():
                if isinstance(a, Tracer) and a._trace is trace and nodes[a._id].name is None:
                    namer.called(_getframe(1), fn.__code__, args, kwargs)
                    break
        namespace[key] = fn
        try:
            result = fn(*args, **kwargs)
        finally:
            if namespace.get(key) is fn:  # (unless the model rebound it)
                namespace[key] = call
        if (
            isinstance(result, Tracer)
            and result._trace is trace
            and result._id >= start
            and nodes[result._id].name is None
            and nodes[result._id].op not in _READS
        ):
            # proposed before the helper's last locals are read (at the next frame switch):
            # a value they name is named, so the proposal is never used, as with the hook
            trace.helper_names.setdefault(result._id, helper)
        return result

    return functools.update_wrapper(call, fn)


_CALL_CODE = next(c for c in _helper_call.__code__.co_consts if isinstance(c, types.CodeType))  # a wrapper's frame's
_FunctionType = types.FunctionType
_getframe = sys._getframe
_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def name_helpers(trace) -> None:
    """Name each value still unnamed after the helper function that returned it (see frame_namer)."""
    nodes = trace.b.nodes
    for nid, name in trace.helper_names.items():
        if nodes[nid].name is None:
            trace.b.set_meta(nid, name=name)
