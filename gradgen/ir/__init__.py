"""The IR: ops (closed set + per-op facts), graphs and builder, printer, verifier, interpreter."""

from gradgen.ir.graph import Builder, Graph, Loc, Node, Origin, rebuild
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import OPS, Op
from gradgen.ir.printer import format_graph
from gradgen.ir.verify import VerifyError, verify

__all__ = [
    "Builder", "Graph", "Loc", "Node", "Origin", "rebuild", "evaluate", "OPS", "Op",
    "format_graph", "VerifyError", "verify",
]
