"""Trace a Python function of `Value`s into IR, once.

The function is called with one `Tracer` per argument.  A `Tracer` looks
like a `Value` (operators, `tanh exp log relu sigmoid`, a settable `label`)
but records IR nodes instead of computing numbers.  Python floats become
constants; control flow is fixed at trace time, so anything that would need
a traced number -- `.data`, `float()`, comparisons, `bool()` -- is refused
with the model file and line, as `jax.jit` does.

Sugar is recorded in the engine's shapes: `a / b` is `mul(a, pow(b, -1))`,
so compiled code computes the engine's floats.  `a - b` and `-a` are
recorded as `sub` and `neg`, which equal the engine's `a + b * -1` and
`a * -1` exactly.

Names: a `label` set on a traced value wins; otherwise the first local
variable the value is bound to in a model-file frame (found with
`sys.settrace`, looking at each frame's locals line by line); otherwise
the emitter names it after its op.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback

from gradgen.engine import Value
from gradgen.errors import GradgenError, TraceError
from gradgen.ir.graph import Builder, Graph, Loc, Origin
from gradgen.ir.ops import Op

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NUMBER = (int, float)


def _is_internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


class _Trace:
    def __init__(self, name: str, model_file: str):
        self.b = Builder(name)
        self.model_file = model_file
        self.code = None  # the exported function's code object
        self.return_line: int | None = None  # where it returned (for output errors)
        self._internal: dict[str, bool] = {}

    def loc(self) -> Loc | None:
        """The innermost frame outside gradgen: the model line being traced."""
        f = sys._getframe(1)
        while f is not None:
            fn = f.f_code.co_filename
            internal = self._internal.get(fn)
            if internal is None:
                internal = self._internal[fn] = _is_internal(fn)
            if not internal:
                return Loc(fn, f.f_lineno)
            f = f.f_back
        return None

    def fail(self, message: str) -> TraceError:
        loc = self.loc()
        return TraceError(message, loc.file if loc else self.model_file, loc.line if loc else None)

    def lift(self, x) -> int:
        if isinstance(x, Tracer):
            if x._trace is not self:
                raise self.fail("a traced value from another trace was used here")
            return x._id
        if isinstance(x, bool) or not isinstance(x, _NUMBER + (Value,)):
            raise self.fail(
                f"unsupported operand of type {type(x).__name__}: "
                "only Values, ints and floats can be combined with a traced Value"
            )
        if isinstance(x, Value):
            raise self.fail(
                f"uses a Value created outside the function's arguments (data={x.data!r}); "
                "pass it in as an argument, or use a plain float for a constant"
            )
        return self.b.const(float(x))

    def op(self, op: Op, args, attr=None) -> "Tracer":
        ids = [self.lift(a) for a in args]
        return Tracer(self, self.b.add(op, ids, attr, loc=self.loc()))


_CONTROL_FLOW = (
    "{what} needs the number inside a traced Value, but control flow on data cannot "
    "be compiled (the branch taken would be baked in); compute both sides with Values "
    "(e.g. relu) or make the choice outside the exported function"
)


class Tracer:
    """A traced scalar: records IR instead of computing."""

    __slots__ = ("_trace", "_id")

    def __init__(self, trace: _Trace, nid: int):
        self._trace = trace
        self._id = nid

    # -- naming -----------------------------------------------------------------
    @property
    def label(self) -> str:
        return self._trace.b.nodes[self._id].name or ""

    @label.setter
    def label(self, text) -> None:
        self._trace.b.set_meta(self._id, name=str(text))

    # -- primitives -------------------------------------------------------------
    def __add__(self, other):
        return self._trace.op(Op.ADD, (self, other))

    def __radd__(self, other):
        return self._trace.op(Op.ADD, (other, self))

    def __sub__(self, other):
        return self._trace.op(Op.SUB, (self, other))

    def __rsub__(self, other):
        return self._trace.op(Op.SUB, (other, self))

    def __mul__(self, other):
        return self._trace.op(Op.MUL, (self, other))

    def __rmul__(self, other):
        return self._trace.op(Op.MUL, (other, self))

    def __neg__(self):
        return self._trace.op(Op.NEG, (self,))

    def __pow__(self, k):
        if isinstance(k, (Tracer, Value)):
            raise self._trace.fail(
                "Value ** Value is not supported (the exponent must be an int or float); "
                "for a > 0 write (b * a.log()).exp()"
            )
        if isinstance(k, bool) or not isinstance(k, _NUMBER):
            raise self._trace.fail(f"the exponent must be an int or float, not {type(k).__name__}")
        return self._trace.op(Op.POW, (self,), k)

    def __rpow__(self, base):
        raise self._trace.fail(
            "number ** Value is not supported (exponents must be constants); "
            "for c > 0 write (x * math.log(c)).exp()"
        )

    def __truediv__(self, other):
        if isinstance(other, _NUMBER) and not isinstance(other, bool) and other == 0:
            raise self._trace.fail("division by the constant zero; divide by a nonzero number")
        if isinstance(other, _NUMBER + (Tracer,)) and not isinstance(other, bool):
            # the engine's a / b == a * b**-1, kept so compiled code matches it bit for bit
            t = self._trace
            return t.op(Op.MUL, (self, Tracer(t, t.b.add(Op.POW, [t.lift(other)], -1, loc=t.loc()))))
        return self._trace.op(Op.MUL, (self, other))  # raises the operand error

    def __rtruediv__(self, other):
        return self._trace.op(Op.MUL, (other, self._trace.op(Op.POW, (self,), -1)))

    def tanh(self):
        return self._trace.op(Op.TANH, (self,))

    def exp(self):
        return self._trace.op(Op.EXP, (self,))

    def log(self):
        return self._trace.op(Op.LOG, (self,))

    def relu(self):
        return self._trace.op(Op.RELU, (self,))

    def sigmoid(self):
        return self._trace.op(Op.SIGMOID, (self,))

    # -- things a trace cannot do ---------------------------------------------------
    def _refuse(self, what: str):  # `what` reads as the subject of the message
        raise self._trace.fail(_CONTROL_FLOW.format(what=what))

    @property
    def data(self):
        self._refuse(".data")

    @property
    def grad(self):
        raise self._trace.fail(".grad of a traced value: gradients come from the compiled _grad function")

    def backward(self):
        raise self._trace.fail("backward() inside an exported function: call the compiled _grad function instead")

    def __bool__(self):
        self._refuse("`if`, `while` or bool()")

    def __float__(self):
        self._refuse("float() or a math.* function")

    def __int__(self):
        self._refuse("int()")

    def __index__(self):
        self._refuse("using a Value as an index")

    def __lt__(self, other):
        self._refuse("a comparison")

    __le__ = __gt__ = __ge__ = __lt__

    def __abs__(self):
        raise self._trace.fail("abs() is not a gradgen op; write x.relu() + (-x).relu()")

    def __repr__(self):
        return f"Tracer(%{self._id})"


def _model_frame_namer(trace: _Trace, files: set[str]):
    """A sys.settrace hook that names traced values after the locals they are bound to."""

    nodes = trace.b.nodes

    def name_locals(frame):
        for var, val in frame.f_locals.items():
            if isinstance(val, Tracer) and val._trace is trace and nodes[val._id].name is None:
                trace.b.set_meta(val._id, name=var)

    def local(frame, event, arg):
        if event in ("line", "return"):
            name_locals(frame)
            if event == "return" and frame.f_code is trace.code:
                trace.return_line = frame.f_lineno
        return local

    def global_(frame, event, arg):
        if frame.f_code.co_filename in files:
            return local
        return None

    return global_


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


def signature_names(fn, file: str) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise GradgenError(f"cannot read the signature of {fn.__name__}: {e}", file)
    names = []
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise GradgenError(
                f"exported function {fn.__name__} has a {p.kind.description} parameter "
                f"({p.name}); gradgen needs a fixed list of scalar arguments",
                file,
                def_line(fn),
            )
        names.append(p.name)
    return names


def trace(fn, name: str | None = None) -> Graph:
    """Trace `fn` (one scalar input per argument) into a forward IR graph.

    Raises `GradgenError` naming the model file and line for anything that
    cannot be compiled, including exceptions the model itself raises.
    """
    name = name or fn.__name__
    file = inspect.getsourcefile(fn) or fn.__code__.co_filename
    if not name.isidentifier():
        raise GradgenError(
            f"an exported function needs a name, and {name} has none; define it with `def`",
            file,
            fn.__code__.co_firstlineno,
        )
    arg_names = signature_names(fn, file)
    t = _Trace(name, file)
    t.code = fn.__code__
    args = []
    for a in arg_names:
        nid = t.b.add(Op.INPUT, (), name=a, origin=Origin("arg", a))
        args.append(Tracer(t, nid))
    inputs = [a._id for a in args]

    old = sys.gettrace()
    sys.settrace(_model_frame_namer(t, {fn.__code__.co_filename}))
    try:
        result = fn(*args)
    except (GradgenError, KeyboardInterrupt):
        raise
    except BaseException as e:  # the model raised (or called sys.exit): report where, in one line
        raise _model_raised(e, name, file) from e
    finally:
        sys.settrace(old)

    line = t.return_line or def_line(fn)
    if isinstance(result, Tracer) and result._trace is t:
        if t.b.nodes[result._id].name is None:
            t.b.set_meta(result._id, name="out")
        return t.b.build(inputs, [("value", result._id)])
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


def _model_raised(e: Exception, name: str, file: str) -> GradgenError:
    line = None
    where = file
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if not _is_internal(frame.filename):
            where, line = frame.filename, frame.lineno
            break
    return GradgenError(
        f"tracing {name} raised {type(e).__name__}: {e}; fix the model so it runs on Values",
        where,
        line,
    )
