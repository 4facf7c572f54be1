"""IR graphs: immutable nodes in a dense, topologically ordered list.

A `Node` is a small record: its op, ordered argument ids, an attribute (the
exponent of `pow`, the value of `const`) and metadata that never changes
what is computed but tells printers and emitters how to present it:

* `name`: a hint from the user (a `label`, or the variable it was bound to);
* `origin`: for inputs, where the value came from (`Origin`: argument or
  parameter array);
* `loc`: the model-file line that created the node;
* `adj`: for backward nodes, the forward node whose gradient (or partial
  gradient) this is -- printed as `g_<name>`;
* `rule`, `step`: the derivative rule that produced a backward node, and which
  application of it (nodes of one step form one line of emitted code).

Ids are dense and equal to positions; arguments always precede their users.
A `Graph` is nodes + input ids (in signature order) + outputs, each with a
`Role` (the function's value; the gradient of one input).  Passes
build new graphs through a `Builder`, so every graph is a value.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields, replace
from typing import Iterable

from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import infer

_CONST = Op.CONST  # a module constant: an enum member's attribute lookup costs ~0.15 us in a hot loop


@dataclass(frozen=True)
class Origin:
    """Where an input came from: an argument of the function or a parameter array of the model."""

    kind: str  # "arg" or "param"
    name: str


@dataclass(frozen=True)
class Loc:
    file: str
    line: int

    def short(self) -> str:
        base = self.file.replace("\\", "/").rsplit("/", 1)[-1]
        return f"{base}:{self.line}"


# Immutable by convention: every change builds a new Node (`dataclasses.replace`,
# `Builder.set_meta`).  Not `frozen=True`: a frozen dataclass's __init__ sets each of the
# 13 fields through object.__setattr__, ~4x slower than plain slot stores, and passes build
# millions of nodes.  Hashable (by value) as a frozen one would be.
@dataclass(slots=True, unsafe_hash=True)
class Node:
    id: int
    op: Op
    args: tuple[int, ...] = ()
    attr: float | int | None = None
    name: str | None = None
    origin: Origin | None = None
    loc: Loc | None = None
    adj: int | None = None
    rule: str | None = None
    step: int | None = None
    shape: tuple = ()  # see gradgen.ir.shapes; () for a scalar
    terms: tuple[int, ...] = ()  # backward: the forward nodes filling the rule comment's {a} {b} {x} {out}
    # second order (gradgen.autodiff.second): the pass a node belongs to -- "v" (hvp), an
    # input's name x (the hessian column d/dx) or "jvp" (forward-mode tangents); None: first order
    second: str | None = None


META_FIELDS = ("name", "origin", "loc", "adj", "rule", "step", "terms", "second")


@dataclass(frozen=True)
class Role:
    """What one output of a graph is: `Role("value")`, or `Role("grad", "x1")`, the
    gradient of the input named x1 (later kinds: "update", "hvp").

    `str(role)` is its text form, `value` or `grad:x1`, used by the IR printer and
    as the key of `gradgen.ir.interp.evaluate`'s results.
    """

    kind: str
    of: str | None = None  # the input it belongs to

    def __str__(self) -> str:
        return self.kind if self.of is None else f"{self.kind}:{self.of}"


VALUE = Role("value")


def grad_of(name: str) -> Role:
    return Role("grad", name)


def as_role(role: "Role | str") -> Role:
    """A `Role`, from itself or its text form."""
    if isinstance(role, Role):
        return role
    kind, _, of = role.partition(":")
    return Role(kind, of or None)


@dataclass(frozen=True)
class Graph:
    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[int, ...]
    outputs: tuple[tuple[Role, int], ...]  # (role, node id)

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    def output(self, role: "Role | str") -> int:
        """The node id of the output with this role (a `Role` or its text, "grad:x")."""
        for r, i in self.outputs:
            if r == role or str(r) == role:
                return i
        raise KeyError(str(role))

    def grads(self) -> list[tuple[Role, int]]:
        """The gradient outputs, in order."""
        return [(r, i) for r, i in self.outputs if r.kind == "grad"]

    def users(self) -> list[list[int]]:
        """users()[i]: ids of nodes that take node i as an argument (with repeats)."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for n in self.nodes:
            for a in n.args:
                out[a].append(n.id)
        return out

    def counts(self) -> dict[str, int]:
        """Node counts by op, for `--report`."""
        c: dict[str, int] = {}
        for n in self.nodes:
            c[n.op.value] = c.get(n.op.value, 0) + 1
        return dict(sorted(c.items()))


class Builder:
    """Appends nodes with dense ids; `build()` freezes them into a `Graph`."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[Node] = []
        self._consts: dict[str, int] = {}

    def add(self, op: Op, args: Iterable[int] = (), attr=None, shape: tuple | None = None, **meta) -> int:
        """Append a node; its shape is inferred from its arguments unless given (inputs)."""
        if type(args) is not tuple:
            args = tuple(args)
        arity, elementwise = _ARITY[op]
        if len(args) != arity and arity >= 0:
            raise ValueError(f"{op} takes {arity} arguments, got {len(args)}")
        nodes = self.nodes
        if shape is None:
            if elementwise:
                shape = ()
                for a in args:
                    if nodes[a].shape:  # broadcast: the shape rule decides
                        shape = infer(op, [nodes[a].shape for a in args], attr)
                        break
            else:
                shape = infer(op, [nodes[a].shape for a in args], attr)
        nid = len(nodes)
        if not meta:
            node = Node(nid, op, args, attr, None, None, None, None, None, None, shape, (), None)
        elif len(meta) == 1 and "loc" in meta:  # the tracer's call: `add(op, ids, attr, loc=loc)`
            node = Node(nid, op, args, attr, None, None, meta["loc"], None, None, None, shape, (), None)
        elif meta.keys() <= _META_SET:  # positionally (several times faster than keywords)
            g = meta.get
            node = Node(nid, op, args, attr, g("name"), g("origin"), g("loc"), g("adj"), g("rule"), g("step"), shape, g("terms", ()), g("second"))
        else:
            node = Node(nid, op, args, attr, **meta, shape=shape)  # raises for an unknown field
        nodes.append(node)
        return nid

    def add_tagged(self, op: Op, args: tuple, attr, loc, rule, step, terms=(), second=None, adj=None) -> int:
        """`add(op, args, attr, loc=loc, rule=rule, step=step, terms=terms, second=second, adj=adj)`
        without keywords: reverse mode's hot path (an elementwise op on scalars skips the shape rule)."""
        arity, elementwise = _ARITY[op]
        nodes = self.nodes
        if elementwise and len(args) == arity:
            for a in args:
                if nodes[a].shape:
                    break
            else:
                nid = len(nodes)
                nodes.append(Node(nid, op, args, attr, None, None, loc, adj, rule, step, (), terms, second))
                return nid
        return self.add(op, args, attr, loc=loc, rule=rule, step=step, terms=terms, second=second, adj=adj)

    def shape(self, nid: int) -> tuple:
        return self.nodes[nid].shape

    def const(self, value: float, **meta) -> int:
        """A constant node; plain constants (no metadata) are shared by value."""
        value = value if type(value) in (int, float) else float(value)  # never a subclass: it is printed
        meta.pop("shape", None)
        if meta:
            return self.add(Op.CONST, (), value, **meta)
        key = repr(float(value))  # keeps 0.0 and -0.0 apart; all NaNs alike
        if key not in self._consts:
            self._consts[key] = self.add(Op.CONST, (), float(value))
        return self._consts[key]

    def set_meta(self, nid: int, **meta) -> None:
        self.nodes[nid] = _replace(self.nodes[nid], meta)

    def label(self, nid: int, rule: str, terms: tuple | None = None, adj: int | None = None) -> None:
        """`set_meta(nid, rule=rule)`, with `terms` and `adj` where given: reverse mode's hot path."""
        n = self.nodes[nid]
        self.nodes[nid] = Node(
            n.id, n.op, n.args, n.attr, n.name, n.origin, n.loc, n.adj if adj is None else adj, rule, n.step,
            n.shape, n.terms if terms is None else terms, n.second,
        )  # fmt: skip

    def copy_node(self, node: Node, args: Iterable[int], adj: int | None) -> int:
        """Append a copy of `node` (from another graph) with remapped args and `adj`.

        A node that keeps its id, arguments and adjoint is appended as itself (nodes are
        immutable), so a pass that changes nothing builds a graph of the same objects
        (`unchanged`).
        """
        if node.op is _CONST and not _has_meta(node):
            nid = len(self.nodes)
            if nid == node.id and type(node.attr) is float and node.shape == ():
                key = repr(node.attr)
                if key not in self._consts:
                    self._consts[key] = nid
                    self.nodes.append(node)
                    return nid
            return self.const(node.attr)
        args = tuple(args)
        nid = len(self.nodes)
        if nid == node.id and args == node.args and adj == node.adj:
            self.nodes.append(node)
            return nid
        # the fields in declaration order (positional: much faster than keywords)
        self.nodes.append(
            Node(nid, node.op, args, node.attr, node.name, node.origin, node.loc, adj, node.rule, node.step, node.shape, node.terms, node.second)
        )
        return nid

    def unchanged(self, graph: Graph) -> bool:
        """The nodes built so far are `graph`'s own, one for one (a pass changed nothing)."""
        nodes = graph.nodes
        return len(self.nodes) == len(nodes) and all(map(operator.is_, self.nodes, nodes))

    def build(self, inputs: Iterable[int], outputs: Iterable[tuple["Role | str", int]]) -> Graph:
        """The graph; a role may be given as its text ("value", "grad:x")."""
        return Graph(self.name, tuple(self.nodes), tuple(inputs), tuple((as_role(r), i) for r, i in outputs))


def _replace(n: Node, changes: dict) -> Node:
    """`dataclasses.replace(n, **changes)` for metadata fields, positionally (several times faster)."""
    if not changes.keys() <= _META_SET:
        return replace(n, **changes)
    g = changes.get
    return Node(
        n.id, n.op, n.args, n.attr, g("name", n.name), g("origin", n.origin), g("loc", n.loc),
        g("adj", n.adj), g("rule", n.rule), g("step", n.step), n.shape, g("terms", n.terms),
        g("second", n.second),
    )  # fmt: skip


_META_SET = frozenset(META_FIELDS)
_ARITY = {op: (info.arity, info.elementwise) for op, info in OPS.items()}  # read per node by Builder.add


def _meta(node: Node) -> dict:
    return {f: getattr(node, f) for f in META_FIELDS}


def _has_meta(node: Node) -> bool:
    for v in (node.name, node.origin, node.loc, node.adj, node.rule, node.step, node.terms, node.second):
        if v is not None and v != ():
            return True
    return False


def rebuild(graph: Graph, keep: Iterable[bool] | None = None, replace_with: dict[int, int] | None = None) -> Graph:
    """Copy `graph`, dropping nodes where `keep` is False, redirecting uses per `replace_with`.

    `replace_with[i] = j` (j < i) makes every use of node i a use of node j.
    Ids are renumbered densely; `adj` references to dropped nodes become None.
    """
    nodes = graph.nodes
    keep = list(keep) if keep is not None else [True] * len(nodes)
    replace_with = replace_with or {}
    b = Builder(graph.name)
    new: list = [None] * len(nodes)  # old id -> new id (None: dropped)

    def follow(i: int) -> int:
        while i in replace_with:
            i = replace_with[i]
        return i

    for n in nodes:
        i = n.id
        if not keep[i] or (replace_with and i in replace_with):
            continue
        if replace_with:
            args = [new[follow(a)] for a in n.args]
            adj = new[follow(n.adj)] if n.adj is not None else None
        else:
            args = [new[a] for a in n.args]
            adj = new[n.adj] if n.adj is not None else None
        if adj is None and n.adj is not None and n.name is None:
            # the forward value was removed: keep the adjoint's name as a hint
            fwd = nodes[n.adj]
            n = replace(n, name="g_" + (fwd.name or fwd.op.value))
        if n.terms:  # renumbered; a comment whose terms are gone falls back to letters
            terms = tuple([new[follow(t)] for t in n.terms] if replace_with else [new[t] for t in n.terms])
            terms = () if None in terms else terms
            if terms != n.terms:
                n = _replace(n, {"terms": terms})
        new[i] = b.copy_node(n, args, adj)
    if b.unchanged(graph):
        return graph
    return b.build([new[i] for i in graph.inputs], [(r, new[follow(i)]) for r, i in graph.outputs])


# copy_node and _replace build Nodes positionally (speed): a field added to Node must be added there too
assert tuple(f.name for f in fields(Node)) == (
    "id", "op", "args", "attr", "name", "origin", "loc", "adj", "rule", "step", "shape", "terms", "second",
), "Node's fields changed: update Builder.copy_node and _replace in gradgen/ir/graph.py"  # fmt: skip
