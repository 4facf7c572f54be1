"""The one namespace every emitted or printed name passes through.

`Namespace.create(hint)` turns any hint -- a user label such as
`"x1*w1 + x2*w2"`, a variable name, an op name -- into a fresh, valid,
ASCII Python identifier: accents are dropped and Greek letters spelled out
(`très` -> `tres`, `α` -> `alpha`), other characters outside `[A-Za-z0-9_]` become `_`,
keywords, builtins and reserved names (`math`, `np`) get a trailing `_`,
and collisions get a numeric suffix (`y`, `y_1`, `y_2`, ...).  Nothing a
user wrote is ever spliced into code or comments without passing here.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import re
import types
import unicodedata
from itertools import repeat

MAX_LEN = 24
# The imports a generated module may have.  Each backend adds its own module-level names
# (helpers, argument tables) to the namespace of the functions it writes, and
# `gradgen.backends.module_level_names()` is the union no exported function may be called.
MODULE_LEVEL = frozenset({"math", "np", "torch"})
RESERVED = (
    MODULE_LEVEL
    | {"numpy"}
    | frozenset(dir(builtins))
    | frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
)
_BAD = re.compile(r"[^A-Za-z0-9_]+")
_RUNS = re.compile(r"_+")


def _plain(hint: str) -> bool:
    """Whether `sanitize` returns `hint` unchanged: a short ASCII identifier, no `_` at
    either end, no `__`, not reserved."""
    return (
        len(hint) <= MAX_LEN
        and hint.isascii()
        and hint.isidentifier()
        and hint[0] != "_"
        and hint[-1] != "_"
        and "__" not in hint
        and hint not in RESERVED
    )


def ascii_hint(text: str) -> str:
    """`text` spelled in ASCII where a spelling exists: accents dropped (`très` -> `tres`),
    Greek letters named (`α` -> `alpha`, `Δ` -> `Delta`); anything else is left for `sanitize`."""
    if text.isascii():
        return text
    out = []
    for c in text:
        if c.isascii():
            out.append(c)
            continue
        plain = "".join(p for p in unicodedata.normalize("NFKD", c) if p.isascii())
        if plain:
            out.append(plain)
            continue
        name = unicodedata.name(c, "")
        for kind, case in (("GREEK SMALL LETTER ", str.lower), ("GREEK CAPITAL LETTER ", str.capitalize)):
            if name.startswith(kind) and " " not in name[len(kind) :]:
                out.append("_" + case(name[len(kind) :]) + "_")
                break
        else:
            out.append(c)
    return "".join(out)


def sanitize(hint: str | None, default: str = "v") -> str:
    """A valid identifier that resembles `hint` (not yet unique)."""
    if (  # _plain(hint), inline: what the rules return for it, without running them (a hot path)
        hint
        and len(hint) <= MAX_LEN
        and hint.isascii()
        and hint.isidentifier()
        and hint[0] != "_"
        and hint[-1] != "_"
        and "__" not in hint
        and hint not in RESERVED
    ):
        return hint
    return _rules(hint, default)


def _rules(hint: str | None, default: str) -> str:
    """`sanitize` itself, without its shortcut for plain names."""
    text = _BAD.sub("_", ascii_hint(hint or "")).strip("_")
    text = _RUNS.sub("_", text)[:MAX_LEN].rstrip("_")
    if not text:
        text = default
    if text[0].isdigit():
        text = f"{default}_{text}"
    if text in RESERVED:
        text += "_"
    return text


class Namespace:
    def __init__(self, reserved=()):
        self._used: set[str] = set(reserved)
        self._next: dict[str, int] = {}

    def create(self, hint: str | None, default: str = "v") -> str:
        base = sanitize(hint, default)
        name = base
        if name in self._used:
            k = self._next.get(base, 1)
            while f"{base}_{k}" in self._used:
                k += 1
            self._next[base] = k + 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name


def comment_text(text: str) -> str:
    """Make arbitrary text safe inside a `#` comment: printable ASCII on one line."""
    if text.isascii() and text.isprintable():
        return text  # already so (the usual case, checked in C)
    return "".join(c if " " <= c <= "~" else "?" for c in text)


SHORT = 12  # a name built from operands' names (`neg_y`, `a_b`) only up to this length


def meaning(graph, n, hints, relu_args=frozenset(), squares=None) -> str | None:
    """A name for an unnamed forward node from what it computes and its operands' names
    (`hints[i]`), or None (then it is named after its op); `relu_args` holds the ids
    that some relu reads, `squares` the flags of `square_flags`.  The rules, in order:

    * `1.0 / B` -> `inv_B` (a reciprocal of a named value);
    * `-y` -> `neg_y`;
    * `x * x` -> `sq_x`; a sum of squares -- `sum(x * x)` and sums of those (the L2
      term) -> `sq_norm`;
    * `relu(1 + t)` -> `hinge` (micrograd's SVM loss); its `1 + t` -> `margin`;
    * `sum(x)` of a named x -> `sum_x`; `a * b` of named values -> `a_b`;
    each operand-built name only when it is at most SHORT characters long.

    Dispatched by op (each op meets only the rules above that can apply to it, in their
    order): this runs once per unnamed forward node of a graph that may have millions.
    """
    Op = _members()
    op, args, nodes = n.op, n.args, graph.nodes
    if op is Op.MUL:
        a, b = args
        if a == b:
            x = _operand_name(nodes[a].op, hints[a], Op)
            return _short("sq_" + x) if x else None
        x = _operand_name(nodes[a].op, hints[a], Op)
        if not x:
            return None
        y = _operand_name(nodes[b].op, hints[b], Op)
        return _short(x + "_" + y) if y else None
    if op is Op.ADD:
        if (squares if squares is not None else square_flags(graph))[n.id]:
            return "sq_norm"
        if any(nodes[a].op is Op.CONST for a in args) and n.id in relu_args:
            return "margin"
        return None
    if op is Op.SUM:
        if (squares if squares is not None else square_flags(graph))[n.id]:
            return "sq_norm"
        x = _operand_name(nodes[args[0]].op, hints[args[0]], Op)
        return _short("sum_" + x) if x else None
    if op is Op.NEG:
        x = _operand_name(nodes[args[0]].op, hints[args[0]], Op)
        return _short("neg_" + x) if x else None
    if op is Op.DIV:
        c = nodes[args[0]]
        if c.op is Op.CONST and c.attr == 1.0:
            x = _operand_name(nodes[args[1]].op, hints[args[1]], Op)
            return _short("inv_" + x) if x else None
        return None
    if op is Op.RELU:
        t = nodes[args[0]]
        if t.op is Op.ADD and any(nodes[a].op is Op.CONST for a in t.args):
            return "hinge"
    return None


def _operand_name(op, hint, Op) -> str | None:
    """An operand's name for `meaning` (its op and hint): `B` for the batch size, an input's
    name, else its hint unless that is a constant's or only an op's name with a counter."""
    if op is Op.BATCH:
        return "B"  # the prologue's batch size
    if op is Op.INPUT:
        return hint
    return hint if hint and op is not Op.CONST and not _generic(hint) else None


def _short(text: str) -> str | None:
    return text if len(text) <= SHORT else None


def _generic(hint: str) -> bool:
    """A name that is only an op's name with a counter (`add_1`): says nothing about meaning."""
    return _COUNTERS.sub("", hint).rstrip("_") in _op_names()


_COUNTERS = re.compile(r"(_\d+)+$")


@functools.cache
def _members() -> types.SimpleNamespace:
    """The ops as plain attributes, `Op.MUL` read ~10x faster than from the enum class (on
    Python 3.11 an attribute of an Enum class goes through its metaclass's `__getattr__` hook)."""
    from gradgen.ir.ops import Op

    return types.SimpleNamespace(**{o.name: o for o in Op})


@functools.cache
def _op_names() -> frozenset:
    """The op names, and v, c, g (built on first use: gradgen.ir.ops imports this module)."""
    from gradgen.ir.ops import Op

    return frozenset(o.value for o in Op) | {"v", "c", "g"}


def square_flags(graph) -> list[bool]:
    """flags[i]: node i is x * x, a sum of such, or an add of such (one pass in id order)."""
    Op = _members()

    MUL, SUM, ADD = Op.MUL, Op.SUM, Op.ADD
    flags = [False] * len(graph.nodes)
    for n in graph.nodes:
        op = n.op
        if op is MUL:
            flags[n.id] = n.args[0] == n.args[1]
        elif op is SUM or op is ADD:
            for a in n.args:
                if not flags[a]:
                    break
            else:
                flags[n.id] = True
    return flags


class _ReluArgs:
    """The ids some relu reads, found on the first membership test (`meaning` asks only about
    a sum with a constant operand: most graphs never need the sweep)."""

    __slots__ = ("nodes", "ids")

    def __init__(self, nodes):
        self.nodes, self.ids = nodes, None

    def __contains__(self, i) -> bool:
        if self.ids is None:
            RELU = _members().RELU
            self.ids = {a for m in self.nodes if m.op is RELU for a in m.args}
        return i in self.ids


class _Squares:
    """`square_flags(graph)[i]`, the flags computed only as far as asked (only `meaning` of a
    sum asks, and a flag depends only on earlier nodes: the backward's are never computed)."""

    __slots__ = ("nodes", "flags")

    def __init__(self, graph):
        self.nodes, self.flags = graph.nodes, []

    def __getitem__(self, i) -> bool:
        flags = self.flags
        if i >= len(flags):
            Op = _members()
            MUL, SUM, ADD = Op.MUL, Op.SUM, Op.ADD
            for n in self.nodes[len(flags) : i + 1]:  # as square_flags
                op = n.op
                if op is MUL:
                    flags.append(n.args[0] == n.args[1])
                elif op is SUM or op is ADD:
                    for a in n.args:
                        if not flags[a]:
                            flags.append(False)
                            break
                    else:
                        flags.append(True)
                else:
                    flags.append(False)
        return flags[i]


def assign_names(graph, reserved=(), wanted=None) -> list[str | None]:
    """A name for every node of `graph` (or those where `wanted[i]`), in id order.

    Inputs keep their argument names; nodes with a hint keep it; adjoints are
    `g_<name of the forward node>`; everything else is named from its meaning
    (`meaning`: `inv_B`, `neg_y`, `sq_norm`, ...) or after its op.
    A node that is not wanted still gets a hint (what an adjoint of it is named after).
    """
    Op = _members()

    nodes = graph.nodes
    ns = Namespace(reserved)
    relu_args = _ReluArgs(nodes)
    squares = _Squares(graph)
    names: list[str | None] = [None] * len(nodes)
    hints: list[str | None] = [None] * len(nodes)  # forward names, for adjoints
    for i in graph.inputs:
        names[i] = hints[i] = ns.create(nodes[i].name)
    CONST, create = Op.CONST, ns.create
    by_op: dict = {}  # op -> sanitize(op.value), the hint of most nodes the code does not name
    # the loop body is inlined (runs once per node): a node with a name of its own never
    # needs `meaning` (its hint is that name), and neither does an adjoint or a constant
    for n, want in zip(nodes, wanted if wanted is not None else repeat(True)):
        i = n.id
        if names[i] is not None:
            continue
        name = n.name
        if not want:
            if name:
                hints[i] = sanitize(name)
                continue
            op = n.op
            if n.rule is None and n.adj is None and name is None and op is not CONST:
                hint = meaning(graph, n, hints, relu_args, squares)
                if hint:
                    hints[i] = sanitize(hint)
                    continue
            hint = by_op.get(op)
            if hint is None:
                hint = by_op[op] = sanitize(op.value)
            hints[i] = hint
            continue
        adj = n.adj
        if adj is not None:
            # adjoint_hint's first-order case inline: `g_<forward name>`
            hint = "g_" + (hints[adj] or "v") if n.second is None else adjoint_hint(graph, n, hints)
            name = create(hint, default="g")
        elif name is not None:
            name = create(name)
        elif n.op is CONST:
            name = create("c")
        else:
            hint = meaning(graph, n, hints, relu_args, squares) if n.rule is None else None
            name = create(hint or n.op.value)
        names[i] = hints[i] = name
    return names


def adjoint_hint(graph, n, hints) -> str:
    """The name hint of an adjoint or tangent node `n` (`n.adj` set), by its order:

    * first order: `g_y` (the gradient of forward value y);
    * the hvp's second pass (`second == "v"`): `hv_y` for forward y (at an input x, `hv_x` is
      (H v)_x), `t_y` for first-order `g_y` (its adjoint is y's tangent along v);
    * the hessian's pass for column x (`second == x`): `h_y_x` (d2f/dy dx), `t_y_x` (dy/dx);
    * forward mode (`second == "jvp"`): `t_y`, y's tangent.
    """
    target = graph.nodes[n.adj]
    base = hints[n.adj] or "v"
    if n.second is None:
        return "g_" + base
    if n.second == "jvp":
        return "t_" + base
    first_order = target.adj is not None and target.second is None
    if first_order:
        base = hints[target.adj] or "v"
    if n.second == "v":
        return ("t_" if first_order else "hv_") + base
    col = next((hints[i] for i in graph.inputs if graph.nodes[i].name == n.second), n.second)
    return ("t_" if first_order else "h_") + base + "_" + col
