"""The scalar emitter: an IR graph -> one flat Python function on floats.

Every statement it writes is an IR node.  Which nodes get their own line:
inputs are parameters; constants are literals; a node gets a line when it
has a name (a user label or variable, or an adjoint `g_x`), is used more
than once, or is an output.  Other nodes are inlined into their one user if
that user belongs to the same line group (the forward code, or one backward
step, i.e. one rule application) and the expression stays short.  So the
forward reads like the model source and the backward has one adjoint step
per line, each with a comment naming its rule and the model line.

Operators come from `FORMATS` (op -> template + precedence); parentheses are
added only where Python's precedence needs them, and operands of `**` are
written the way black writes them, so black leaves the output unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gradgen.autodiff import comments
from gradgen.ir.graph import Graph
from gradgen.ir.ops import ADD, ATOM, MUL, OPS, POW, UNARY, Format, Op  # noqa: F401 (re-exported)
from gradgen.names import assign_names, sanitize

LINE = 88
INLINE_LIMIT = 56  # longest expression inlined into its user


def spelling(op: Op) -> Format | None:
    """How this backend writes `op`: its registry entry's "python" spelling."""
    return OPS[op].spell.get("python")


FORMATS: dict[Op, Format] = {op: spelling(op) for op in Op if spelling(op) is not None}
HELPERS = {op: f.helper for op, f in FORMATS.items() if f.helper}


@dataclass(frozen=True)
class Dialect:
    """How one flavour of emitted code spells ops: a format table plus a few special cases."""

    formats: dict
    helpers: dict
    special: object = None  # (node, operand(arg, prec) -> str, names) -> (text, prec) | None
    inplace_ok: frozenset = frozenset()  # ops whose result may be updated in place (`g += c`)
    reserved: frozenset = frozenset()


SCALAR = Dialect(FORMATS, HELPERS, inplace_ok=frozenset(Op))


def literal(value) -> tuple[str, int]:
    """Python source for a constant, and its precedence (a negative number is unary).

    Only ints and floats are constants, printed by `int.__repr__` and
    `float.__repr__` themselves: a subclass's own `__repr__` never reaches
    generated code.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a constant must be an int or float, not {type(value).__name__}")
    if isinstance(value, float):
        if math.isnan(value):
            return "math.nan", ATOM
        if math.isinf(value):
            return ("math.inf", ATOM) if value > 0 else ("-math.inf", UNARY)
        text = float.__repr__(value)
    else:
        text = int.__repr__(value)
    return text, UNARY if text.startswith("-") else ATOM


# black's "simple power operand": a name, number or attribute chain, maybe negated;
# black writes `x**2` when the base is simple (exponents here always are) and `f(x) ** 2` otherwise
_SIMPLE = re.compile(r"-?(\d[\d.]*(e[-+]?\d+)?|[A-Za-z_][\w.]*)")


def _group(n) -> tuple:
    return ("b", n.step) if n.rule is not None else ("f",)


def _wrap(items: list[str], head: str, tail: str, indent: str) -> list[str]:
    """`head item, item tail` on one line if it fits, else one item per line (black's way)."""
    one = f"{indent}{head}{', '.join(items)}{tail}"
    if len(one) <= LINE:
        return [one]
    return [f"{indent}{head}"] + [f"{indent}    {it}," for it in items] + [f"{indent}{tail.lstrip()}"]


@dataclass
class Emitted:
    lines: list[str]
    helpers: set[str]
    params: list[str]  # the parameter names as emitted (through the namespace)
    signature: list[str]  # the same with their defaults, `k=2.0`
    grads: list[str]  # for "grad": the parameter each returned gradient belongs to


def emit_function(
    graph: Graph,
    fname: str,
    params: list[str],
    returns: str,
    doc: str,
    dialect: Dialect = SCALAR,
    prologue=None,
    defaults: dict | None = None,
) -> Emitted:
    """Source lines of `def fname(params)` computing `graph`.

    `returns` is "value" (return the single output) or "grad" (return
    `value, (g_1, ..., g_n)` from the VALUE and "grad" outputs).  `prologue`,
    given the parameter names, returns lines that go before the body.
    `doc` is the docstring, or a function of the returned gradients' parameter
    names that makes it.  `defaults` maps an argument's name (its input's origin) to its default,
    a float written as a literal.
    """
    FORMATS = dialect.formats
    nodes = graph.nodes
    uses = [0] * len(nodes)
    user: list[int | None] = [None] * len(nodes)
    for n in nodes:
        for a in n.args:
            uses[a] += 1
            user[a] = n.id
    for _, i in graph.outputs:
        uses[i] += 2  # an output always gets a name

    # 1. which nodes get a line (estimates lengths with hints; names come after)
    line = [False] * len(nodes)
    est: list[int] = [0] * len(nodes)
    for n in nodes:
        if n.op is Op.INPUT:
            est[n.id] = len(n.name or "x")
            continue
        if n.op is Op.CONST and n.adj is None and n.name is None:
            est[n.id] = len(literal(n.attr)[0])
            continue
        if n.op is Op.BATCH:  # the prologue's `B`
            est[n.id] = 1
            continue
        hidden = n.adj is not None and not line[n.adj] and nodes[n.adj].op is not Op.INPUT
        if n.op is Op.COPY and hidden:
            # the adjoint of a forward value the code never names: just an alias (a copy
            # is never updated in place, and neither is what it copies while the copy is read)
            est[n.id] = est[n.args[0]]
            continue
        fmt = FORMATS.get(n.op)
        size = (len(fmt.template) if fmt else 12) + sum(est[a] for a in n.args)
        own = n.name is not None or n.adj is not None or n.op is Op.CONST
        same = uses[n.id] == 1 and _group(nodes[user[n.id]]) == _group(n)
        line[n.id] = own or not same or size > INLINE_LIMIT
        est[n.id] = len(sanitize(n.name or n.op.value)) + 4 if line[n.id] else size

    # `g_x += c` / `g_x -= c`: an accumulation whose previous partial is used nowhere else
    rebind = [False] * len(nodes)
    for n in nodes:
        if n.op in (Op.ADD, Op.SUB) and n.adj is not None and line[n.id]:
            p = nodes[n.args[0]]
            if p.adj == n.adj and line[p.id] and uses[p.id] == 1 and n.args[1] != p.id:
                # arrays: only a fresh result of the same shape may be updated in place
                rebind[n.id] = p.op in dialect.inplace_ok and p.shape == n.shape

    wanted = [line[i] and not rebind[i] for i in range(len(nodes))]
    for i in graph.inputs:
        wanted[i] = True
    names = assign_names(graph, reserved={fname, "_sigmoid"} | dialect.reserved, wanted=wanted)
    for n in nodes:
        if rebind[n.id]:
            names[n.id] = names[n.args[0]]

    # 2. expressions, in id order
    expr: list[tuple[str, int] | None] = [None] * len(nodes)
    helpers: set[str] = set()
    body: list[str] = []
    section = None

    def operand(a: int, need: int) -> str:
        if line[a] or nodes[a].op is Op.INPUT:
            text, prec = names[a], ATOM
        else:
            text, prec = expr[a]
        return f"({text})" if prec < need else text

    def name_of(i: int) -> str:  # a forward operand in a rule comment: its name, or its expression
        if line[i] or nodes[i].op is Op.INPUT:
            return names[i]
        text = operand(i, ATOM)  # an inlined value: short ones by their expression
        return None if len(text) > 16 else text if text.isidentifier() or text[0] == "(" else f"({text})"

    for n in nodes:
        if n.op is Op.INPUT:
            expr[n.id] = (names[n.id], ATOM)
            continue
        special = dialect.special(n, operand, line) if dialect.special and not rebind[n.id] else None
        if n.op is Op.CONST:
            text, prec = literal(n.attr)
        elif special is not None:
            text, prec, helper = special
            if helper:
                helpers.add(helper)
        else:
            f = FORMATS[n.op]
            if n.op in dialect.helpers:
                helpers.add(dialect.helpers[n.op])
            if n.op is Op.POW:
                base = operand(n.args[0], ATOM)
                k, _ = literal(n.attr)
                text = f"{base}**{k}" if _SIMPLE.fullmatch(base) else f"{base} ** {k}"
            elif rebind[n.id]:
                text = operand(n.args[1], 0 if n.op is Op.ADD else ADD + 1)
            else:
                ops = [operand(a, need) for a, need in zip(n.args, f.operand_prec)]
                text = f.template.format(*ops)
            prec = f.prec
        expr[n.id] = (text, prec)
        if not line[n.id]:
            continue
        want = "backward" if n.rule is not None else "forward"
        if returns == "grad" and want != section:
            body.append(f"    # {want}")
            section = want
        assign = ("+=" if n.op is Op.ADD else "-=") if rebind[n.id] else "="
        stmt = f"    {names[n.id]} {assign} {text}"
        note = comments.note(n, name_of, nodes)
        if note and len(stmt) + 2 + len(note) <= LINE:
            body.append(f"{stmt}  {note}")
        elif note:
            body.extend([f"    {note}", stmt])
        else:
            body.append(stmt)

    def ref(i: int) -> str:
        return names[i] if line[i] or nodes[i].op is Op.INPUT else expr[i][0]

    value = ref(graph.output("value"))
    if returns == "value":
        ret = [f"    return {value}"]
    else:
        grads = [ref(i) for _, i in graph.grads()]
        items = grads if len(grads) != 1 else [grads[0] + ","]
        ret = _wrap(items, f"return {value}, (", ")", "    ")
        if len(grads) == 1 and len(ret) > 1:
            ret = [f"    return {value}, (", f"        {grads[0]},", "    )"]
    defaults = defaults or {}
    sig_params = []
    for i in graph.inputs:
        origin = nodes[i].origin
        if origin is not None and origin.kind == "arg" and origin.name in defaults:
            sig_params.append(f"{names[i]}={literal(float(defaults[origin.name]))[0]}")
        else:
            sig_params.append(names[i])
    head = _wrap(sig_params, f"def {fname}(", "):", "")
    pro = prologue([names[i] for i in graph.inputs]) if prologue else []
    by_name = {nodes[i].name: names[i] for i in graph.inputs}
    grads = [by_name.get(role.of, "?") for role, _ in graph.grads()]
    text = doc(grads) if callable(doc) else doc
    lines = head + [f'    """{text}"""'] + pro + body + ret
    return Emitted(lines, helpers, [names[i] for i in graph.inputs], sig_params, grads)
