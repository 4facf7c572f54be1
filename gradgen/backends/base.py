"""The Backend interface, and the renderer every backend shares.

A backend is what one target language supplies to turn a scheduled IR graph
(gradgen.backends.schedule) into a function's source:

* `name`: "python", "numpy", "torch";
* `imports`: import key -> import line (`"np": "import numpy as np"`); rendering
  records the keys a function needs (`Emitted.needs`) from the spellings,
  literals, helpers and prologue it used -- declared, never read back from text;
* `reserved`: names its code defines or uses (`np`, `B`, its helpers): no emitted
  name is one of them, and no exported function may be called one;
* `helpers`: helper name -> (source, import keys) of the module-level helpers its
  spellings and prologue call;
* expressions: `spelling(op)` is the `Format` of an elementwise op (the op
  registry's spelling for this backend once it has one, else the backend's own
  table), `literal(value)` a constant, `special(n, operand, sched)` the
  structural ops (elem, pack, sum, expand, bcast, batch) and exceptions;
* `prologue(graph, fname, names)`: the argument check, as (module-level table
  lines, body lines);
* statement forms: `assign(name, text)`, `update(name, op, text)` (`g += e`),
  `inplace_ok` (ops whose fresh results may be updated in place), and
  `out_form(n, text, operand, sched)`, a hook for `np.matmul(a, b, out=z0)`-style
  statements (None: the assignment; used by the NumPy step, gradgen.backends.lean).

`emit_function` = schedule + render: one flat function, forward then backward,
each backward line with its rule comment (gradgen.autodiff.comments).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from gradgen.autodiff import comments
from gradgen.ir.graph import Graph
from gradgen.ir.ops import OPS, Op

LINE = 88
ATOM, POW, UNARY, MUL, ADD = 100, 90, 80, 70, 60
_NUMBER = re.compile(r"-?\d[\d.]*(e[-+]?\d+)?")
SHORT = 16  # a forward value the code does not name appears in a rule comment if this short


try:  # the op registry's Format (helper "reg"); until then the one defined here
    from gradgen.ir.ops import Format  # type: ignore[attr-defined]
except ImportError:

    @dataclass(frozen=True)
    class Format:
        template: str  # {0}, {1}: operands; {k}: the attribute
        prec: int
        operand_prec: tuple[int, ...]  # the least precedence an operand may have unparenthesised
        helper: str | None = None  # a module-level helper the spelling calls


def literal(value) -> tuple[str, int]:
    """Python source for a constant, and its precedence (a negative number is unary).

    Only ints and floats are constants, printed by `int.__repr__` and
    `float.__repr__` themselves: a subclass's own `__repr__` never reaches
    generated code.  Infinities and NaN are `math.inf` / `math.nan`.
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


def wrap(items: list[str], head: str, tail: str, indent: str) -> list[str]:
    """`head item, item tail` on one line if it fits, else one item per line (black's way)."""
    one = f"{indent}{head}{', '.join(items)}{tail}"
    if len(one) <= LINE:
        return [one]
    return [f"{indent}{head}"] + [f"{indent}    {it}," for it in items] + [f"{indent}{tail.lstrip()}"]


def as_tuple(items) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@dataclass
class Emitted:
    lines: list[str]
    helpers: set[str]  # module-level helpers the function calls
    needs: set[str]  # import keys (Backend.imports) the function and its helpers need
    params: list[str]  # the parameter names as emitted (through the namespace)
    signature: list[str]  # the same with their defaults, `k=2.0`
    grads: list[str]  # for "grad": the parameter each returned gradient belongs to
    backend: "Backend | None" = None
    tables: list[str] = field(default_factory=list)  # module-level lines before the def (argument tables)
    array: bool = False  # an array function (the module docstring says what its gradients are)
    sched: object = None  # the Schedule it was rendered from (a step reuses a gradient's)


def is_array_graph(graph) -> bool:
    return any(n.shape or n.op in (Op.ELEM, Op.PACK, Op.MATMUL, Op.BATCH) for n in graph.nodes)


class Backend:
    """Defaults are plain Python; see the module docstring for what a backend overrides."""

    name = "base"
    imports: dict[str, str] = {}
    always: frozenset = frozenset()  # import keys every function of this backend needs
    module_names: frozenset = frozenset()  # what its modules define or import at module level
    reserved: frozenset = frozenset()  # module_names and the names its function bodies use (B)
    helpers: dict = {}  # name -> () -> (source, import keys)
    inplace_ok: frozenset = frozenset()
    array = False  # whether the module's arguments are arrays (the docstring says so)
    decorators: tuple = ()  # lines before each `def` (numba: `@njit(cache=False)`)

    def spelling(self, op: Op):
        """How this backend writes the elementwise op `op`: the op registry's entry for it."""
        f = OPS[op].spell.get(self.name)
        if f is None:
            raise KeyError(op)  # not an elementwise op this backend spells
        return f

    def estimate(self, op: Op) -> int:
        """Length of `op`'s spelling without operands, for the scheduler's inlining estimate."""
        try:
            return len(self.spelling(op).template)
        except KeyError:
            return 12

    def literal(self, value) -> tuple[str, int]:
        return literal(value)

    def spelling_needs(self, op: Op, f) -> set[str]:
        """The import keys a spelling uses, each key its template calls (`math.tanh({0})` ->
        math): read from the declared spelling, never from the output."""
        return {k for k in self.imports if f"{k}." in f.template}

    def literal_needs(self, text: str) -> set[str]:
        return {"math"} if "math." in text else set()

    def special(self, n, operand, sched):
        """(text, prec, helper or None) for ops not spelled by a Format, or None."""
        return None

    def prologue(self, graph: Graph, fname: str, names: list[str]) -> tuple[list[str], list[str], set[str]]:
        """(module-level lines, body lines, helpers) that check the arguments."""
        return [], [], set()

    def assign(self, name: str, text: str) -> str:
        return f"{name} = {text}"

    def update(self, name: str, op: Op, text: str) -> str:
        return f"{name} {'+=' if op is Op.ADD else '-='} {text}"

    def layout_like(self, graph: Graph) -> "Backend":
        """The backend whose spellings' lengths decide inlining (gradgen.backends.schedule)."""
        return self

    def result(self, i: int, text: str, sched) -> str:
        """How output node i is returned (a backend may convert, e.g. a float to a tensor)."""
        return text

    def out_form(self, n, text, operand, sched) -> list[str] | None:
        """The statements computing node `n` (whose expression is `text`) in place of the plain
        assignment: a hook for `np.matmul(a, b, out=z0)` forms (gradgen.backends.lean); `[]`
        writes nothing.  None: the assignment (`assign`, or `update` for `g += e`)."""
        return None

    def step_functions(self, name: str, functions: list, opt) -> list:
        """`<name>_step` and `<name>_train` (gradgen.backends.step) as this backend writes them."""
        return functions

    def doc_grad(self, base: str, grads: list[str]) -> str:
        return f"Value of {base} and its gradient, one entry per argument."

    def ret(self, value: str, grads: list[str]) -> list[str]:
        """The return statement of a gradient function: `value, (g_1, ..., g_n)`."""
        items = grads if len(grads) != 1 else [grads[0] + ","]
        out = wrap(items, f"return {value}, (", ")", "    ")
        if len(grads) == 1 and len(out) > 1:
            out = [f"    return {value}, (", f"        {grads[0]},", "    )"]
        return out

    def expression(self, n, operand, sched, helpers: set, needs: set) -> tuple[str, int]:
        """The text and precedence of node `n`'s value (its statement's right-hand side)."""
        if n.op is Op.CONST:
            text, prec = self.literal(n.attr)
            needs |= self.literal_needs(text)
            return text, prec
        special = self.special(n, operand, sched) if not sched.rebind[n.id] else None
        if special is not None:
            text, prec, helper = special
            if helper:
                helpers.add(helper)
            return text, prec
        f = self.spelling(n.op)
        if getattr(f, "helper", None):
            helpers.add(f.helper)
        needs |= self.spelling_needs(n.op, f)
        if n.op is Op.POW:
            base = operand(n.args[0], ATOM)
            k, _ = self.literal(n.attr)
            return (f"{base}**{k}" if _SIMPLE.fullmatch(base) else f"{base} ** {k}"), f.prec
        if sched.rebind[n.id]:
            return operand(n.args[1], 0 if n.op is Op.ADD else ADD + 1), f.prec
        ops = [operand(a, need) for a, need in zip(n.args, f.operand_prec)]
        return f.template.format(*ops, k=n.attr), f.prec


def in_source_order(statements: list, refs: list) -> list:
    """The forward statements with each one that reads no other statement (`neg = -y`,
    `inv_B = 1.0 / B`) moved down to just before the first statement that reads it, as a
    person writes it: the scheduler's order otherwise (ids, the order the model computes)."""
    first: dict[int, int] = {}
    for i, _ in statements:
        for r in refs[i]:
            first.setdefault(r, i)
    leaf = {i for i, _ in statements if not refs[i] and i in first}
    out: list = []
    waiting: dict[int, list] = {}
    for i, lines in statements:
        if i in leaf:
            waiting.setdefault(first[i], []).append((i, lines))
            continue
        out += waiting.pop(i, [])
        out.append((i, lines))
    return out + [s for w in waiting.values() for s in w]


def emit_function(
    graph: Graph,
    fname: str,
    returns: str,
    doc,
    backend: Backend | None = None,
    defaults: dict | None = None,
    sched=None,
    ret=None,
) -> Emitted:
    """Source lines of `def fname(...)` computing `graph` with `backend` (default: `backend_for(graph)`).

    `returns` is "value" (return the single output) or "grad" (return
    `value, (g_1, ..., g_n)` from the VALUE and gradient outputs).  `doc` is the
    docstring, or None for a gradient function (the backend's `doc_grad`).
    `defaults` maps an argument's name (its input's origin) to its default, a float.
    `ret`: builds the return statement instead, `ret(ref) -> lines` (`ref(i)`: how output node
    i is written), for the second-order functions (gradgen.backends.second).
    """
    from gradgen.backends import backend_for
    from gradgen.backends.schedule import schedule

    backend = backend or backend_for("numpy", graph)
    sched = sched or schedule(graph, backend, reserved={fname}, like=backend.layout_like(graph))
    nodes, names = graph.nodes, sched.names
    expr: list[tuple[str, int] | None] = [None] * len(nodes)
    helpers: set[str] = set()
    needs: set[str] = set(backend.always)
    body: list[str] = []
    section = None  # "forward" or "backward" once the first backward statement is written

    def operand(a: int, need: int) -> str:
        text, prec = (names[a], ATOM) if sched.named(a) else expr[a]
        return f"({text})" if prec < need else text

    def ref(i: int) -> str:
        return names[i] if sched.named(i) else expr[i][0]

    def name_of(i: int) -> str | None:  # a forward operand in a rule comment: its name, or a short expression
        if sched.named(i):
            return names[i]
        text = operand(i, ATOM)
        if len(text) > SHORT:
            return None
        return text if text.isidentifier() or text[0] == "(" or _NUMBER.fullmatch(text) else f"({text})"

    def flush(statements) -> list[str]:
        return [ln for _, lines in in_source_order(statements, refs) for ln in lines]

    refs: list[frozenset] = [frozenset()] * len(nodes)  # the statements a node's expression reads
    forward: list[tuple[int, list[str]]] = []
    for n in nodes:
        if n.op is Op.INPUT:
            expr[n.id] = (names[n.id], ATOM)
            continue
        expr[n.id] = text, _ = backend.expression(n, operand, sched, helpers, needs)
        refs[n.id] = frozenset().union(*({a} if sched.line[a] else refs[a] for a in n.args))
        if not sched.line[n.id]:
            continue
        forms = backend.out_form(n, text, operand, sched)
        if forms is None:
            forms = [
                backend.update(names[n.id], n.op, text) if sched.rebind[n.id] else backend.assign(names[n.id], text)
            ]
        note = comments.note(n, name_of, nodes) if forms else None
        stmt = "    " + forms[0] if len(forms) == 1 else None
        if not forms:
            lines = []
        elif stmt and note and len(stmt) + 2 + len(note) <= LINE:
            lines = [f"{stmt}  {note}"]
        else:  # a statement after the first carries the model line too: `# [moons.py:35]`
            tag = re.search(r"\[[^\[\]]*:\d+\]$", note or "")
            more = [f"    {f}" + (f"  # {tag.group()}" if tag else "") for f in forms[1:]]
            lines = ([f"    {note}"] if note else []) + ["    " + forms[0]] + more
        want = "backward" if n.rule is not None else "forward"
        if n.second is not None and n.rule is not None:
            want = "tangents (forward mode)" if n.second == "jvp" else "second order"
        if section is None and want == "forward":  # the forward code, reordered at its end
            forward.append((n.id, lines))
            continue
        if section is None:
            body += (["    # forward"] if forward and returns == "grad" else []) + flush(forward)
        if returns == "grad" and want != section:
            body.append(f"    # {want}")
        section = want
        body += lines
    if section is None:
        body += (["    # forward"] if returns == "grad" else []) + flush(forward)

    value = backend.result(graph.output("value"), ref(graph.output("value")), sched)
    grads = [backend.result(i, ref(i), sched) for _, i in graph.grads()]
    if ret is not None:
        ret = ret(lambda i: backend.result(i, ref(i), sched))
    else:
        ret = [f"    return {value}"] if returns == "value" else backend.ret(value, grads)
    defaults = defaults or {}
    params = [names[i] for i in graph.inputs]
    sig_params = []
    for i in graph.inputs:
        origin = nodes[i].origin
        if origin is not None and origin.kind == "arg" and origin.name in defaults:
            sig_params.append(f"{names[i]}={literal(float(defaults[origin.name]))[0]}")
        else:
            sig_params.append(names[i])
    head = wrap(sig_params, f"def {fname}(", "):", "")
    tables, pro, pro_helpers = backend.prologue(graph, fname, params)
    helpers |= pro_helpers
    for h in helpers:
        needs |= set(backend.helpers[h]()[1])
    by_name = {nodes[i].name: names[i] for i in graph.inputs}
    grad_names = [by_name.get(role.of, "?") for role, _ in graph.grads()]
    text = backend.doc_grad(fname[: -len("_grad")], grad_names) if doc is None else doc
    lines = list(backend.decorators) + head + [f'    """{text}"""'] + pro + body + ret
    return Emitted(
        lines, helpers, needs, params, sig_params, grad_names, backend, tables, is_array_graph(graph), sched
    )
