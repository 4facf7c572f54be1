"""The numba backend: the NumPy backend's code as explicit loops, compiled by numba (`@njit`).

`gradgen compile --backend numba` (or `compile_file(..., backend="numba")`) writes the
NumPy backend's functions with the same schedule, names and rule comments, each
decorated `@njit(cache=False)`, so `<name>`, `<name>_grad`, `<name>_step` and
`<name>_train` run as machine code.  The elementwise work is written as loops over the
batch, fused (gradgen.backends.loops: the bias add and the activation in one loop after
the BLAS product, relu's mask and the bias gradient in one, the sums in the loops that
produce their operands), the big products stay BLAS calls (numba's `@`), the small ones
(fixed dimensions multiplying to at most `loops.SMALL`) are loops too, and `<name>_step`
updates each parameter in one loop (`W0[i, j] -= lr * g_W0[i, j]`).  `<name>_step` calls
`<name>_grad` inside compiled code, and `<name>_train` runs its K steps in one compiled
loop (no Python between steps).  The module imports `njit` from numba (the `numba`
extra: `pip install -e ".[numba]"`); the first call of each function compiles it (about
a second), later calls run the machine code.

The differences from the NumPy module, all forced by numba:

* the argument check is compiled too: each array's shape is compared with its compiled
  shape (`B` from the data), and a wrong one is a one-line `ValueError` naming the
  function and the argument; the arguments must be float64 NumPy arrays (numba itself
  rejects what it cannot type: lists, torch tensors);
* `step` is `(1.0 if x > 0.0 else 0.0)` in a loop and on a float, `(x > 0.0) * 1.0` on an
  array outside one; `sign` in a loop is `np.sign(x)`; a float made an array is `np.full`;
* `<name>_train` returns the losses as a float64 array (not a list);
* `<name>_step` is plain Python: it finds the step's batch-row temporaries, made once per
  batch size (`_scratch`), and calls the compiled `_<name>_step_kernel` with them
  (`_with_scratch`; `<name>_train` makes them once for its K steps);
* stateful optimizers (SGD with momentum, Adam) are refused: their state is a dict;
* an out-of-order `pack` (the `_pack` helper) is refused with a one-line error.
"""

from __future__ import annotations

import re

from gradgen.backends import loops, numba_step
from gradgen.backends.base import ADD, ATOM, MUL, Emitted, wrap
from gradgen.backends.numpy import NUMPY, NumpyBackend, dims_text
from gradgen.errors import GradgenError
from gradgen.ir.ops import Op
from gradgen.ir.shapes import batched

DECORATOR = "@njit(cache=False)"


class NumbaBackend(NumpyBackend):
    name = "numba"
    imports = {"math": "import math", "np": "import numpy as np", "njit": "from numba import njit"}
    always = frozenset({"np", "njit"})
    module_names = frozenset({"math", "np", "njit", "_np_sigmoid", "_sigmoid", "_gemm", "_dgemm", "_blas_dgemm"})
    reserved = module_names | {"B"}
    decorators = (DECORATOR,)

    def spelling(self, op: Op):
        f = NUMPY.spelling(op)
        if op is Op.STEP:
            # a float mask numba fuses into its line's loop (astype is a call that ends the fusion)
            return type(f)("({0} > 0.0) * 1.0", MUL, (0,))
        return f

    def expression(self, n, operand, sched, helpers, needs):
        if n.op in (Op.STEP, Op.SIGN) and not n.shape and not sched.rebind[n.id]:
            # a float: numba's float() takes no bool, so the engine's float(x > 0.0) is a conditional
            x = operand(n.args[0], ADD)
            if n.op is Op.STEP:
                return f"(1.0 if {x} > 0.0 else 0.0)", ATOM
            return f"(1.0 if {x} > 0.0 else 0.0) - (1.0 if {x} < 0.0 else 0.0)", ADD
        return super().expression(n, operand, sched, helpers, needs)

    def special(self, n, operand, sched):
        op, nodes = n.op, sched.graph.nodes
        if op is Op.EXPAND and not nodes[n.args[0]].shape:  # a float made an array of shape (1,), (1, 1), ...
            return f"np.full({(1,) * len(n.shape)}, {operand(n.args[0], 0)})", ATOM, None
        if op is Op.SUM and tuple(n.attr) == tuple(range(len(nodes[n.args[0]].shape))):
            x = nodes[n.args[0]]
            if x.op is Op.MUL and not sched.line[x.id] and all(nodes[a].shape == x.shape for a in x.args):
                # sum(a * b) over everything: one dot product (numba's vdot takes 1-D arrays)
                a, b = (operand(i, ATOM) + (".ravel()" if len(x.shape) > 1 else "") for i in x.args)
                return f"np.vdot({a}, {b})", ATOM, None
        if op is Op.PACK:
            from gradgen.backends.numpy import in_order

            is_batched, shape, indices = n.attr
            pieces = [operand(a, 0) for a in n.args]
            if in_order(n) and is_batched and len(indices[0]) == 1:
                return f"np.stack(({', '.join(pieces)},), axis=1)", ATOM, None
            if not (in_order(n) and not is_batched):
                raise GradgenError(
                    f"{sched.graph.name}: the numba backend cannot build this array from its pieces "
                    "(they do not fill it in order); use --backend numpy"
                )
        return super().special(n, operand, sched)

    def prologue(self, graph, fname, names):
        """Compiled shape checks (one line each), then `B = X.shape[0]` where the body uses B."""
        nodes = [graph.nodes[i] for i in graph.inputs]
        body: list[str] = []
        first = next((nm for nm, n in zip(names, nodes) if batched(n.shape)), None)
        for nm, n in zip(names, nodes):
            if not n.shape:
                continue
            dims = [f"{nm}.shape[{k}] != {d}" for k, d in enumerate(n.shape) if d != "B"]
            if batched(n.shape) and nm != first:
                dims.insert(0, f"{nm}.shape[0] != {first}.shape[0]")
            if not dims:
                continue
            shape = "(" + dims_text(n.shape).replace(",", ", ") + ("," if len(n.shape) == 1 else "") + ")"
            rows = f" with B = the rows of {first}" if batched(n.shape) and nm != first else ""
            body += [
                f"    if {' or '.join(dims)}:",
                f'        raise ValueError("{fname}: {nm} must have shape {shape}{rows}")',
            ]
        if first is not None and any(batched(m.shape) for m in graph.nodes if m.op is not Op.INPUT):
            body.append(f"    B = {first}.shape[0]")  # the loops' extent (gradgen.backends.loops)
        return [], body, set()

    def arrange(self, statements, ctx):
        """Elementwise statements as loops, fused (gradgen.backends.loops)."""
        return loops.arrange(statements, ctx)

    def step_functions(self, name: str, functions: list[Emitted], opt) -> list[Emitted]:
        """`<name>_step` and `<name>_train` (gradgen.backends.step) as compiled functions:
        no in-place check (compiled code takes arrays only), and the K steps in one loop."""
        if opt.stateful:
            raise GradgenError(
                f"{name}: the numba backend emits plain SGD steps only (no momentum, no Adam: their "
                "state is a dict); use --backend numpy for this optimizer"
            )
        step, train = functions
        lines, skip = [], 0
        for ln in step.lines:
            if ln.strip() == "# floats and lists cannot change in place":
                skip = 2
                continue
            if skip:
                skip -= 1
                continue
            lines.append(ln)
        if numba_step.applies(self, step.sched, opt):  # the gradient inline, products fused with updates
            step = numba_step.emit_numba_step(name, step, opt, NumbaBackend)
        else:
            step.lines = [DECORATOR] + update_loops(lines, step.shapes, step.params[-1])
            step.needs = set(self.always)
        params, lrs = train.params[:-1], train.params[-1]
        lr = step.params[-1]
        kernel, wrapper, scratch, batch = _with_scratch(name, step)
        call = ", ".join(params + [lr] + [a for a, _ in scratch])
        train.lines = [
            DECORATOR,
            train.lines[0],
            f'    """len({lrs}) steps of {name}_step in one compiled loop, the k-th with learning rate '
            f'{lrs}[k]; returns the losses (a float64 array)."""',
            *([batch] if scratch else []),
            *(f"    {a} = np.empty({dims})" for a, dims in scratch),
            f"    losses = np.empty(len({lrs}))",
            f"    for k in range(len({lrs})):",
            f"        {lr} = {lrs}[k]",
            f"        losses[k] = {kernel.lines[1][4:].partition('(')[0] if scratch else name + '_step'}({call})",
            "    return losses",
        ]
        train.needs = set(self.always)
        return ([kernel, wrapper] if scratch else [step]) + [train]


_EMPTY = re.compile(r"    ([A-Za-z_][A-Za-z_0-9]*) = np\.empty\((\(B(?:, [0-9, ]+)?,?\))\)")


def _with_scratch(name: str, step: Emitted):
    """The step's batch-row temporaries (`z0 = np.empty((B, 16))`) as scratch made once per
    batch size: (the njit kernel `_<name>_step_kernel` taking them as trailing parameters,
    the Python `<name>_step` that finds them (`_scratch`, as the lean NumPy step) and calls
    it, [(name, dims)], the `B = ...` line), or (step, None, [], None) when it has none.
    Fresh arrays of B rows cost page faults every call (at B=10,000, 2-16-16-1: 4.2 ms a
    step with them, 2.1 without); a temporary is hoisted only when it is bound once."""
    lines = [x for ln in step.lines for x in ln.split("\n")]
    batch = next((ln for ln in lines if ln.startswith("    B = ")), None)
    found = [(m[1], m[2]) for m in map(_EMPTY.fullmatch, lines) if m]
    bound = {}
    for ln in lines:
        target = ln.strip().partition(" = ")[0]
        if target.isidentifier() and not ln.strip().startswith(("#", "return")):
            bound[target] = bound.get(target, 0) + 1
    scratch = [(a, dims) for a, dims in found if bound.get(a) == 1]
    if batch is None or not scratch:
        return step, None, [], None
    hoisted = {f"    {a} = np.empty({dims})" for a, dims in scratch}
    kname = f"_{name}_step_kernel"
    head = next(k for k, ln in enumerate(lines) if ln.startswith("def "))
    end = next(k for k in range(head, len(lines)) if lines[k].rstrip().endswith("):"))
    doc = next(k for k in range(end + 1, len(lines)) if lines[k].startswith('    """'))
    docline = lines[doc]
    kparams = step.params + [a for a, _ in scratch]
    body = [ln for ln in lines[doc + 1 :] if ln not in hoisted]
    kernel = Emitted(
        lines[:head]
        + wrap(kparams, f"def {kname}(", "):", "")
        + [f'    """{name}_step\'s compiled body; its batch-row temporaries come in as scratch."""']
        + body,
        set(step.helpers), set(step.needs), kparams, kparams, list(step.grads), step.backend,
    )
    table = f"_{name}_step_arrays"
    cache = f"_{name}_step_scratch"
    dims_text = " ".join(f"{a}:" + ",".join(d.strip() for d in dims.strip("()").split(",") if d.strip()) for a, dims in scratch)
    args = ", ".join(step.params)
    wrapper = Emitted(
        wrap(step.signature, f"def {name}_step(", "):", "")
        + [
            docline,
            batch,
            f"    scratch = {cache}.get(B) or _scratch({cache}, B, {table})",
            f"    return {kname}({args}, *scratch[:-1])",
        ],
        {"_scratch"}, {"np"}, list(step.params), list(step.signature), list(step.grads), step.backend,
        tables=[f"{cache} = {{}}  # batch size -> the arrays {kname} writes into", f'{table} = "{dims_text}; "'],
    )
    return kernel, wrapper, scratch, batch


def update_loops(lines: list[str], shapes: dict, lr: str) -> list[str]:
    """The update `W0 -= lr * g_W0` of an array as one loop nest over its shape (no temporary
    `lr * g_W0`: 2.6x faster on 784 x 128 than numba's array expression)."""
    out = []
    taken = set(shapes) | {w for ln in lines for w in ln.replace(",", " ").split()}
    for ln in lines:
        p, _, rest = ln.strip().partition(" -= ")
        g = rest.removeprefix(f"{lr} * ")
        shape = shapes.get(p, ())
        if not ln.startswith("    ") or not rest.startswith(f"{lr} * ") or not g.isidentifier() or not shape:
            out.append(ln)
            continue
        out += numba_step.update_nest(p, g, shape, lr, 0.0, taken)
    return out


def _jit_helper(name):
    def source():
        text, keys = NumpyBackend.helpers[name]()
        return f"{DECORATOR}\n{text}", tuple(keys) + ("njit",)

    return source


NumbaBackend.helpers = {h: _jit_helper(h) for h in ("_np_sigmoid", "_sigmoid")}
NumbaBackend.helpers["_gemm"] = lambda: (numba_step.GEMM_HELPER, ("np", "njit"))
NumbaBackend.helpers["_scratch"] = NumpyBackend.helpers["_scratch"]  # plain Python: the step's wrapper calls it
NUMBA = NumbaBackend()
