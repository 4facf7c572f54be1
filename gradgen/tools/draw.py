"""`gradgen graph`: draw a function's IR the lecture's way (micrograd's `draw_dot`).

Contract.  `draw(graph, xs)` returns a `Drawing` (a `graphviz.Digraph` plus
counts): left to right, every value is a record node
`{ name | data 0.7071 | grad 1.0000 }` and every op a small node between its
arguments and its result, with data and grad evaluated at the point `xs`.
Constants are drawn once per use, next to the op that takes them.

* Names come from `gradgen.names.assign_names`, and every label is escaped
  for DOT records (`{ } | < > " \\` and newlines), so no user text reaches
  the DOT source raw.
* The forward graph is the traced IR; `grad` of a value is d(output)/d(value),
  computed by running reverse mode (`gradgen.autodiff.grad`) on that graph.
* `backward=True` draws `FunctionIR.grad_opt`, the optimised forward +
  backward graph `f_grad` computes: backward nodes (adjoints `g_<name>` and
  the temporaries of their rules) are filled blue and show their value;
  blue dashed edges show the forward values the backward pass reuses.
  The forward half is the optimised forward graph.
* Above `max_nodes` value nodes, only the ones nearest the output(s) (by
  breadth-first distance) are drawn, and one "... N more nodes" node stands
  for the rest, so thousands of nodes never reach `dot`; a value used by more
  than `MAX_FANOUT` drawn ops appears as a small box at each use (see `_hubs`).

`write(drawing, path)` writes `.dot`/`.gv` text, or runs Graphviz's `dot`
(with a timeout) for `.svg`, `.png` and `.pdf`, atomically: a failed run leaves an existing
file untouched.  Without `dot` it writes the DOT text next to the requested
file and raises a `GradgenError` (exit 1: the requested file was not made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass

from gradgen.backends.module import atomic_write
from gradgen.errors import GradgenError
from gradgen.ir import interp
from gradgen.ir.graph import VALUE, Builder, Graph
from gradgen.ir.ops import Op
from gradgen.ir.printer import literal
from gradgen.names import assign_names

MAX_NODES = 400
MAX_FANOUT = 8  # a value used more often is referenced per use, not wired (see `draw`)
DOT_TIMEOUT = 120.0  # seconds
TEXT_FORMATS = (".dot", ".gv")
RENDER_FORMATS = (".svg", ".png", ".pdf")
INSTALL_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz) and run again"

SYMBOLS = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*", Op.DIV: "/"}
BACKWARD_STYLE = dict(style="filled", fillcolor="#dbe8ff", color="#2f5fb3")
REUSE_EDGE = dict(color="#2f5fb3", style="dashed")


@dataclass
class Drawing:
    dot: object  # graphviz.Digraph
    values: int  # value nodes in the graph
    drawn: int  # value nodes drawn (the rest are summarised)


# -- numbers at the point -------------------------------------------------------------


def node_values(graph: Graph, xs) -> list[float]:
    """The float value of every node of `graph` at the inputs `xs` (the IR's semantics)."""
    try:
        vals = interp.node_values(graph, xs)
        failed = None
    except (ArithmeticError, ValueError, TypeError) as e:
        vals, failed = getattr(e, "values", None), e
    # (-1.0) ** 0.5 is a complex number in Python: report the first node that made one
    for n in graph.nodes:
        if failed is not None and n.id == failed.node.id:
            raise _domain_error(graph, n, failed) from failed
        v = vals[n.id] if vals is not None else 0.0
        if not isinstance(v, (int, float)):
            raise _domain_error(graph, n, ValueError(f"the result is a {type(v).__name__}, not a real number"))
    return vals


def _domain_error(graph: Graph, n, e: Exception) -> GradgenError:
    names = assign_names(graph)
    where = f" [{n.loc.short()}]" if n.loc else ""
    return GradgenError(
        f"{op_label(n)} of {', '.join(names[a] or '?' for a in n.args)}{where} fails at this point "
        f"({type(e).__name__}: {e}); pick a point inside the domain with --at"
    )


def forward_mask(graph: Graph, output: str = "value") -> list[bool]:
    """True for the inputs and every node the output depends on."""
    mask = [False] * len(graph.nodes)
    out = graph.output(output)
    mask[out] = True
    stack = [out]
    while stack:
        for a in graph.nodes[stack.pop()].args:
            if not mask[a]:
                mask[a] = True
                stack.append(a)
    for i in graph.inputs:
        mask[i] = True
    return mask


def node_grads(graph: Graph, xs, mask: list[bool]) -> list[float | None]:
    """d(output)/d(node) at `xs` for the forward nodes in `mask` (None elsewhere)."""
    from gradgen.autodiff.reverse import grad

    b = Builder(graph.name)
    new: dict[int, int] = {}
    for n in graph.nodes:
        if mask[n.id]:
            new[n.id] = b.copy_node(n, [new[a] for a in n.args], None)
    fwd = b.build([new[i] for i in graph.inputs], [(VALUE, new[graph.output(VALUE)])])
    g = grad(fwd)
    vals = node_values(g, xs)
    adjoint = [0.0] * len(fwd.nodes)
    adjoint[fwd.output(VALUE)] = 1.0  # d(out)/d(out) (reverse mode may leave no seed node)
    for n in g.nodes[len(fwd.nodes) :]:
        if n.adj is not None:
            adjoint[n.adj] = vals[n.id]  # the last node with adj == i holds the full sum
    return [adjoint[new[i]] if i in new else None for i in range(len(graph.nodes))]


# -- choosing what to draw ------------------------------------------------------------


def _inline(n) -> bool:
    """Plain constants are drawn once per use, not as value nodes."""
    return n.op is Op.CONST and n.adj is None and n.name is None and n.rule is None


def nearest(graph: Graph, candidates: list[bool], limit: int) -> list[bool]:
    """The `limit` candidate nodes nearest the outputs, breadth first along arguments."""
    keep = [False] * len(graph.nodes)
    queue = deque(i for _, i in graph.outputs)
    seen = set(queue)
    count = 0
    while queue and count < limit:
        i = queue.popleft()
        if candidates[i] and not keep[i]:
            keep[i] = True
            count += 1
        for a in graph.nodes[i].args:
            if a not in seen:
                seen.add(a)
                queue.append(a)
    return keep


def _hubs(graph: Graph, keep: list[bool]) -> tuple[list[bool], int]:
    """(hub, cut): values used by more than MAX_FANOUT drawn ops, and how many drawn ops lost an argument.

    A hub gets a small reference box per use instead of an edge per use (and so
    does the summary node when `cut` is large): long edges from one node to
    hundreds of others make dot's layout take minutes.
    """
    uses = [0] * len(graph.nodes)
    cut = 0
    for n in graph.nodes:
        if keep[n.id]:
            for a in set(n.args):
                uses[a] += 1
            cut += any(not keep[a] and not _inline(graph.nodes[a]) for a in n.args)
    return [u > MAX_FANOUT for u in uses], cut


# -- DOT ------------------------------------------------------------------------------------


def record_text(text: str) -> str:
    """`text` safe inside one field of a DOT record label."""
    out = []
    for c in text:
        if c in '\\{}|<>"':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c < " " or c == "\x7f":
            out.append("?")
        else:
            out.append(c)
    return "".join(out)


def number(x) -> str:
    """A number the lecture's way (`%.4f`); `%.4g` where that would show 0.0000 or 300 digits."""
    if x != 0 and not 1e-4 <= abs(x) < 1e6:
        return f"{x:.4g}"
    return f"{x + 0.0:.4f}"


def op_label(n) -> str:
    if n.op is Op.POW:
        return f"**{literal(n.attr)}"
    return SYMBOLS.get(n.op, n.op.value)


def draw(graph: Graph, xs, backward: bool = False, max_nodes: int = MAX_NODES) -> Drawing:
    """The lecture's picture of `graph` at `xs`; with `backward`, its backward nodes too."""
    import graphviz

    fwd = forward_mask(graph)
    if backward:
        wanted = [True] * len(graph.nodes)  # grad_opt is dead-code free
    else:
        wanted = fwd
    values = node_values(graph, xs)
    grads = node_grads(graph, xs, fwd)
    names = assign_names(graph)
    candidates = [w and not _inline(n) for w, n in zip(wanted, graph.nodes)]
    total = sum(candidates)
    keep = candidates if total <= max_nodes else nearest(graph, candidates, max_nodes)
    outputs = {i for _, i in graph.outputs}

    hub, cut = _hubs(graph, keep)
    dot = graphviz.Digraph(graph.name, graph_attr={"rankdir": "LR"}, node_attr={"fontname": "Helvetica"})
    for n in graph.nodes:
        if not keep[n.id]:
            continue
        vid = f"v{n.id}"
        name = record_text(names[n.id] or n.op.value)
        attrs = dict(BACKWARD_STYLE) if not fwd[n.id] else {}
        if n.id in outputs:
            attrs["penwidth"] = "2"
        if fwd[n.id]:  # the lecture's record
            label = f"{{ {name} | data {number(values[n.id])} | grad {number(grads[n.id])} }}"
        else:  # a backward value is itself a gradient (or part of one)
            label = f"{{ {name} | {number(values[n.id])} }}"
        dot.node(vid, label, shape="record", **attrs)
        if n.op in (Op.INPUT, Op.CONST):
            continue
        oid = f"op{n.id}"
        dot.node(oid, record_text(op_label(n)), **(dict(BACKWARD_STYLE) if not fwd[n.id] else {}))
        dot.edge(oid, vid)
        summarised = False
        for k, a in enumerate(n.args):
            arg = graph.nodes[a]
            if _inline(arg) or (keep[a] and hub[a]):
                text = literal(arg.attr) if _inline(arg) else names[a] or arg.op.value
                dot.node(f"r{n.id}_{k}", record_text(text), shape="box", style="dashed", fontsize="10")
                dot.edge(f"r{n.id}_{k}", oid)
            elif keep[a]:
                dot.edge(f"v{a}", oid, **(REUSE_EDGE if fwd[a] and not fwd[n.id] else {}))
            elif not summarised:
                summarised = True
                if cut > MAX_FANOUT:
                    dot.node(f"r{n.id}_{k}", "\u2026", shape="box", style="dashed", fontsize="10")
                    dot.edge(f"r{n.id}_{k}", oid)
                else:
                    dot.edge("more", oid, style="dashed")
    drawn = sum(keep)
    if drawn < total:
        dot.node("more", f"\u2026 {total - drawn} more nodes", shape="box", style="dashed")
    return Drawing(dot, total, drawn)


# -- files ------------------------------------------------------------------------------------


def output_format(path: str) -> str:
    """The extension of `path` if gradgen can write it; a `GradgenError` otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in TEXT_FORMATS + RENDER_FORMATS:
        raise GradgenError(
            f"cannot tell what to write from the extension {ext or '(none)'!r}; "
            f"end the -o file in one of {' '.join(TEXT_FORMATS + RENDER_FORMATS)}",
            path,
        )
    return ext


def write(drawing: Drawing, path: str) -> None:
    """Write the drawing to `path` (see the module docstring for formats and failures)."""
    ext = output_format(path)
    source = drawing.dot.source
    if ext in TEXT_FORMATS:
        atomic_write(path, source.encode("utf-8"))
        return
    dot = shutil.which("dot")
    if dot is None:
        dot_path = os.path.splitext(path)[0] + ".dot"
        atomic_write(dot_path, source.encode("utf-8"))
        raise GradgenError(
            f"not written: Graphviz's dot program is not installed; wrote the graph as {dot_path} instead; "
            f"{INSTALL_HINT}, or run: dot -T{ext[1:]} {dot_path} -o {path}",
            path,
        )
    try:
        done = subprocess.run(
            [dot, f"-T{ext[1:]}"], input=source.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise GradgenError(
            f"not written: dot did not finish in {DOT_TIMEOUT:g} s; draw fewer values with --max-nodes", path
        ) from None
    except OSError as e:
        raise GradgenError(f"not written: Graphviz's dot program could not be run ({e}; {INSTALL_HINT})", path) from e
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GradgenError(f"not written: dot failed: {detail[0] if detail else done.returncode}", path)
    data = done.stdout
    atomic_write(path, data)


def graph_model(
    path: str,
    out: str,
    function: str | None = None,
    at: dict | None = None,
    backward: bool = False,
    max_nodes: int = MAX_NODES,
) -> list[str]:
    """What `gradgen graph` does; returns the lines to print."""
    from gradgen.tools.check import bind, example_point, format_point, select, signature, where
    from gradgen.frontend.loader import load_model

    output_format(out)
    if max_nodes < 1:
        raise GradgenError(f"--max-nodes must be at least 1, not {max_nodes}")
    try:
        import graphviz  # noqa: F401
    except ImportError:
        raise GradgenError(
            "gradgen graph needs the graphviz Python package (a dependency of gradgen): pip install graphviz"
        ) from None
    _, fns = load_model(path)
    fns = select(fns, function, path)
    if len(fns) > 1:
        have = ", ".join(f.__name__ for f in fns)
        raise GradgenError(f"the model exports {len(fns)} functions ({have}); pick one with --function NAME", path)
    fn = fns[0]
    from gradgen.tools.check import is_array_function

    if is_array_function(fn):
        raise GradgenError(
            f"{signature(fn)} takes arrays (an MLP on a batch): gradgen graph draws scalar functions; "
            "read its re-rolled IR with gradgen ir --optimized",
            *where(fn),
        )
    if at is not None:
        xs, where_from = bind(fn, at), "--at"
    else:
        xs, where_from = example_point(fn), "the example point"
        if xs is None:
            raise GradgenError(f"{signature(fn)} has no example point; give one with --at NAME=NUMBER,...", *where(fn))
    if backward:
        from gradgen.api import lower

        graph = lower(fn).grad_opt
    else:
        from gradgen.frontend.trace import trace

        graph = trace(fn)
    drawing = draw(graph, xs, backward=backward, max_nodes=max_nodes)
    write(drawing, out)
    lines = []
    if drawing.drawn < drawing.values:
        lines.append(
            f"drew the {drawing.drawn} of {drawing.values} values nearest the output and one node for the "
            f"other {drawing.values - drawing.drawn}; raise --max-nodes to draw more"
        )
    what = "forward and backward" if backward else "forward"
    lines.append(f"wrote {out} ({fn.__name__}, {what}, at {where_from} {format_point(fn, xs)})")
    return lines
