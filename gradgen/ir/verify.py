"""The IR verifier: structural invariants every pass must preserve.

Run after every pass in tests.  Each problem names the node (`%12 (mul)`).
"""

from __future__ import annotations

from gradgen.ir.graph import Graph
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import ShapeError, infer


class VerifyError(AssertionError):
    pass


def problems(graph: Graph) -> list[str]:
    out: list[str] = []
    n_nodes = len(graph.nodes)
    for pos, n in enumerate(graph.nodes):
        where = f"%{pos} ({n.op})"
        if n.id != pos:
            out.append(f"{where}: id {n.id} is not its position")
        info = OPS.get(n.op)
        if info is None:
            out.append(f"{where}: unknown op")
            continue
        if info.arity >= 0 and len(n.args) != info.arity:
            out.append(f"{where}: takes {info.arity} arguments, has {len(n.args)}")
        for a in n.args:
            if not 0 <= a < pos:
                out.append(f"{where}: argument %{a} is not defined before it")
        if (info.attr is None) != (n.attr is None):
            out.append(f"{where}: attribute {n.attr!r} does not fit the op")
        if n.op is Op.INPUT and n.origin is None:
            out.append(f"{where}: input without an origin")
        if n.op is not Op.INPUT and all(0 <= a < pos for a in n.args):
            try:
                want = infer(n.op, [graph.nodes[a].shape for a in n.args], n.attr)
            except ShapeError as e:
                out.append(f"{where}: {e}")
            else:
                if want != n.shape:
                    out.append(f"{where}: shape {n.shape} but its op and arguments give {want}")
        if n.adj is not None and not 0 <= n.adj < pos:
            out.append(f"{where}: adjoint of %{n.adj}, which does not precede it")
    for i in graph.inputs:
        if not 0 <= i < n_nodes or graph.nodes[i].op is not Op.INPUT:
            out.append(f"input %{i} is not an input node")
    if len(set(graph.inputs)) != len(graph.inputs):
        out.append("an input is listed twice")
    listed = set(graph.inputs)
    for n in graph.nodes:
        if n.op is Op.INPUT and n.id not in listed:
            out.append(f"%{n.id} (input): not listed among the graph's inputs")
    for role, i in graph.outputs:
        if not 0 <= i < n_nodes:
            out.append(f"output {role!r}: %{i} does not exist")
    return out


def verify(graph: Graph) -> Graph:
    """Return `graph` unchanged, or raise `VerifyError` listing every problem."""
    found = problems(graph)
    if found:
        raise VerifyError(f"IR of {graph.name} is malformed:\n  " + "\n  ".join(found))
    return graph
