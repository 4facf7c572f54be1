"""`<name>_hvp`, `<name>_hessian`, `<name>_jvp`: the second-order functions (gradgen.autodiff.second).

Each is one flat function like `<name>_grad`, written by the same renderer
(`base.emit_function`) with the same backend: forward, backward, then the
second pass (`# second order`, or `# tangents (forward mode)`), one rule
application per line with its rule comment.  Only the return statement is
theirs:

    f_hvp(*args, *v)        -> (value, (g_x, ...), (hv_x, ...))
    f_hessian(*args)        -> (value, (g_x, ...), ((h_x1_x1, h_x1_x2, ...), ...))   H by rows
    f_jvp(*args, *t)        -> (value, directional derivative)

Arguments keep no defaults here (the seeds follow them).
"""

from __future__ import annotations

from gradgen.autodiff import second
from gradgen.backends.base import as_tuple, emit_function
from gradgen.passes import optimize

KINDS = ("hvp", "hessian", "jvp")


def second_graph(ir, kind: str, wrt=None):
    """The optimised graph of `ir`'s `kind` function ("hvp", "hessian", "jvp")."""
    if kind == "hvp":
        g = second.hvp(ir.grad_opt)
    elif kind == "hessian":
        g = second.hessian(ir.grad_opt)
    else:
        by_name = {ir.forward_opt.nodes[i].name: i for i in ir.forward_opt.inputs}
        names = [r.of for r, _ in ir.grad_opt.grads()]
        g = second.jvp(ir.forward_opt, [by_name[n] for n in names])
    return optimize(g)


def emit_second(ir, kind: str, backend, graph=None):
    """(the Emitted function, its summary line) for `ir`'s `kind` function, rendered by `backend`."""
    graph = graph if graph is not None else second_graph(ir, kind)
    name = f"{ir.name}_{kind}"
    grads = [i for _, i in graph.grads()]
    n = len(grads)

    def ret(ref):
        value = ref(graph.output("value"))
        if kind == "jvp":
            return [f"    return {value}, {ref(graph.output(second.JVP))}"]
        g = as_tuple([ref(i) for i in grads])
        if kind == "hvp":
            hv = as_tuple([ref(i) for r, i in graph.outputs if r.kind == "hvp"])
            return [f"    return {value}, {g}, {hv}"]
        hs = [ref(i) for r, i in graph.outputs if r.kind == "hessian"]
        rows = as_tuple([as_tuple(hs[k * n : (k + 1) * n]) for k in range(n)])
        return [f"    return {value}, {g}, {rows}"]

    docs = {
        "hvp": f"Value of {ir.name}, its gradient and the Hessian-vector product H v (one v_x per argument x).",
        "hessian": f"Value of {ir.name}, its gradient and its Hessian H, a tuple of rows (H[i][j] = d2f/dxi dxj).",
        "jvp": f"Value of {ir.name} and its directional derivative along the tangents t_x (forward mode).",
    }
    f = emit_function(graph, name, "grad", docs[kind], backend, {}, ret=ret)
    sig = ", ".join(f.signature)
    shown = {
        "hvp": "(value, gradients, Hessian-vector product)",
        "hessian": "(value, gradients, Hessian rows)",
        "jvp": "(value, directional derivative)",
    }[kind]
    return f, f"{name}({sig}) -> {shown}"
