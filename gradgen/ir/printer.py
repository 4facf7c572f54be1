"""The IR's stable text form, like a jaxpr.

    def neuron(x1, x2, w1, w2, b):
      x1w1 = mul x1 w1
      ...
      o = tanh n
      return o

Names are assigned at print time (`gradgen.names.assign_names`); constants
without metadata print inline as literals; backward nodes carry a comment
with their rule and the model line they differentiate.
"""

from __future__ import annotations

from gradgen.autodiff import comments
from gradgen.ir.graph import Graph
from gradgen.ir.ops import Op
from gradgen.ir.shapes import show
from gradgen.names import assign_names, comment_text


def literal(value) -> str:
    """A constant or attribute as the printer shows it: numbers as the emitted code writes them
    (`gradgen.backends.base.literal`, without `math.`: `inf`, `nan`), other attributes by repr."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        from gradgen.backends.base import literal as code_literal  # here: gradgen.backends imports gradgen.ir

        return code_literal(value)[0].replace("math.", "")
    return repr(value)


def format_graph(graph: Graph) -> str:
    names = assign_names(graph)
    inline = [n.op is Op.CONST and n.adj is None and n.name is None for n in graph.nodes]

    def ref(i: int) -> str:
        return literal(graph.nodes[i].attr) if inline[i] else names[i]

    params = ", ".join(
        names[i] + (f": {show(graph.nodes[i].shape)}" if graph.nodes[i].shape else "") for i in graph.inputs
    )
    lines = [f"def {graph.name}({params}):"]
    for n in graph.nodes:
        if n.op is Op.INPUT or inline[n.id]:
            continue
        operands = [ref(a) for a in n.args]
        if n.attr is not None:
            operands.append(literal(n.attr))
        text = f"  {names[n.id]} = {n.op.value} {' '.join(operands)}".rstrip()
        if n.shape:
            text += f" : {show(n.shape)}"
        notes = []
        if n.rule is not None:
            notes.append(comments.fill(n.rule, n, ref, graph.nodes))
        if n.loc is not None:
            notes.append(f"[{n.loc.short()}]")
        if notes:
            text += "  # " + comment_text(" ".join(notes))
        lines.append(text)
    lines.append("  return " + ", ".join(ref(i) for _, i in graph.outputs))
    return "\n".join(lines) + "\n"
