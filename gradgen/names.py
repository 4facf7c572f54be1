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
    if hint and _plain(hint):
        return hint  # what the rules return for it, without running them (a hot path)
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
    """
    Op = _members()

    op, args, nodes = n.op, n.args, graph.nodes

    def name(i):
        if nodes[i].op is Op.BATCH:
            return "B"  # the prologue's batch size
        h = hints[i]
        if nodes[i].op is Op.INPUT:
            return h
        return h if h and nodes[i].op is not Op.CONST and not _generic(h) else None

    def short(text):
        return text if len(text) <= SHORT else None

    if op is Op.DIV and nodes[args[0]].op is Op.CONST and nodes[args[0]].attr == 1.0 and name(args[1]):
        return short("inv_" + name(args[1]))
    if op is Op.NEG and name(args[0]):
        return short("neg_" + name(args[0]))
    if op is Op.MUL and args[0] == args[1] and name(args[0]):
        return short("sq_" + name(args[0]))
    squares = squares if squares is not None else square_flags(graph)
    if op in (Op.SUM, Op.ADD) and squares[n.id]:
        return "sq_norm"
    if op is Op.RELU and nodes[args[0]].op is Op.ADD and any(nodes[a].op is Op.CONST for a in nodes[args[0]].args):
        return "hinge"
    if op is Op.ADD and any(nodes[a].op is Op.CONST for a in args) and n.id in relu_args:
        return "margin"
    if op is Op.SUM and name(args[0]):
        return short("sum_" + name(args[0]))
    if op is Op.MUL and args[0] != args[1] and name(args[0]) and name(args[1]):
        return short(name(args[0]) + "_" + name(args[1]))
    return None


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


def assign_names(graph, reserved=(), wanted=None) -> list[str | None]:
    """A name for every node of `graph` (or those where `wanted[i]`), in id order.

    Inputs keep their argument names; nodes with a hint keep it; adjoints are
    `g_<name of the forward node>`; everything else is named from its meaning
    (`meaning`: `inv_B`, `neg_y`, `sq_norm`, ...) or after its op.
    """
    Op = _members()

    ns = Namespace(reserved)
    relu_args = {a for m in graph.nodes if m.op is Op.RELU for a in m.args}
    squares = square_flags(graph)
    names: list[str | None] = [None] * len(graph.nodes)
    hints: list[str | None] = [None] * len(graph.nodes)  # forward names, for adjoints
    for i in graph.inputs:
        names[i] = hints[i] = ns.create(graph.nodes[i].name)
    CONST, create = Op.CONST, ns.create
    by_op: dict = {}  # op -> sanitize(op.value), the hint of most nodes the code does not name
    for n in graph.nodes:
        if names[n.id] is not None:
            continue
        fallback = None
        if n.adj is None and n.name is None and n.op is not CONST and n.rule is None:
            fallback = meaning(graph, n, hints, relu_args, squares)
        if wanted is not None and not wanted[n.id]:
            hint = n.name or fallback
            if hint:
                hints[n.id] = sanitize(hint)
            else:
                hint = by_op.get(n.op)
                if hint is None:
                    hint = by_op[n.op] = sanitize(n.op.value)
                hints[n.id] = hint
            continue
        if n.adj is not None:
            name = create(adjoint_hint(graph, n, hints), default="g")
        elif n.name is not None:
            name = create(n.name)
        elif n.op is CONST:
            name = create("c")
        else:
            name = create(fallback or n.op.value)
        names[n.id] = hints[n.id] = name
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
