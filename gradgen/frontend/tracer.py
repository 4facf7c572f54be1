"""The recording half of tracing: `Tracer`, the traced scalar, and `_Trace`, the trace it writes to.

A `Tracer` looks like a `Value` (operators, the op registry's methods `tanh exp ...`, a
settable `label`) but records IR nodes instead of computing numbers.
Python floats become constants; control flow is fixed at trace time, so
anything that would need a traced number -- `.data`, `float()`,
comparisons, `bool()` -- is refused with the model file and line, as
`jax.jit` does.

Sugar is recorded in the engine's shapes: `a / b` is `mul(a, pow(b, -1))`,
so compiled code computes the engine's floats.  `a - b` and `-a` are
recorded as `sub` and `neg`, which equal the engine's `a + b * -1` and
`a * -1` exactly.

Parameters: while a trace runs, each module parameter `Value` has class
`_Param`, whose operators record on the active trace (`_ACTIVE[-1]`), so
`sum(p * p for p in model.parameters())` is traced.  `_Trace.lift` turns an
operand into a node id: a Tracer is itself, a module parameter is an element
of its parameter array (`elem W0 [j, i]`, grouped as `gradgen.params`
describes; the array input is added on first use, or up front with
`params=`), a number or a `Value` computed from numbers alone is a
constant; anything else is refused.
"""

from __future__ import annotations

import dataclasses
import numbers
import sys

from gradgen import params as params_mod
from gradgen.engine import Value
from gradgen.errors import GradgenError, TraceError
from gradgen.frontend.naming import Namer, is_internal
from gradgen.ir import shapes
from gradgen.ir.graph import Builder, Loc, Node, Origin
from gradgen.ir.ops import METHODS, OPS, Op


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
        self._locs: dict[tuple, Loc] = {}  # (file, line) -> its one Loc
        self.modules: list = []  # (prefix, module) whose parameters may be used
        self.layouts: list = []  # per module: its parameter arrays (gradgen.params.arrays)
        self._param_index: dict[int, tuple] | None = None  # id(Value) -> (module no, array name, index)
        self._param_inputs: dict[int, dict[str, int]] = {}  # module no -> array name -> input id
        self._elems: dict[tuple, int] = {}  # (array id, index) -> elem node
        self.plain_used: set[int] = set()  # array inputs indexed directly
        self.batched: set[int] = set()  # array inputs given to gradgen.mean
        self.batch_rows: tuple | None = None  # (example rows, array name) of the batch axis
        self.helper_names: dict[int, str] = {}  # node -> the model helper that returned it (naming)
        self.namer = Namer(self, model_file)  # names from the model's locals (frontend.naming)

    # -- parameters -------------------------------------------------------------
    def set_modules(self, modules, eager: bool) -> None:
        self.modules = modules
        for m, (prefix, module) in enumerate(modules):
            try:
                layout = params_mod.arrays(module, prefix)
            except ValueError as e:
                raise GradgenError(f"cannot group the parameters of {type(module).__name__}: {e}", self.model_file)
            self.layouts.append(layout)
            if eager:
                self._module_inputs(m)

    @property
    def _param_of(self) -> dict[int, tuple]:
        """id(Value) -> (module no, array name, index), the first module's; built on first use
        (a trace whose layers take their parameters as arrays never needs it)."""
        if self._param_index is None:
            found: dict[int, tuple] = {}
            for m, layout in enumerate(self.layouts):
                for arr in layout:
                    name = arr.name
                    for vid, index in arr.index_of.items():
                        if vid not in found:
                            found[vid] = (m, name, index)
            self._param_index = found
        return self._param_index

    def param_values(self) -> list:
        return [v for _, module in self.modules for _, v in params_mod.named_values(module)]

    def _module_inputs(self, m: int) -> dict[str, int]:
        if m not in self._param_inputs:
            self._param_inputs[m] = {
                arr.name: self.b.add(Op.INPUT, (), name=arr.name, origin=Origin("param", arr.name), shape=arr.shape)
                for arr in self.layouts[m]
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
        """The innermost frame outside gradgen: the model line being traced.

        One `Loc` per (file, line), shared by the nodes of that line (saves a
        record per node: a loop body's nodes all point at a few lines).  The nodes
        recorded at it are what `op` records (the array paths: layers, gradgen.mean), so
        the namer reads the model's locals here as it does at an op."""
        f = sys._getframe(1)
        internal_of = self._internal
        while f is not None:
            fn = f.f_code.co_filename
            internal = internal_of.get(fn)
            if internal is None:
                internal = internal_of[fn] = is_internal(fn)
            if not internal:
                line = f.f_lineno
                key = (fn, line)
                loc = self._locs.get(key)
                if loc is None:
                    loc = self._locs[key] = Loc(fn, line)
                nm = self.namer
                if fn == nm.file:
                    nm.at(f, line)
                    nm.loc = loc
                else:
                    nm.sync(f)
                return loc
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
        if isinstance(x, Value):  # (first: a parameter is the usual operand here, and numbers.Real is an ABC)
            nid = self._param(x)  # (a _Param reads no .data here)
            if nid is not None:
                return nid
            if _made_while_tracing(x):
                return self.b.const(float(Value.data.__get__(x)))
            data = Value.data.__get__(x)  # the slot itself: a _Param's .data property refuses
            raise self.fail(
                f"uses a Value that is neither an argument nor a parameter of a module "
                f"(data={_short_repr(data)}); pass it in as an argument, make it a module parameter "
                "(an attribute of an object the model file holds, or give params=), "
                "or use a plain float for a constant"
            )
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise self._bad_operand(x)
        return self.b.const(float(x))

    def _bad_operand(self, x) -> TraceError:
        from gradgen.frontend.arrays import ArrayArg  # (arrays imports this module)

        if isinstance(x, ArrayArg):
            return self.fail(
                f"{x._name} is an array argument{' row' if x._prefix else ''} of shape {x.shape}, "
                "used here as one value; index it (X[b][i]) or loop over it, or pass it to gradgen.mean"
            )
        return self.fail(
            f"unsupported operand of type {type(x).__name__}: "
            "only Values, ints and floats can be combined with a traced Value"
        )

    def op(self, op: Op, args, attr=None) -> "Tracer":
        """Record `op` on `args` (Tracers, parameters, numbers) at the model line running now.

        The hot path of tracing (a million calls for a 1M-node chain), so written to open few
        Python frames: `loc` and `Tracer()` are inlined, and so is the namer's usual case, an
        op on the same model line as the last one (see `naming.Namer`)."""
        # the innermost frame outside gradgen (op's caller is a Tracer method: start above it)
        f = _getframe(2)
        internal_of = self._internal
        while f is not None:
            fn = f.f_code.co_filename
            internal = internal_of.get(fn)
            if internal is None:
                internal = internal_of[fn] = is_internal(fn)
            if not internal:
                break
            f = f.f_back
        nm = self.namer
        if f is None:
            loc = None
        elif f is nm.frame and f.f_lineno == nm.line:  # the line of the last op: its Loc, its locals
            loc = nm.loc
            lasti = f.f_lasti
            if lasti <= nm.lasti:  # jumped back (a loop): where a line hook would read the locals
                nm.name_locals(f)
            nm.lasti = lasti
        else:
            line = f.f_lineno
            loc = self._locs.get((fn, line))
            if loc is None:
                loc = self._locs[(fn, line)] = Loc(fn, line)
            if fn == nm.file:
                nm.at(f, line)
                nm.loc = loc
            else:  # a frame of another file of the user's: name at the model frame that called it
                nm.sync(f)
        nodes = self.b.nodes
        ids = []
        shape = ()  # every op a Tracer records is elementwise: the arguments' one shape, or ()
        same = True
        for a in args:
            i = a._id if type(a) is Tracer and a._trace is self else self.lift(a)
            s = nodes[i].shape
            if s:
                if shape and s != shape:
                    same = False
                shape = s
            ids.append(i)
        out = _new(Tracer)  # Tracer(self, nid) without its __init__ frame
        out._trace = self
        if same:  # Builder.add_tagged, inlined: () and one shape S broadcast to S (a batch axis: ("B",))
            nid = out._id = len(nodes)
            nodes.append(_Node(nid, op, tuple(ids), attr, None, None, loc, None, None, None, shape, (), None))
        else:  # shapes that differ: the shape rule (and its error)
            out._id = self.b.add_tagged(op, tuple(ids), attr, loc, None, None)
        return out


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
        self._trace.namer.sync(_getframe(1))  # the names a line hook would have given by now
        return self._trace.b.nodes[self._id].name or ""

    @label.setter
    def label(self, text) -> None:
        self._trace.namer.sync(_getframe(1))  # (a local named it first: the label wins)
        self._trace.b.set_meta(self._id, name=str(text))

    # -- primitives -------------------------------------------------------------
    def __add__(self, other):
        return self._trace.op(_ADD, (self, other))

    def __radd__(self, other):
        return self._trace.op(_ADD, (other, self))

    def __sub__(self, other):
        if isinstance(other, numbers.Integral) and not isinstance(other, bool) and other == 0:
            # the engine's x - 0 is x + (0 * -1) == x + 0 (an int: no -0), which is 0.0 at x = -0.0
            return self._trace.op(_ADD, (self, 0.0))
        return self._trace.op(_SUB, (self, other))

    def __rsub__(self, other):
        return self._trace.op(_SUB, (other, self))

    def __mul__(self, other):
        return self._trace.op(_MUL, (self, other))

    def __rmul__(self, other):
        return self._trace.op(_MUL, (other, self))

    def __neg__(self):
        return self._trace.op(_NEG, (self,))

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
        return self._trace.op(_POW, (self,), k)

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
        return t.op(_MUL, (self, Tracer(t, t.b.add(_POW, [t.lift(other)], -1, loc=t.loc()))))

    def __rtruediv__(self, other):
        return self._trace.op(_MUL, (other, self._trace.op(_POW, (self,), -1)))

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
_new = object.__new__
_getframe = sys._getframe
_Node = Node
# the ops Tracer's operators record, bound once: on Python 3.11 `Op.ADD` goes through the
# Enum metaclass's __getattr__ hook (~0.5 us a read)
_ADD, _SUB, _MUL, _NEG, _POW = Op.ADD, Op.SUB, Op.MUL, Op.NEG, Op.POW


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

# Tracer.op builds a node positionally, with the broadcast of () and one shape for its shape:
# that needs every op it records to have the elementwise shape rule, and Node's fields in this order
assert all(OPS[op].shape is shapes.elementwise for op in (_ADD, _SUB, _MUL, _NEG, _POW, *METHODS.values()))
assert tuple(f.name for f in dataclasses.fields(Node)) == (
    "id", "op", "args", "attr", "name", "origin", "loc", "adj", "rule", "step", "shape", "terms", "second",
), "Node's fields changed: update Tracer.op in gradgen/frontend/tracer.py"  # fmt: skip
