"""The torch backend: IR graphs -> float64 torch code, tensors in and out.

`gradgen compile --backend torch` (or `compile_function(..., backend="torch")`)
writes the same function as the NumPy backend, line for line (the same schedule,
names and rule comments), in torch: `torch.tanh`, `torch.relu`, `@`, `.T`,
`x.sum(dim=0)`, `torch.stack`, `torch.full(..., device=W0.device)`.  The module
imports torch only.  Code runs where its arguments are: new tensors are made on
the first argument's device, never on a hard-coded one, so CUDA tensors in give
CUDA tensors out.

Every argument becomes a float64 tensor: an array argument must be a tensor of its
compiled shape (`B` from the data); a tensor of another real dtype (float32, int) is
converted; anything else (a NumPy array, a list, a bool or complex tensor, a wrong
shape) is a `ValueError` naming the argument.  A scalar argument is a 0-d tensor or a
number (made a 0-d float64 tensor).  So functions of floats (the lecture's neuron)
compile too: they compute on 0-d tensors, and return 0-d tensors.  Every value
computed from an argument is a tensor; values computed from constants and `B` alone
(`1.0 / B`) stay Python floats, and a float that is returned becomes a tensor.
"""

from __future__ import annotations

from gradgen.backends.base import ATOM, Backend, literal
from gradgen.backends.numpy import NUMPY, _axes, _index, check_lines, in_order, is_array_graph
from gradgen.backends.numpy import FRESH, pack_layout
from gradgen.backends.python import PYTHON
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import show

ARITHMETIC = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.POW, Op.COPY, Op.BATCH, Op.CONST})
F64 = "dtype=torch.float64"


def tensor_flags(graph) -> list[bool]:
    """Which nodes are tensors: arguments and everything computed from them, and every
    non-arithmetic op (torch.exp of a float is spelled on a 0-d tensor)."""
    out: list[bool] = []
    for n in graph.nodes:
        out.append(n.op is Op.INPUT or n.op not in ARITHMETIC or any(out[a] for a in n.args))
    return out


class TorchBackend(Backend):
    name = "torch"
    imports = {"torch": "import torch"}
    always = frozenset({"torch"})
    module_names = frozenset({"torch", "_torch_pack", "_tensors"})
    reserved = module_names | {"B"}
    inplace_ok = FRESH  # tensors are updated in place only when fresh: never an argument, never a view
    array = True

    def layout_like(self, graph):
        return NUMPY if is_array_graph(graph) else PYTHON

    def literal(self, value):
        text, prec = literal(value)
        return text.replace("math.", "torch."), prec  # torch.inf, torch.nan: the module imports torch only

    def _flags(self, sched) -> list[bool]:
        if not hasattr(sched, "tensor"):
            sched.tensor = tensor_flags(sched.graph)
        return sched.tensor

    def _device(self, sched) -> str:
        g = sched.graph
        return f"{sched.names[g.inputs[0]]}.device" if g.inputs else "None"

    def expression(self, n, operand, sched, helpers, needs):
        tensor = self._flags(sched)
        if n.op not in ARITHMETIC and OPS[n.op].spell.get("torch") is not None and not any(tensor[a] for a in n.args):
            # a float in: made a 0-d tensor first (torch.exp takes tensors only)
            x = f"torch.tensor({operand(n.args[0], 0)}, {F64})"
            return self.spelling(n.op).template.format(x), ATOM
        return super().expression(n, operand, sched, helpers, needs)

    def special(self, n, operand, sched):
        op, nodes, tensor = n.op, sched.graph.nodes, self._flags(sched)
        full = f"{F64}, device={self._device(sched)}"
        if op is Op.BATCH:
            return "B", ATOM, None
        if op is Op.ELEM:
            return f"{operand(n.args[0], ATOM)}[{_index(n, nodes)}]", ATOM, None
        if op is Op.SUM:
            x = nodes[n.args[0]]
            if not n.attr:  # over no axes: the value itself (a copy, since a sum may be updated in place)
                if not tensor[x.id]:
                    return operand(x.id, 0), 0, None
                return f"{operand(x.id, ATOM)}.clone()", ATOM, None
            if tuple(n.attr) == tuple(range(len(x.shape))):
                return f"{operand(x.id, ATOM)}.sum()", ATOM, None
            return f"{operand(x.id, ATOM)}.sum(dim={_axes(n.attr)})", ATOM, None
        if op is Op.EXPAND:
            x = nodes[n.args[0]]
            if not x.shape:  # a 0-d value: a tensor of shape (1,), (1, 1), ...
                ones = show((1,) * len(n.shape))
                if not tensor[x.id]:
                    return f"torch.full({ones}, {operand(x.id, 0)}, {full})", ATOM, None
                return f"{operand(x.id, ATOM)}.reshape({ones})", ATOM, None
            parts = ["None" if k in n.attr else ":" for k in range(len(n.shape))]
            while parts and parts[-1] == ":":
                parts.pop()
            return f"{operand(x.id, ATOM)}[{', '.join(parts)}]", ATOM, None
        if op is Op.BCAST:
            x = nodes[n.args[0]]
            if not n.shape:  # () -> (): the value itself
                return operand(x.id, 0), 0, None
            if not tensor[x.id]:
                return f"torch.full({show(n.shape)}, {operand(x.id, 0)}, {full})", ATOM, None
            return f"{operand(x.id, ATOM)}.expand({show(n.shape)}).clone()", ATOM, None
        if op is Op.PACK:
            pieces = [operand(a, 0) for a in n.args]
            is_batched, shape, indices = n.attr
            if in_order(n) and len(indices[0]) == 1 and all(tensor[a] for a in n.args):
                return f"torch.stack([{', '.join(pieces)}]{', dim=1' if is_batched else ''})", ATOM, None
            return f"_torch_pack({self._device(sched)}, {pack_layout(n)}, {', '.join(pieces)})", ATOM, "_torch_pack"
        return None

    def prologue(self, graph, fname, names):
        if not graph.inputs:
            return [], [], set()
        tables, body = check_lines(graph, fname, names, "_tensors")
        return tables, body, {"_tensors"}

    def result(self, i, text, sched):
        if self._flags(sched)[i]:
            return text
        return f"torch.tensor({text}, {F64}, device={self._device(sched)})"

    def doc_grad(self, base, grads):
        return f"Value of {base} and its gradient with respect to {', '.join(grads)}."


PACK_HELPER = '''def _torch_pack(device, shape, batched, indices, *pieces):
    """Zeros of `shape` plus each piece at its index (after the batch axis if batched); overlapping pieces add."""
    out = torch.zeros(shape, dtype=torch.float64, device=device)
    lead = (slice(None),) if batched else ()
    for index, piece in zip(indices, pieces):
        out[lead + index] += piece
    return out
'''

TENSORS_HELPER = '''def _tensors(table, *args, _seen={}):
    """The arguments as float64 tensors of their shapes (B from the data)."""
    try:  # the fast path: float64 tensors of shapes checked before
        if [x.dtype for x in args] == _seen[table, tuple([x.shape for x in args])]:
            return args
    except (AttributeError, KeyError, TypeError):
        pass  # a list, a float, a float32 tensor, shapes not seen yet, ...
    head, _, data = table.partition("; ")  # "f W0:16,2 X:B,2 k:; X": X's shape is fixed
    fname, *spec = head.split()
    out, B, first = [], None, None  # B: the rows of the first batched argument
    for x, (name, dims) in zip(args, (a.split(":") for a in spec)):
        shape = tuple(d if d == "B" else int(d) for d in dims.split(",") if d)
        show, err = str(shape).replace("'", ""), None  # (B, 2)
        want = f"must be a float64 torch tensor of shape {show}, got"
        if shape == () and not isinstance(x, torch.Tensor):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                err = f"must be a number (a float), got {type(x).__name__}"
            x = torch.tensor(float(x) if err is None else 0.0, dtype=torch.float64)
        elif not isinstance(x, torch.Tensor):
            got = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
            err = f"{want} {got} (convert it with torch.as_tensor)"
        elif x.dtype == torch.bool or x.is_complex():
            err = f"{want} a tensor of dtype {x.dtype}"
        elif shape[:1] == ("B",) and not x.dim():
            err = f"{want} a 0-d tensor"
        elif shape[:1] == ("B",) and not x.shape[0]:
            err = "has no rows: a batch needs at least one example"
        elif shape[:1] == ("B",):
            B, first = B or x.shape[0], first or name
            if tuple(x.shape) != (B,) + shape[1:]:
                err = f"has shape {tuple(x.shape)}, but {fname} takes {show} with"
                err += f" B = {B} (the rows of {first}): every batched array has one"
                err += " row per example"
        elif tuple(x.shape) != shape:
            err = f"has shape {tuple(x.shape)}, but {fname} was compiled for {show}"
            if name in data.split():
                err += " (the batch size is fixed by the traced example:"
                err += " use gradgen.mean for any batch size)"
        if err:
            raise ValueError(f"{fname}: {name} {err}")
        out.append(x.to(torch.float64))
    if all(a is x for a, x in zip(out, args)):
        _seen[table, tuple([x.shape for x in args])] = [x.dtype for x in args]
    return tuple(out)
'''

TorchBackend.helpers = {
    "_torch_pack": lambda: (PACK_HELPER, ("torch",)),
    "_tensors": lambda: (TENSORS_HELPER, ("torch",)),
}
TORCH = TorchBackend()
