'''The NumPy backend: array graphs -> float64 NumPy code.

Elementwise ops print as NumPy ufuncs (`np.maximum(z0, 0.0)`, `np.tanh`),
`matmul` as `@`, `transpose` as `.T`, `elem` as indexing (`z2[:, 0]`: a
batched array keeps its batch axis), `sum` as `x.sum(axis=...)`,
`expand` as `x[:, None]`, `batch` as `B` (set after the argument check from the
data), `bcast` as `np.full` / `np.broadcast_to(...).copy()`, and `pack` as
`np.array([...])` / `np.stack` when its pieces fill the array in order,
else the `_pack` helper.

Every value has the IR's float dtype and shape: a value of shape `()` is a
float (a Python float or `np.float64`, never a 0-d array or a bool), so a
scalar node is spelled with the Python backend's formats (`math.exp(b)`,
`float(x > 0.0)`, the exact engine functions) and no array syntax is
applied to it (`expand` of a scalar is `np.array(x, ndmin=1)`); `step` on an array is
a float mask, `(x > 0.0).astype(float)`.

The argument check is one line per function, `W0, ..., y = _args(_loss_args, W0, ..., y)`,
against a module-level table, one string (`_loss_args = "loss W0:16,2 ... X:B,2 y:B"`: the
function, then each argument's shape; after "; " the data arrays of fixed shape).
An array argument must be a NumPy array of its compiled shape (`B` is read from
the data) whose dtype is a real number type; one that is not float64 (float32, an
int array) is converted to float64, so values and gradients always come back
float64; anything else (a list, a torch tensor, a bool, complex or object array,
a wrong shape) is a `ValueError` naming the argument.  A scalar argument is
converted with `float()`.  The fast path (float64 arrays of shapes that passed the
check before) is one dict lookup and one list comparison; the rest reads the table.
'''

from __future__ import annotations

import inspect
import itertools

from gradgen import mathfn
from gradgen.backends.base import ATOM, Format, as_tuple, is_array_graph  # noqa: F401 (is_array_graph: api)
from gradgen.backends.python import PYTHON, PythonBackend
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched, show

def dims_text(shape) -> str:
    """A shape as the argument table writes it: `16,2`, `B,2`, `` for a scalar."""
    return ",".join(map(str, shape))


def _axes(axes) -> str:
    return str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"


def _index(n, nodes) -> str:
    x = nodes[n.args[0]]
    parts = ([":"] if batched(x.shape) else []) + [str(i) for i in n.attr]
    return ", ".join(parts)


def _nested(items: list[str], dims) -> str:
    if len(dims) == 1:
        return "[" + ", ".join(items) + "]"
    step = len(items) // dims[0]
    return "[" + ", ".join(_nested(items[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])) + "]"


def in_order(n) -> bool:
    """Whether a pack's pieces fill its leading axes in order (so a stack or nested list builds it)."""
    is_batched, shape, indices = n.attr
    k = len(indices[0]) if indices else 0
    grid = list(itertools.product(*(range(d) for d in shape[:k])))
    return bool(k) and list(indices) == grid and all(len(i) == k for i in indices)


def pack_layout(n) -> str:
    """`_pack`'s shape, batched and index arguments: `(B,) + (2, 3), True, ((0,), (1,))`."""
    is_batched, shape, indices = n.attr
    idx = as_tuple([show(i) if i else "()" for i in indices])
    return f"{'(B,) + ' if is_batched else ''}{show(shape)}, {is_batched}, {idx}"


def arg_table(graph, fname: str, names: list[str]) -> tuple[str, str]:
    """(table name, table literal) for the argument check of `fname`: "f W0:16,2 X:B,2 k:",
    then "; X" naming the data arrays of fixed shape (their message says to use gradgen.mean)."""
    nodes = [graph.nodes[i] for i in graph.inputs]
    spec = " ".join(f"{nm}:{dims_text(n.shape)}" for nm, n in zip(names, nodes))
    data = [nm for nm, n in zip(names, nodes) if n.shape and not batched(n.shape) and n.origin is not None and n.origin.kind == "arg"]
    return f"_{fname}_args", f'"{fname} {spec}' + (f"; {' '.join(data)}" if data else "") + '"'


def check_lines(graph, fname: str, names: list[str], helper: str = "_args") -> tuple[list[str], list[str]]:
    """(the table line, the body's check line and `B = X.shape[0]` where the body uses B)."""
    table, call = arg_table(graph, fname, names)
    lhs = ", ".join(names) if len(names) != 1 else f"({names[0]},)"
    body = [f"    {lhs} = {helper}({table}, {', '.join(names)})"]
    if any(n.op is Op.BATCH or n.op in (Op.BCAST, Op.PACK) and batched(n.shape) for n in graph.nodes):
        first = next(nm for nm, i in zip(names, graph.inputs) if batched(graph.nodes[i].shape))
        body.append(f"    B = {first}.shape[0]")
    return [f"{table} = {call}"], body


# results that may be updated in place (`g += c`): the registry's `fresh` facts
FRESH = frozenset(op for op in Op if OPS[op].fresh)


def spelling(op: Op) -> Format | None:
    """How this backend writes `op` (the op registry's "numpy" spelling when it has one), or None."""
    try:
        return NUMPY.spelling(op)
    except KeyError:
        return None


class NumpyBackend(PythonBackend):
    name = "numpy"
    imports = {"math": "import math", "np": "import numpy as np"}
    always = frozenset({"np"})
    module_names = frozenset({"math", "np", "_pack", "_np_sigmoid", "_sigmoid", "_args", "_flat", "_scratch"})
    reserved = module_names | {"B"}
    inplace_ok = FRESH
    array = True

    def expression(self, n, operand, sched, helpers, needs):
        if n.op in SCALAR_SPELLED and not n.shape:
            # a float in, a float out: the engine's own functions (math.exp, float(x > 0.0))
            return PYTHON.expression(n, operand, sched, helpers, needs)
        return super().expression(n, operand, sched, helpers, needs)

    def special(self, n, operand, sched):
        op, nodes = n.op, sched.graph.nodes
        if op is Op.BATCH:
            return "B", ATOM, None
        if op is Op.ELEM:
            return f"{operand(n.args[0], ATOM)}[{_index(n, nodes)}]", ATOM, None
        if op is Op.SUM:
            x = nodes[n.args[0]]
            if not n.attr:  # over no axes: the value itself (a copy, since a sum may be updated in place)
                return (operand(x.id, 0), 0, None) if not x.shape else (f"{operand(x.id, ATOM)}.copy()", ATOM, None)
            whole = tuple(n.attr) == tuple(range(len(x.shape)))
            if whole and x.op is Op.MUL and not sched.line[x.id] and all(nodes[a].shape == x.shape for a in x.args):
                # sum(a * b) over everything: one dot product, no temporary
                a, b = x.args
                return f"np.vdot({operand(a, 0)}, {operand(b, 0)})", ATOM, None
            if whole:
                return f"{operand(x.id, ATOM)}.sum()", ATOM, None
            return f"{operand(x.id, ATOM)}.sum(axis={_axes(n.attr)})", ATOM, None
        if op is Op.EXPAND:
            if not nodes[n.args[0]].shape:  # a float has no axes to index: an array of shape (1,), (1, 1), ...
                return f"np.array({operand(n.args[0], 0)}, ndmin={len(n.shape)})", ATOM, None
            parts = ["None" if k in n.attr else ":" for k in range(len(n.shape))]
            while parts and parts[-1] == ":":
                parts.pop()
            return f"{operand(n.args[0], ATOM)}[{', '.join(parts)}]", ATOM, None
        if op is Op.BCAST:
            if not n.shape:  # () -> (): the float itself
                return operand(n.args[0], 0), 0, None
            if not nodes[n.args[0]].shape:
                return f"np.full({show(n.shape)}, {operand(n.args[0], 0)})", ATOM, None
            return f"np.broadcast_to({operand(n.args[0], 0)}, {show(n.shape)}).copy()", ATOM, None
        if op is Op.PACK:
            pieces = [operand(a, 0) for a in n.args]
            is_batched, shape, indices = n.attr
            if in_order(n) and is_batched and len(indices[0]) == 1:
                return f"np.stack([{', '.join(pieces)}], axis=1)", ATOM, None
            if in_order(n) and not is_batched:
                return f"np.array({_nested(pieces, shape[: len(indices[0])])})", ATOM, None
            return f"_pack({pack_layout(n)}, {', '.join(pieces)})", ATOM, "_pack"
        return None

    def prologue(self, graph, fname, names):
        if not any(graph.nodes[i].shape for i in graph.inputs):
            return [], [], set()
        tables, body = check_lines(graph, fname, names)
        return tables, body, {"_args"}

    def doc_grad(self, base, grads):
        return f"Value of {base} and its gradient with respect to {', '.join(grads)}."


PACK_HELPER = '''def _pack(shape, batched, indices, *pieces):
    """Zeros of `shape` plus each piece at its index (after the batch axis if batched); overlapping pieces add."""
    out = np.zeros(shape)
    lead = (slice(None),) if batched else ()
    for index, piece in zip(indices, pieces):
        out[lead + index] += piece
    return out
'''

ARGS_HELPER = '''def _args(table, *args, _seen={}):
    """The arguments as float64 arrays of their shapes (B from the data) and floats."""
    try:  # the fast path: float64 arrays of shapes checked before
        if [x.dtype for x in args] == _seen[table, tuple([x.shape for x in args])]:
            return args
    except (AttributeError, KeyError, TypeError):
        pass  # a list, a float, a float32 array, shapes not seen yet, ...
    head, _, data = table.partition("; ")  # "f W0:16,2 X:B,2 k:; X": X's shape is fixed
    fname, *spec = head.split()
    out, B, first = [], None, None  # B: the rows of the first batched argument
    for x, (name, dims) in zip(args, (a.split(":") for a in spec)):
        shape = tuple(d if d == "B" else int(d) for d in dims.split(",") if d)
        show, err = str(shape).replace("'", ""), None  # (B, 2)
        want = f"must be a float64 NumPy array of shape {show}, got"
        if shape == ():
            a = np.asarray(x)
            if a.dtype.kind not in "fiu" or a.ndim:
                got = f"an array of shape {a.shape}" if a.ndim else type(x).__name__
                err = f"must be a number (a float), got {got}"
        elif not isinstance(x, np.ndarray):
            got = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
            err = f"{want} {got} (convert it with np.asarray)"
        elif x.dtype.kind not in "fiu":
            err = f"{want} an array of dtype {x.dtype}"
        elif shape[0] == "B" and not x.shape:
            err = f"{want} a 0-d array"
        elif shape[0] == "B" and not x.shape[0]:
            err = "has no rows: a batch needs at least one example"
        elif shape[0] == "B":
            B, first = B or x.shape[0], first or name
            if x.shape != (B,) + shape[1:]:
                err = f"has shape {x.shape}, but {fname} takes {show} with B = {B}"
                err += f" (the rows of {first}): every batched array has one row"
                err += " per example"
        elif x.shape != shape:
            err = f"has shape {x.shape}, but {fname} was compiled for {show}"
            if name in data.split():
                err += " (the batch size is fixed by the traced example:"
                err += " use gradgen.mean for any batch size)"
        if err:
            raise ValueError(f"{fname}: {name} {err}")
        out.append(float(x) if shape == () else np.asarray(x, dtype=np.float64))
    if all(type(x) is np.ndarray and a is x for a, x in zip(out, args)):
        _seen[table, tuple([x.shape for x in args])] = [x.dtype for x in args]
    return tuple(out)
'''


def _np_sigmoid_source():
    src = inspect.getsource(mathfn.np_sigmoid)
    return src.replace("def np_sigmoid(", "def _np_sigmoid(", 1).replace("    import numpy as np\n\n", ""), ("np",)


def _lean():
    from gradgen.backends import lean  # the step's helpers (lean imports this module)

    return lean


NumpyBackend.helpers = {
    **PythonBackend.helpers,
    "_np_sigmoid": _np_sigmoid_source,
    "_pack": lambda: (PACK_HELPER, ("np",)),
    "_args": lambda: (ARGS_HELPER, ("np",)),
    "_flat": lambda: (_lean().FLAT_HELPER, ("np",)),
    "_scratch": lambda: (_lean().SCRATCH_HELPER, ("np",)),
}
NUMPY = NumpyBackend()
FORMATS = {op: spelling(op) for op in Op if spelling(op) is not None}
HELPERS = {op: f.helper for op, f in FORMATS.items() if getattr(f, "helper", None)}


def _spelled_differently() -> frozenset:
    out = set()
    for op in Op:
        try:
            p, n = PYTHON.spelling(op), NUMPY.spelling(op)
        except KeyError:
            continue
        if p is not None and n is not None and p != n:
            out.add(op)
    return frozenset(out)


# ops whose NumPy spelling would give a 0-d array, a bool or an ulp-different float on a
# scalar: every op the two backends spell differently (a scalar node uses the Python spelling)
SCALAR_SPELLED = _spelled_differently()
