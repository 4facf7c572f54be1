"""Trace a Python function of `Value`s into IR, once.

The function is called with one `Tracer` per argument.  A `Tracer` looks
like a `Value` (operators, the registry's methods `tanh exp ...`, a settable `label`)
but records IR nodes instead of computing numbers.  Python floats become
constants; control flow is fixed at trace time, so anything that would need
a traced number -- `.data`, `float()`, comparisons, `bool()` -- is refused
with the model file and line, as `jax.jit` does.

Sugar is recorded in the engine's shapes: `a / b` is `mul(a, pow(b, -1))`,
so compiled code computes the engine's floats.  `a - b` and `-a` are
recorded as `sub` and `neg`, which equal the engine's `a + b * -1` and
`a * -1` exactly.

Parameters: a `Value` that is not an argument but a parameter of a
`gradgen.nn` module (the function's `params=`, or a module among the model
file's globals) becomes an element of an array input, `elem W0 [j, i]`,
grouped as `gradgen.params` describes; each used module contributes all its
arrays to the signature, before the function's own arguments.

Arrays: an argument whose `example` is an array is traced as an `ArrayArg`:
indexing and iterating it gives traced elements (`elem X [b, i]`), so
micrograd's `[list(map(Value, row)) for row in X]` traces (`Value(t)` of a
traced `t` is `t`), fixed to the example's shape.  `gradgen.mean(fn, X, y)`
instead makes the first axis of `X` and `y` a batch axis of unknown size
`B`: `fn` is traced once on one symbolic example (its values have shape
`(B,)`), and the mean is `sum over the batch * (1.0 / B)`, the engine's
`sum(losses) * (1.0 / len(losses))`.

Names: a `label` set on a traced value wins; otherwise the first local
variable the value is bound to in a model-file frame (found with
`sys.settrace`, looking at each frame's locals line by line); otherwise
the emitter names it after its op.
"""

from __future__ import annotations

import inspect
import keyword
import numbers
import os
import sys
import traceback

from dataclasses import replace

import numpy as np

from gradgen import params as params_mod
from gradgen import engine
from gradgen.frontend import randomness
from gradgen.engine import Value
from gradgen.errors import GradgenError, TraceError
from gradgen.ir.graph import VALUE, Builder, Graph, Loc, Origin
from gradgen.ir.ops import METHODS, Op
from gradgen.ir.shapes import BATCH

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # gradgen/


def _is_internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def _short_repr(x) -> str:
    """`repr(x)` of a plain number, else its type: for messages, never user-defined text."""
    if type(x) in (int, float):
        return repr(x)
    return f"a {type(x).__name__}"


class _Trace:
    def __init__(self, name: str, model_file: str):
        self.b = Builder(name)
        self.model_file = model_file
        self.code = None  # the exported function's code object
        self.return_line: int | None = None  # where it returned (for output errors)
        self._internal: dict[str, bool] = {}
        self.modules: list = []  # (prefix, module) whose parameters may be used
        self._param_of: dict[int, tuple] = {}  # id(Value) -> (module no, array name, index)
        self._param_inputs: dict[int, dict[str, int]] = {}  # module no -> array name -> input id
        self._elems: dict[tuple, int] = {}  # (array id, index) -> elem node
        self.plain_used: set[int] = set()  # array inputs indexed directly
        self.batched: set[int] = set()  # array inputs given to gradgen.mean
        self.batch_rows: tuple | None = None  # (example rows, array name) of the batch axis

    # -- parameters -------------------------------------------------------------
    def set_modules(self, modules, eager: bool) -> None:
        self.modules = modules
        for m, (prefix, module) in enumerate(modules):
            try:
                layout = params_mod.arrays(module, prefix)
            except ValueError as e:
                raise GradgenError(f"cannot group the parameters of {type(module).__name__}: {e}", self.model_file)
            for arr in layout:
                for v in arr.values:
                    self._param_of.setdefault(id(v), (m, arr.name, arr.index_of[id(v)]))
            if eager:
                self._module_inputs(m)

    def param_values(self) -> list:
        return [v for _, module in self.modules for v in module.parameters()]

    def _module_inputs(self, m: int) -> dict[str, int]:
        if m not in self._param_inputs:
            prefix, module = self.modules[m]
            self._param_inputs[m] = {
                arr.name: self.b.add(Op.INPUT, (), name=arr.name, origin=Origin("param", arr.name), shape=arr.shape)
                for arr in params_mod.arrays(module, prefix)
            }
        return self._param_inputs[m]

    def param_inputs(self) -> list[int]:
        return [i for m in sorted(self._param_inputs) for i in self._param_inputs[m].values()]

    def elem(self, array: int, index: tuple) -> int:
        key = (array, index)
        if key not in self._elems:
            self._elems[key] = self.b.add(Op.ELEM, (array,), index)
        return self._elems[key]

    def _param(self, v: Value) -> int | None:
        found = self._param_of.get(id(v))
        if found is None:
            return None
        m, name, index = found
        array = self._module_inputs(m)[name]
        return self.elem(array, index) if index else array

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
        if isinstance(x, ArrayArg):
            raise self.fail(
                f"{x._name} is an array argument{' row' if x._prefix else ''} of shape {x.shape}, "
                "used here as one value; index it (X[b][i]) or loop over it, or pass it to gradgen.mean"
            )
        if isinstance(x, bool) or not isinstance(x, (numbers.Real, Value)):
            raise self.fail(
                f"unsupported operand of type {type(x).__name__}: "
                "only Values, ints and floats can be combined with a traced Value"
            )
        if isinstance(x, Value):
            nid = self._param(x)  # (a _Param reads no .data here)
            if nid is not None:
                return nid
            if _made_while_tracing(x):
                return self.b.const(float(Value.data.__get__(x)))
            data = Value.data.__get__(x)  # the slot itself: a _Param's .data property refuses
            raise self.fail(
                f"uses a Value that is neither an argument nor a parameter of a gradgen.nn module "
                f"(data={_short_repr(data)}); pass it in as an argument, make it a module parameter, "
                "or use a plain float for a constant"
            )
        return self.b.const(float(x))

    def op(self, op: Op, args, attr=None) -> "Tracer":
        ids = [self.lift(a) for a in args]
        return Tracer(self, self.b.add(op, ids, attr, loc=self.loc()))


def _made_while_tracing(v: Value) -> bool:
    """A Value computed while the trace ran from numbers alone (`Value(0.0)`, `Value(2) * 3`): a constant."""
    stack, seen = [v], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if type(x) is not Value or not x._const or type(x.data) not in (int, float):
            return False
        stack.extend(x._prev)
    return True


_CONTROL_FLOW = (
    "{what} needs the number inside a traced Value, but control flow on data cannot "
    "be compiled (the branch taken would be baked in); compute both sides with Values "
    "(e.g. relu) or make the choice outside the exported function"
)


class Tracer:
    """A traced scalar: records IR instead of computing."""

    __slots__ = ("_trace", "_id")
    __gradgen_traced__ = True

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
        if isinstance(other, numbers.Integral) and not isinstance(other, bool) and other == 0:
            # the engine's x - 0 is x + (0 * -1) == x + 0 (an int: no -0), which is 0.0 at x = -0.0
            return self._trace.op(Op.ADD, (self, 0.0))
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
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            raise self._trace.fail(f"the exponent must be an int or float, not {type(k).__name__}")
        # an exact int or float: the attribute is printed into generated code
        k = int(k) if isinstance(k, numbers.Integral) else float(k)
        return self._trace.op(Op.POW, (self,), k)

    def __rpow__(self, base):
        raise self._trace.fail(
            "number ** Value is not supported (exponents must be constants); "
            "for c > 0 write (x * math.log(c)).exp()"
        )

    def __truediv__(self, other):
        if isinstance(other, numbers.Real) and not isinstance(other, bool) and other == 0:
            raise self._trace.fail("division by the constant zero; divide by a nonzero number")
        # the engine's a / b == a * b**-1, kept so compiled code matches it bit for bit;
        # lift() refuses what cannot be an operand (and takes module parameters)
        t = self._trace
        return t.op(Op.MUL, (self, Tracer(t, t.b.add(Op.POW, [t.lift(other)], -1, loc=t.loc()))))

    def __rtruediv__(self, other):
        return self._trace.op(Op.MUL, (other, self._trace.op(Op.POW, (self,), -1)))

    # x.tanh(), x.exp(), ...: one method per registry op with a `method`, installed below _Param

    # -- things a trace cannot do ---------------------------------------------------
    def _refuse(self, what: str):  # `what` reads as the subject of the message
        raise self._trace.fail(_CONTROL_FLOW.format(what=what))

    @property
    def data(self):
        self._refuse(".data")

    @property
    def grad(self):
        raise self._trace.fail(".grad of a traced value: gradients come from the compiled _grad function")

    @grad.setter
    def grad(self, value):
        raise self._trace.fail("setting .grad inside an exported function: gradients come from the compiled _grad function")

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

    def __repr__(self):
        return f"Tracer(%{self._id})"


_ACTIVE: list = []  # the trace in progress (for parameters)


class _Param(Value):
    """A module parameter while a trace runs: every operation goes to the tracer.

    `trace` switches each parameter `Value`'s class to this one and back, so
    `sum(p * p for p in model.parameters())` is traced, not computed.
    """

    __slots__ = ()

    def _t(self) -> "Tracer":
        t = _ACTIVE[-1]
        return Tracer(t, t.lift(self))

    @property
    def data(self):
        self._t()._refuse(".data of a parameter")

    def __add__(self, o):
        return self._t() + o

    def __radd__(self, o):
        return o + self._t()

    def __sub__(self, o):
        return self._t() - o

    def __rsub__(self, o):
        return o - self._t()

    def __mul__(self, o):
        return self._t() * o

    def __rmul__(self, o):
        return o * self._t()

    def __truediv__(self, o):
        return self._t() / o

    def __rtruediv__(self, o):
        return o / self._t()

    def __neg__(self):
        return -self._t()

    def __pow__(self, k):
        return self._t() ** k

    def backward(self):
        self._t().backward()


def _install_methods() -> None:
    """One method per op with a registry `method` (`x.tanh()`, ...) on `Tracer` and `_Param`,
    and its operator `__<method>__` too where the engine defines one (what a builtin calls)."""
    for name, op in METHODS.items():
        for attr in (name, f"__{name}__"):
            if attr == name or hasattr(Value, attr):
                _install(Tracer, attr, lambda self, op=op: self._trace.op(op, (self,)))
                _install(_Param, attr, lambda self, name=name: getattr(self._t(), name)())


def _install(cls, name: str, fn) -> None:
    fn.__name__, fn.__qualname__ = name, f"{cls.__name__}.{name}"
    setattr(cls, name, fn)


_install_methods()


class ArrayArg:
    """A traced array argument (or a row of one): index or iterate it to get traced elements."""

    __slots__ = ("_trace", "_id", "_name", "_shape", "_prefix")

    def __init__(self, trace: _Trace, nid: int, name: str, shape: tuple, prefix: tuple = ()):
        self._trace, self._id, self._name, self._shape, self._prefix = trace, nid, name, shape, prefix

    @property
    def shape(self) -> tuple:
        return self._shape[len(self._prefix) :]

    def _plain(self, what: str) -> None:
        if self._id in self._trace.batched:
            raise self._trace.fail(
                f"{what} of {self._name}, which is passed to gradgen.mean: inside the batch its size "
                "is unknown; use the per-example arguments gradgen.mean gives the function"
            )
        self._trace.plain_used.add(self._id)

    def __len__(self) -> int:
        self._plain("len()")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        self._plain("indexing")
        index = list(self._prefix)
        for k in keys:
            axis = len(index)
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                raise self._trace.fail(
                    f"{self._name} can only be indexed with integers (got {type(k).__name__}); "
                    "slices and arrays of indices are not traced: loop over the elements"
                )
            if axis >= len(self._shape):
                raise self._trace.fail(f"too many indices for {self._name} of shape {self._shape}")
            n = self._shape[axis]
            if not -n <= k < n:
                raise self._trace.fail(f"index {k} is out of range for axis {axis} of {self._name} (size {n})")
            index.append(int(k) % n)
        index = tuple(index)
        if len(index) == len(self._shape):
            return Tracer(self._trace, self._trace.elem(self._id, index))
        return ArrayArg(self._trace, self._id, self._name, self._shape, index)

    def _refuse(self, what):
        raise self._trace.fail(
            f"{what} of the array argument {self._name}: the compiler sees its elements only; "
            "index it or loop over it"
        )

    def __array__(self, *args, **kwargs):
        self._refuse("using it as a NumPy array")

    def __bool__(self):
        self._refuse("bool()")

    def __repr__(self):
        return f"ArrayArg({self._name}, shape={self.shape})"


def batch_mean(fn, arrays) -> Tracer:
    """`gradgen.mean(fn, *arrays)` inside a trace (see `gradgen.batch.mean`)."""
    result = batch_each(fn, arrays, "gradgen.mean")
    t = result._trace
    loc = t.loc()
    total = t.b.add(Op.SUM, (result._id,), (0,), loc=loc)
    inv = t.b.add(Op.DIV, (t.b.const(1.0), t.b.add(Op.BATCH, (), loc=loc)), loc=loc)
    return Tracer(t, t.b.add(Op.MUL, (total, inv), loc=loc))


def batch_each(fn, arrays, what: str = "gradgen.each") -> Tracer:
    """`fn` traced once on a symbolic example of the batched `arrays`: a Tracer of shape (B,)."""
    t = next(a._trace for a in arrays if isinstance(a, ArrayArg))
    examples = []
    for a in arrays:
        if not isinstance(a, ArrayArg) or a._trace is not t or a._prefix:
            raise t.fail(
                f"{what} needs whole array arguments of the exported function "
                "(each with an array `example`), all batched along their first axis"
            )
        if a._id in t.plain_used:
            raise t.fail(f"{a._name} is indexed directly and also passed to {what}; use one or the other")
        rows = a._shape[0]
        if t.batch_rows is None:
            t.batch_rows = (rows, a._name)
        elif rows != t.batch_rows[0]:
            raise t.fail(
                f"{what} over {a._name} ({rows} rows in the example) and {t.batch_rows[1]} "
                f"({t.batch_rows[0]} rows): a function has one batch axis, shared by every "
                "gradgen.mean/each; give the batches the same size, or compile one function per batch"
            )
        if a._id not in t.batched:
            t.batched.add(a._id)
            t.b.nodes[a._id] = replace(t.b.nodes[a._id], shape=(BATCH,) + tuple(a._shape[1:]))
        examples.append(_example(t, a._id, tuple(a._shape[1:]), ()))
    result = fn(*examples)
    if not isinstance(result, Tracer) or result._trace is not t:
        raise t.fail(
            f"the function given to {what} returned {type(result).__name__}; "
            "it must return one Value computed from its example"
        )
    if t.b.nodes[result._id].shape != (BATCH,):
        raise t.fail(f"the function given to {what} returned a Value that does not depend on its example")
    return result


def _example(t: _Trace, array: int, shape: tuple, index: tuple):
    """One example of a batched array: a Tracer (scalar rows) or nested lists of them."""
    if len(index) == len(shape):
        return Tracer(t, t.elem(array, index) if index else array)
    return [_example(t, array, shape, index + (k,)) for k in range(shape[len(index)])]


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
    return [name for name, _ in signature_defaults(fn, file)]


def signature_defaults(fn, file: str) -> list[tuple[str, object]]:
    """[(argument, default or inspect.Parameter.empty)] of an exported function.

    A default is kept (the compiled functions take it too) when it is a
    number; anything else is refused: it would be a configuration switch,
    and the compiled module cannot take a different one.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise GradgenError(f"cannot read the signature of {fn.__name__}: {e}", file)
    out = []
    for p in sig.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise GradgenError(
                f"exported function {fn.__name__} has a {p.kind.description} parameter "
                f"({p.name}); gradgen needs a fixed list of scalar arguments",
                file,
                def_line(fn),
            )
        default = p.default
        if default is not p.empty:
            if isinstance(default, bool) or not isinstance(default, numbers.Real):
                raise GradgenError(
                    f"argument {p.name} of {fn.__name__} has a default of type {type(default).__name__}; "
                    "a compiled argument is a number: give a number as the default, or make the "
                    "setting a module-level constant",
                    file,
                    def_line(fn),
                )
            default = float(default)
        out.append((p.name, default))
    return out


def _modules(fn, params) -> tuple[list, bool]:
    """[(array-name prefix, module)] whose parameters may appear, and whether all are inputs."""
    from gradgen.nn import Module

    named, seen = [], set()
    for k, v in fn.__globals__.items():
        if isinstance(v, Module) and id(v) not in seen:  # one module under two names counts once
            seen.add(id(v))
            named.append((k, v))
    if params is None:
        found, eager = named, False
    else:
        mods = list(params) if isinstance(params, (list, tuple)) else [params]
        for m in mods:
            if not isinstance(m, Module):
                raise GradgenError(
                    f"params= of {fn.__name__} must be a gradgen.nn Module or a list of them, "
                    f"not {type(m).__name__}",
                    fn.__code__.co_filename,
                    def_line(fn),
                )
        mods = list({id(m): m for m in mods}.values())
        names = {id(v): k for k, v in reversed(named)}
        found = [(names.get(id(m), f"m{k}"), m) for k, m in enumerate(mods)]
        eager = True
    if len(found) == 1:
        return [("", found[0][1])], eager
    return [(f"{k}_", m) for k, m in found], eager


def _example_shapes(fn, names: list[str], example, file: str) -> dict[str, tuple]:
    """{argument: shape} for the arguments whose example is an array."""
    if example is None:
        return {}
    where = (file, def_line(fn))
    if isinstance(example, dict):
        items = example
        unknown = [str(k) for k in items if k not in names]
        if unknown:
            raise GradgenError(
                f"the example names {', '.join(unknown)}, which {fn.__name__}({', '.join(names)}) "
                "does not take; name the function's arguments",
                *where,
            )
    elif isinstance(example, (list, tuple)):
        if len(example) != len(names):
            raise GradgenError(
                f"the example has {len(example)} values but {fn.__name__}({', '.join(names)}) takes "
                f"{len(names)}; give one per argument (or a dict by name)",
                *where,
            )
        items = dict(zip(names, example))
    else:
        raise GradgenError(
            f"the example must be a dict by argument name or a sequence of values, not {type(example).__name__}",
            *where,
        )
    shapes = {}
    for k, v in items.items():
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            continue
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise GradgenError(
                f"the example for {k} is a {type(v).__name__}; give a number, or an array for an array argument",
                *where,
            )
        try:
            shape = np.shape(v)
        except Exception:
            shape = ()
        if shape == () or 0 in shape:
            if not isinstance(v, (list, tuple, np.ndarray)):
                continue
            raise GradgenError(f"the example for {k} is an empty array; give at least one element", file, def_line(fn))
        shapes[k] = tuple(int(d) for d in shape)
    return shapes


def trace(fn, name: str | None = None, example=None, params=None) -> Graph:
    """Trace `fn` into a forward IR graph.

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
    sig = signature_defaults(fn, file)
    arg_names = [a for a, _ in sig]
    shapes = _example_shapes(fn, arg_names, example, file)
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
    modules, eager = _modules(fn, params)
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
    sys.settrace(_model_frame_namer(t, {fn.__code__.co_filename}))
    try:
        result = fn(*args)
        drawn = randomness.changed(rng_before)
        if drawn is not None:
            randomness.restore(rng_before)
            raise _random_draw(fn, args, name, file, drawn, rng_before)
    except (GradgenError, KeyboardInterrupt):
        raise
    except BaseException as e:  # the model raised (or called sys.exit): report where, in one line
        raise _model_raised(e, name, file) from e
    finally:
        sys.settrace(old)
        for v in swapped:
            v.__class__ = Value
        engine.TRACING[0] -= 1
        _ACTIVE.pop()

    line = t.return_line or def_line(fn)
    if isinstance(result, Tracer) and result._trace is t:
        if t.b.nodes[result._id].name is None:
            t.b.set_meta(result._id, name="out")
        return t.b.build(t.param_inputs() + arg_inputs, [(VALUE, result._id)])
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
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not _is_internal(f.filename)]
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
