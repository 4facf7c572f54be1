'''The NumPy backend's `<name>_step`: the gradient code inline, preallocated arrays, one update.

`gradgen.backends.step` writes a step that calls `<name>_grad` and updates each array
(`W0 -= lr * g_W0`); for plain SGD on parameter arrays the NumPy backend writes this
one instead (issue #12, each choice measured in docs/architecture.md):

* **one flat buffer.**  When the parameters are consecutive views into one float64
  buffer, in argument order (what `gradgen.params.read` returns), `_flat` finds that
  buffer (`theta`), the gradients are views into one flat buffer of the same layout
  (`grad`), and the update is `grad *= lr; theta -= grad` (no temporary); an L2 term every
  parameter shares (`g_W0 += 0.0002 * W0`, ...) and a weight decay go into the update as
  `theta *= 1.0 - 0.0002 * lr` (`p - lr * (g + c * p)` is `p * (1 - c * lr) - lr * g`).
  Any other parameters (separate arrays, float32, a list) take the plain step, inline at
  the top of the function: `<name>_grad`, then one update per array.
* **preallocated arrays.**  Every array the gradient code names is written into an
  array made once per batch size (`_scratch`, kept in a module-level dict keyed by B):
  products as `np.dot(X, W0.T, out=z0)` then `z0 += b0` (an outer product `g_z2 * W2`
  as `np.dot` too), ufuncs with `out=`, relu's backward as a bool mask
  `np.greater(h0, 0.0, out=mask_h0)` and one multiply, batch sums as
  `np.dot(ones, g_z0, out=g_b0)` and `np.dot(ones, svm_loss)` (a vector of ones: BLAS,
  not a reduction).
  The same statements, names, order and rule comments as `<name>_grad` otherwise.
* the argument check (`_args`) runs once, after `_flat`.

The arrays are reused from call to call, so one step must not run in two threads at
once with the same batch size; `<name>_grad` still returns fresh arrays.
'''

from __future__ import annotations

from gradgen.backends.base import ATOM, LINE, Emitted, wrap
from gradgen.backends.lean_helpers import FLAT_HELPER, SCRATCH_HELPER  # noqa: F401 (numpy.py reads them here)
from gradgen.backends.lean_plan import BINARY, Plan
from gradgen.backends.numpy import NumpyBackend, arg_table, dims_text
from gradgen.ir.graph import Graph
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched
from gradgen.names import Namespace
from gradgen.optim import SGD


TABLES = ("params", "data", "scratch", "arrays", "kernel")  # module-level names of a step: _<name>_step_<kind> (kernel: numba's)


def step_tables(names) -> set[str]:
    """The module-level names the lean steps of functions `names` may define (api refuses them)."""
    return {f"_{g}_step_{k}" for g in names for k in TABLES}


class LeanBackend(NumpyBackend):
    """The NumPy backend, writing the nodes of a `Plan` into preallocated arrays."""

    def __init__(self, plan: Plan, prologue_lines: list[str], tables: list[str]):
        self.plan, self._pro, self._tables = plan, prologue_lines, tables

    def prologue(self, graph, fname, names):
        return self._tables, self._pro, {"_args", "_flat", "_scratch"}

    def special(self, n, operand, sched):
        if n.id in self.plan.dots:  # a batch vector's sum: BLAS, as the batch sums of arrays
            return f"np.dot({self.plan.ones}, {operand(n.args[0], 0)})", ATOM, None
        return super().special(n, operand, sched)

    def out_form(self, n, text, operand, sched):
        plan, nodes, me = self.plan, sched.graph.nodes, sched.names[n.id]
        if plan.l2 and n.id in plan.l2[1] or n.id in plan.skip:
            return []  # one `grad += c * theta` at the end; a partial sum of squares
        if n.id == plan.vdot:
            return [f"{me} = np.vdot({plan.theta}, {plan.theta})"]
        kind = plan.out.get(n.id)
        if kind is None:
            return None
        if kind == "matmul":
            return [f"{_product(n, nodes)}({operand(n.args[0], 0)}, {operand(n.args[1], 0)}, out={me})"]
        if kind == "matmul+":
            m, bias = nodes[n.args[0]], n.args[1]
            a, b = operand(m.args[0], 0), operand(m.args[1], 0)
            return [f"{_product(m, nodes)}({a}, {b}, out={me})", f"{me} += {operand(bias, 0)}"]
        if kind == "outer":
            a, b = sorted(n.args, key=lambda a: nodes[a].shape[0] == 1)  # the column first
            return [f"np.dot({operand(a, 0)}, {operand(b, 0)}, out={me})"]
        if kind == "mask":
            s = next(a for a in n.args if a in plan.masks)
            mask = plan.masks[s]
            args = [mask if a == s else operand(a, 0) for a in n.args]
            return [f"np.greater({operand(nodes[s].args[0], 0)}, 0.0, out={mask})", f"np.multiply({', '.join(args)}, out={me})"]
        if kind == "ones":
            return [f"np.dot({plan.ones}, {operand(n.args[0], 0)}, out={me})"]
        if kind == "binary":
            return [f"{BINARY[n.op]}({', '.join(operand(a, 0) for a in n.args)}, out={me})"]
        template = OPS[n.op].spell["numpy"].template
        return [template.format(operand(n.args[0], 0))[:-1] + f", out={me})"]


def _product(n, nodes) -> str:
    """`np.dot` for a product of matrices and vectors (0.5-1 us a call less than `np.matmul`
    with `out=` at moons' sizes, the same BLAS call); `np.matmul` for stacks of matrices."""
    return "np.dot" if all(len(nodes[a].shape) <= 2 for a in n.args) else "np.matmul"


def applies(backend, grad: Emitted, opt) -> bool:
    """Whether `<name>_step` is the lean one: the NumPy backend, plain SGD, array parameters only."""
    sched = grad.sched
    if backend.name != "numpy" or sched is None or not isinstance(opt, SGD) or opt.momentum:
        return False
    g = sched.graph
    by_name = {g.nodes[i].name: i for i in g.inputs}
    return all(role.of in by_name and g.nodes[by_name[role.of]].shape for role, _ in g.grads())


def _string(name: str, text: str) -> list[str]:
    """`name = "text"`, or black's parenthesised lines of adjacent strings when it is too long."""
    if len(name) + len(text) + 5 <= LINE:
        return [f'{name} = "{text}"']
    lines, cur = [], ""
    for word in text.split(" "):
        if cur and len(cur) + len(word) + 1 > LINE - 8:
            lines.append(cur)
            cur = ""
        cur += (" " if lines or cur else "") + word
    return [f"{name} = ("] + [f'    "{ln}"' for ln in lines + [cur]] + [")"]


def names_of(grad: Emitted) -> set[str]:
    """The names the gradient function's schedule gave (the lean step's body uses them all)."""
    return {x for x in grad.sched.names if x}


def emit_lean_step(name: str, grad: Emitted, opt, plain: list[str], doc: str, lr: str) -> Emitted | None:
    """`<name>_step` as the module docstring describes, or None where the plan cannot write
    every gradient into its view of the flat buffer (the plain step is used then).

    `plain`: the plain step's body (its lines after the docstring, ending in `return value`),
    `lr` its learning rate's name (clear of the gradient's names).
    """
    sched = grad.sched
    g, names = sched.graph, sched.names
    params = list(grad.params)
    wrt = list(grad.grads)  # the parameters, in the gradients' order
    taken = names_of(grad) | set(params) | NumpyBackend.reserved | {lr}
    ns = Namespace(reserved=taken | {name, name + "_grad", name + "_step", name + "_train"})
    theta, flat = ns.create("theta"), ns.create("grad")
    plan = Plan(sched, ns)
    plan.theta = theta
    if not plan.ok:
        return None
    grad_nodes = {r: wrt[k] for k, r in enumerate(plan.roots)}
    by_input = {g.nodes[i].name: i for i in g.inputs}
    grad_views = [names[r] for r in plan.roots]

    # the preallocated arrays: every planned node's, the masks, the ones; then the gradients' views
    spec, order = [], []
    for i in sorted(plan.out):
        if i in grad_nodes:
            continue
        spec.append(f"{names[i]}:{dims_text(g.nodes[i].shape)}")
        order.append(names[i])
    for s, mask in plan.masks.items():
        spec.append(f"{mask}:{dims_text(g.nodes[s].shape)}:bool")
        order.append(mask)
    if plan.ones:
        spec.append(f"{plan.ones}:B:ones")
        order.append(plan.ones)
    spec_g = [f"{v}:{dims_text(g.nodes[r].shape)}" for v, r in zip(grad_views, plan.roots)]
    table, cache = f"_{name}_step_{TABLES[3]}", f"_{name}_step_{TABLES[2]}"
    tables = [
        f"{cache} = {{}}  # batch size -> the arrays {name}_step writes into",
        *_string(table, f'{" ".join(spec)}; {" ".join(spec_g)}'),
    ]
    uses_b = any(batched(g.nodes[i].shape) for i in plan.out) or plan.ones is not None
    body_b = any(n.op is Op.BATCH or n.op in (Op.BCAST, Op.PACK) and batched(n.shape) for n in g.nodes)
    first = next((nm for nm, i in zip(params, g.inputs) if batched(g.nodes[i].shape)), None)
    key = "B" if uses_b and first else "0"
    fast = [params[g.inputs.index(by_input[p])] for p in wrt]
    data = [p for p in params if p not in fast]
    ptable, dtable = f"_{name}_step_{TABLES[0]}", f"_{name}_step_{TABLES[1]}"
    shapes = " ".join(f"{p}:{dims_text(g.nodes[g.inputs[params.index(p)]].shape)}" for p in fast)
    tables.insert(0, f'{ptable} = "{shapes}"')
    pro = [f"    {theta} = _flat({ptable}, {', '.join(fast)})"]
    pro.append(f"    if {theta} is None:  # not params.read's one buffer: the plain step")
    pro += ["    " + ln for ln in plain]
    if data:  # the parameters passed _flat: the data alone is checked
        lhs = ", ".join(data) if len(data) != 1 else f"({data[0]},)"
        pro.append(f"    {lhs} = _args({dtable}, {', '.join(data)})")
        ins = [i for p, i in zip(params, g.inputs) if p in data]
        sub = Graph(g.name, g.nodes, tuple(ins), g.outputs)
        _, tval = arg_table(sub, name + "_step", data)
        tables.insert(1, f"{dtable} = {tval}")
    if (uses_b or body_b) and first:
        pro.append(f"    B = {first}.shape[0]")
    got = f"{cache}.get({key}) or _scratch({cache}, {key}, {table})"
    pro += wrap(order + grad_views + [flat], "(", f") = {got}", "    ")

    def ret(ref):
        out = ["    # update"]
        wd = float(getattr(opt, "weight_decay", 0.0))
        terms = []  # the gradients' shared c * p terms, folded into the update (one op fewer)
        if plan.l2:  # the gradient's last lines, one for all the parameters
            at = g.nodes[plan.l2[1][0]].loc
            terms.append((plan.l2[0], f"every g_p += {plan.l2[0]!r} * p" + (f"   [{at.short()}]" if at else "")))
        if wd:
            terms.append((wd, f"the weight decay, g_p += {wd!r} * p"))
        if terms:
            c = " + ".join(repr(k) for k, _ in terms)
            out.append(f"    # {' and '.join(t for _, t in terms)}, in the update:")
            out.append(f"    {theta} *= 1.0 - {f'({c})' if len(terms) > 1 else c} * {lr}  # p - lr * c * p")
        out.append(f"    {flat} *= {lr}  # in place: every gradient is written anew by the next step")
        out.append(f"    {theta} -= {flat}  # every parameter, one update")
        out.append(f"    return {ref(g.output('value'))}")
        return out

    from gradgen.backends.base import emit_function

    backend = LeanBackend(plan, pro, tables)
    # the gradients' first partials get the views' names: write them as the schedule names them
    e = emit_function(g, name + "_step", "grad", doc, backend, None, sched, ret=ret)
    start = next(k for k, ln in enumerate(e.lines) if ln.startswith('    """'))
    sig = list(grad.signature) + [lr]
    e.lines = wrap(sig, f"def {name}_step(", "):", "") + e.lines[start:]
    e.params, e.signature, e.grads = params + [lr], sig, wrt
    e.needs |= {"np"}
    e.helpers |= {"_args", "_flat", "_scratch"}
    return e
