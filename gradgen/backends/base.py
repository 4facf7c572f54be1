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
  statements (None: the assignment; used by the NumPy step, gradgen.backends.lean);
* `arrange(statements, ctx)`: the body's statements, `(node id, lines)` in order, as
  the lines written (numba: loops, fused; gradgen.backends.loops); default: joined.

`emit_function` = schedule + render: one flat function, forward then backward,
each backward line with its rule comment (gradgen.autodiff.comments).
"""

from __future__ import annotations

import math
import re
from operator import attrgetter
from dataclasses import dataclass, field
from types import SimpleNamespace

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
    lines: list[str]  # the function's lines (an entry may hold several, joined by newlines)
    helpers: set[str]  # module-level helpers the function calls
    needs: set[str]  # import keys (Backend.imports) the function and its helpers need
    params: list[str]  # the parameter names as emitted (through the namespace)
    signature: list[str]  # the same with their defaults, `k=2.0`
    grads: list[str]  # for "grad": the parameter each returned gradient belongs to
    backend: "Backend | None" = None
    tables: list[str] = field(default_factory=list)  # module-level lines before the def (argument tables)
    array: bool = False  # an array function (the module docstring says what its gradients are)
    shapes: dict = field(default_factory=dict)  # parameter name -> its IR shape
    sched: object = None  # the Schedule it was rendered from (a step reuses a gradient's)
    prefix: object = None  # a gradient function's forward statements, for its value function (`Prefix`)


_ARRAY_OPS = frozenset({Op.ELEM, Op.PACK, Op.MATMUL, Op.BATCH})
# ops read in the renderer's per-node code, bound once (on Python 3.11 `Op.X` goes through
# the Enum metaclass's __getattr__ hook: ~0.5 us a read)
_CONST, _POW, _ADD = Op.CONST, Op.POW, Op.ADD


_OP, _SHAPE = attrgetter("op"), attrgetter("shape")


def is_array_graph(graph) -> bool:
    # map/attrgetter: the sweep runs in C (it covers every node of a large graph, more than once)
    nodes = graph.nodes
    return any(map(_SHAPE, nodes)) or not _ARRAY_OPS.isdisjoint(map(_OP, nodes))


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

    def arrange(self, statements: list, ctx) -> list[str]:
        """The body's lines from its statements in order, `(node id or None, lines)` (None: a
        section comment); a backend may rewrite them (numba: loops, fused; `ctx` has `sched`,
        `operand`, `expr`, `notes`, `helpers`, `needs`).  Default: the lines as they are."""
        return [ln for _, lines in statements for ln in lines]

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
        op = n.op
        if op is _CONST:
            text, prec = self.literal(n.attr)
            needs |= self.literal_needs(text)
            return text, prec
        rebind = sched.rebind[n.id]
        special = self.special(n, operand, sched) if not rebind else None
        if special is not None:
            text, prec, helper = special
            if helper:
                helpers.add(helper)
            return text, prec
        try:
            f, helper, uses = self._forms[op]
        except (AttributeError, KeyError):  # the first time for this backend, or for this op
            f, helper, uses = self.form(op)
        if helper:
            helpers.add(helper)
        if uses:
            needs |= uses
        if op is _POW:
            base = operand(n.args[0], ATOM)
            k, _ = self.literal(n.attr)
            return (f"{base}**{k}" if _SIMPLE.fullmatch(base) else f"{base} ** {k}"), f.prec
        if rebind:
            return operand(n.args[1], 0 if op is _ADD else ADD + 1), f.prec
        args, need = n.args, f.operand_prec
        if len(args) == 2 and len(need) == 2:
            return f.template.format(operand(args[0], need[0]), operand(args[1], need[1]), k=n.attr), f.prec
        return f.template.format(*[operand(a, p) for a, p in zip(args, need)], k=n.attr), f.prec

    def form(self, op: Op) -> tuple:
        """(spelling, helper or None, import keys) of the elementwise op `op`, looked up once per
        backend and op (`spelling` and `spelling_needs` depend on nothing else)."""
        forms = self.__dict__.get("_forms")
        if forms is None:
            forms = self._forms = {}
        got = forms.get(op)
        if got is None:
            f = self.spelling(op)
            got = forms[op] = (f, getattr(f, "helper", None), frozenset(self.spelling_needs(op, f)))
        return got


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


NAMED = ATOM + 1  # the precedence `emit_function` records for a node written by its name
# a gradient function's backward lines are kept joined, this many to an entry of `Emitted.lines`:
# the text is the same, without a string object per line alive until the module is joined
CHUNK = 256


class _Terms:
    """`term` as `(text, precedence)` pairs for a backend's `arrange` (a named node's entry is its name)."""

    __slots__ = ("text", "prec")

    def __init__(self, text: list, prec: list):
        self.text, self.prec = text, prec

    def __getitem__(self, i: int) -> tuple[str, int]:
        p = self.prec[i]
        return (self.text[i], ATOM if p == NAMED else p)


@dataclass
class Prefix:
    """What rendering a gradient function's forward code left for its value function
    (`emit_function(..., prefix=)`): when the value's nodes are exactly the graph's first `end`
    nodes, all forward, the value function's body is those statements again, in the same order."""

    end: int  # the value function's graph is nodes[:end] of the gradient's
    statements: list  # the forward statements, (node id, lines), in id order (before in_source_order)
    refs: list  # refs[i]: the statements node i's expression reads (see in_source_order)
    helpers: set
    needs: set
    ordered: list | None = None  # in_source_order(statements, refs), once the gradient computed it


def _fast_entry(backend, op, helpers: set, needs: set) -> tuple:
    """How the renderer's inlined path writes `op` (see emit_function): (kind, format, prec, need0, need1),
    kind 1 or 2 for a unary or binary Format that shows no attribute, 0 for anything else (then
    `Backend.expression` writes the node).  Records the spelling's helper and import keys, as
    `Backend.expression` does for every node of the op."""
    if op is _CONST or op is _POW:
        return (0, None, 0, 0, 0)
    try:
        f, helper, uses = backend.form(op)
    except KeyError:
        return (0, None, 0, 0, 0)
    if helper:
        helpers.add(helper)
    needs |= uses
    need = f.operand_prec
    if "{k" in f.template or len(need) not in (1, 2):
        return (0, None, 0, 0, 0)
    return (len(need), f.template.format, f.prec, need[0], need[-1])


def _noted(stmt: str, note: str) -> list[str]:
    """A statement's line(s) with its rule comment: after it when that fits in LINE, else above."""
    if not note:
        return [stmt]
    if len(stmt) + 2 + len(note) <= LINE:
        return [f"{stmt}  {note}"]
    return [f"    {note}", stmt]


def emit_function(
    graph: Graph,
    fname: str,
    returns: str,
    doc,
    backend: Backend | None = None,
    defaults: dict | None = None,
    sched=None,
    ret=None,
    prefix: Prefix | None = None,
) -> Emitted:
    """Source lines of `def fname(...)` computing `graph` with `backend` (default: `backend_for(graph)`).

    `returns` is "value" (return the single output) or "grad" (return
    `value, (g_1, ..., g_n)` from the VALUE and gradient outputs).  `doc` is the
    docstring, or None for a gradient function (the backend's `doc_grad`).
    `defaults` maps an argument's name (its input's origin) to its default, a float.
    `ret`: builds the return statement instead, `ret(ref) -> lines` (`ref(i)`: how output node
    i is written), for the second-order functions (gradgen.backends.second).
    `prefix`: the `Emitted.prefix` of the gradient function whose schedule this function's was
    cut from (`schedule.forward_part`); when it applies, the forward statements are reused, not
    rendered again (the same text: each statement depends only on its node and its operands).
    """
    from gradgen.backends import backend_for
    from gradgen.backends.schedule import schedule

    backend = backend or backend_for("numpy", graph)
    sched = sched or schedule(graph, backend, reserved={fname}, like=backend.layout_like(graph))
    nodes, names, line, rebind = graph.nodes, sched.names, sched.line, sched.rebind
    kind = type(backend)
    default_arrange = kind.arrange is Backend.arrange
    # how each node is written as an operand: txt[i] its name once it has a statement (or is an
    # input; then prc[i] is NAMED), else its expression, of precedence prc[i]; None: not rendered yet
    txt: list = [None] * len(nodes)
    prc = bytearray(len(nodes))  # (precedences are small ints: a byte each, not a list entry)
    helpers: set[str] = set()
    needs: set[str] = set(backend.always)
    body: list = []  # statements, (node id or None, lines); with the default arrange, the lines themselves
    notes: dict[int, str | None] = {}

    def operand(a: int, need: int) -> str:
        return txt[a] if prc[a] >= need else f"({txt[a]})"

    def ref(i: int) -> str:
        return txt[i]

    def name_of(i: int) -> str | None:  # a forward operand in a rule comment: its name, or a short expression
        text, prec = txt[i], prc[i]
        if prec == NAMED:
            return text
        if text is None:  # not rendered yet (a node later in the order): its name if it will have one
            return names[i] if line[i] or nodes[i].op is Op.INPUT else None
        if prec < ATOM:
            text = f"({text})"
        if len(text) > SHORT:
            return None
        return text if text.isidentifier() or text[0] == "(" or _NUMBER.fullmatch(text) else f"({text})"

    # the statements a forward node's expression reads (for in_source_order; not needed once
    # the backward has begun: the forward statements are written by then)
    refs: list = []  # (filled in id order while the forward is written: only that long)
    value = graph.output("value")
    if prefix is not None and not (
        getattr(sched, "cut", None) == prefix.end == len(nodes)
        and default_arrange
        and kind.out_form is Backend.out_form
        and (line[value] or nodes[value].op is Op.INPUT)
    ):
        prefix = None  # not the gradient's first nodes (or a backend that rearranges): rendered as usual
    if prefix is not None:  # the gradient function's forward statements (see Prefix)
        for i in graph.inputs:
            txt[i], prc[i] = names[i], NAMED
        for i in range(len(nodes)):
            if line[i]:
                txt[i], prc[i] = names[i], NAMED
        helpers |= prefix.helpers
        needs |= prefix.needs
        ordered = prefix.ordered if prefix.ordered is not None else in_source_order(prefix.statements, prefix.refs)
        for _, lines in ordered:
            body += lines
        mine = None
    else:
        body, mine = _render(
            graph, returns, backend, sched, txt, prc, refs, helpers, needs, notes, operand, name_of, default_arrange
        )
    if not default_arrange:
        ctx = SimpleNamespace(
            sched=sched, operand=operand, expr=_Terms(txt, prc), notes=notes, helpers=helpers, needs=needs
        )
        body = backend.arrange(body, ctx)

    value = backend.result(value, ref(value), sched)
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
    # the body's lines are not copied into a new list: `lines` is the head, the body, then the return
    lines = list(backend.decorators) + head + [f'    """{text}"""'] + pro
    lines += body
    del body
    lines += ret
    shapes = {names[i]: nodes[i].shape for i in graph.inputs}
    array = getattr(sched, "array", None)
    if array is None:
        array = is_array_graph(graph)
        if hasattr(sched, "array"):
            sched.array = array  # a value function cut from it is an array function only if it is one
    return Emitted(lines, helpers, needs, params, sig_params, grad_names, backend, tables, array, shapes, sched, mine)


def _render(graph, returns, backend, sched, txt, prc, refs, helpers, needs, notes, operand, name_of, flat):
    """The body's statements (see emit_function), and the `Prefix` a value function may reuse.

    One sweep in id order.  The per-node work is inlined (this loop runs once per node of
    graphs with millions): a backend that keeps the base `expression` and `special` (plain
    Python) writes a unary or binary op with one lookup of its pre-bound template
    (`_fast_entry`) and one `str.format`; anything else goes through `backend.expression`.
    With `flat` (the default `arrange`) the backward's statements are appended as lines.
    """
    nodes, names, line, rebind = graph.nodes, sched.names, sched.line, sched.rebind
    kind = type(backend)
    fast = kind.expression is Backend.expression and kind.special is Backend.special
    plain_stmt = kind.assign is Backend.assign and kind.update is Backend.update and kind.out_form is Backend.out_form
    keep_notes = not flat
    table: dict = {}  # op -> _fast_entry
    literals: dict = {}  # (type, value) -> (text, prec), nonzero constants (0.0 and -0.0 are equal keys)
    expression, assign, update, out_form = backend.expression, backend.assign, backend.update, backend.out_form
    note_of = comments.note
    INPUT, CONST = Op.INPUT, _CONST
    value = graph.output("value")
    end = value + 1 if returns == "grad" else -1  # where a value function cut from this one ends (Prefix)
    mine = None
    body: list = []
    forward: list = []  # (node id, lines), until the first backward statement
    pending: list = []  # flat: the backward's lines not yet joined into one entry of `body`
    section = None  # "forward" or "backward" once the first backward statement is written
    for n in nodes:
        i = n.id
        op = n.op
        if i == end:  # the value function's nodes are rendered: what it may reuse
            mine = Prefix(end, list(forward), refs, set(helpers), set(needs)) if section is None else None
        if op is INPUT:
            txt[i], prc[i] = names[i], NAMED
            if section is None:
                refs.append(())
            continue
        if fast:
            e = table.get(op)
            if e is None:
                e = table[op] = _fast_entry(backend, op, helpers, needs)
            k, fmt, prec, need_a, need_b = e
            if k == 2 and not rebind[i]:
                a, b = n.args
                x, y = txt[a], txt[b]
                if prc[a] < need_a:
                    x = f"({x})"
                if prc[b] < need_b:
                    y = f"({y})"
                text = fmt(x, y)
            elif k == 2:  # `g += c` / `g -= c`: the statement writes the second operand alone
                b = n.args[1]
                text = txt[b]
                if prc[b] < (0 if op is _ADD else ADD + 1):
                    text = f"({text})"
            elif k == 1:
                a = n.args[0]
                text = txt[a]
                if prc[a] < need_a:
                    text = f"({text})"
                text = fmt(text)
            elif op is CONST:
                v = n.attr
                # cached for nonzero ints and floats only (0.0 == -0.0; anything else: literal's error)
                key = (v.__class__, v) if v and (v.__class__ is float or v.__class__ is int) else None
                got = literals.get(key) if key else None
                if got is None:
                    got = backend.literal(v)
                    needs |= backend.literal_needs(got[0])
                    if key:
                        literals[key] = got
                text, prec = got
            else:
                text, prec = expression(n, operand, sched, helpers, needs)
        else:
            text, prec = expression(n, operand, sched, helpers, needs)
        txt[i], prc[i] = text, prec
        if section is None:  # a tuple (maybe with repeats): a set costs 4x the memory
            r = ()
            for a in n.args:
                r += (a,) if line[a] else refs[a]
            refs.append(r)  # refs[i]
        if not line[i]:
            continue
        name = txt[i] = names[i]
        prc[i] = NAMED
        rule = n.rule
        if plain_stmt:
            if rebind[i]:
                stmt = f"    {name} {'+=' if op is _ADD else '-='} {text}"
            else:
                stmt = f"    {name} = {text}"
            if rule is None:
                note = ""
                lines = [stmt]
            else:
                note = note_of(n, name_of, nodes)
                lines = _noted(stmt, note)
        else:
            forms = out_form(n, text, operand, sched)
            if forms is None:
                forms = [update(name, op, text) if rebind[i] else assign(name, text)]
            note = note_of(n, name_of, nodes) if forms and rule is not None else ""
            if len(forms) == 1:
                lines = _noted("    " + forms[0], note)
            elif not forms:
                lines = []
            else:  # a statement after the first carries the model line too: `# [moons.py:35]`
                tag = re.search(r"\[[^\[\]]*:\d+\]$", note)
                more = [f"    {f}" + (f"  # {tag.group()}" if tag else "") for f in forms[1:]]
                lines = ([f"    {note}"] if note else []) + ["    " + forms[0]] + more
        if keep_notes:
            notes[i] = note
        if rule is None:
            want = "forward"
        elif n.second is None:
            want = "backward"
        else:
            want = "tangents (forward mode)" if n.second == "jvp" else "second order"
        if section is None and want == "forward":  # the forward code, reordered at its end
            forward.append((i, lines))
            continue
        if section is None:
            _flush(body, forward, refs, returns, flat, mine=mine)
        if returns == "grad" and want != section:
            if flat:
                pending.append(f"    # {want}")
            else:
                body.append((None, [f"    # {want}"]))
        section = want
        if flat:
            pending += lines
            if len(pending) >= CHUNK:
                body.append("\n".join(pending))
                pending.clear()
        else:
            body.append((i, lines))
    if pending:
        body.append("\n".join(pending))
    if end == len(nodes):
        mine = Prefix(end, list(forward), refs, set(helpers), set(needs)) if section is None else None
    if section is None:
        _flush(body, forward, refs, returns, flat, always=True)
    return body, mine


def _flush(body: list, forward: list, refs: list, returns: str, flat: bool, always: bool = False, mine=None) -> None:
    """Append the forward statements, in source order (`in_source_order`), after a `# forward`
    comment in a gradient function (when there are any, or `always` at the end).  When they are
    exactly the `Prefix` `mine`'s statements, it keeps the order too (its value function's)."""
    if returns == "grad" and (forward or always):
        body.append("    # forward" if flat else (None, ["    # forward"]))
    ordered = in_source_order(forward, refs)
    if mine is not None and len(mine.statements) == len(forward):
        mine.ordered = ordered
    if flat:
        for _, lines in ordered:
            body += lines
    else:
        body += ordered
