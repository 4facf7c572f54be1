"""Reverse mode as an IR transform: forward graph -> forward + backward graph.

Walk the forward nodes from the output back to the inputs.  For each node
whose adjoint is known, apply its row of `rules.RULES` to build the
contributions to its arguments' adjoints, as IR.  A value used more than
once gets an explicit `add` per extra use (emitted as `g_x += ...`).  Every
backward node records which forward node's adjoint it is (`adj`), the rule
that produced it, the model line it differentiates, and its step (one rule
application = one emitted line).  Gradients of inputs the output does not
depend on are the constant 0.0.

Arrays: a contribution is summed down to its argument's shape where the
forward op broadcast the argument (`b0` added to every row of `X @ W0.T`
gets `g_z0.sum(axis=0)`); a gradient may stay smaller than its value while
it only feeds elementwise rules (the mean's `1 / B` is not materialised),
and is broadcast to full shape before a rule that needs it and at the
outputs.  The pieces of one array read with `elem` go back in one `pack`
(not one scatter per element).

The result still contains every forward node; DCE, CSE and folding (in
`gradgen.passes`) clean it up like any other graph.
"""

from __future__ import annotations

import operator

from gradgen.ir.graph import VALUE, Builder, Graph, Node, Role, grad_of, rebuild
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched, inner, size
from gradgen.ir.ops import RULES

SEED = "seed: d(out)/d(out) = 1"
# module constants (an enum member's attribute lookup costs ~0.15 us in a hot loop)
INPUT, CONST, BATCH, ELEM, MATMUL, TRANSPOSE, SUM = Op.INPUT, Op.CONST, Op.BATCH, Op.ELEM, Op.MATMUL, Op.TRANSPOSE, Op.SUM
COPY, ADD, SUB, MUL, DIV, NEG, POW, STEP = Op.COPY, Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.NEG, Op.POW, Op.STEP
EXPAND, BCAST, PACK = Op.EXPAND, Op.BCAST, Op.PACK
_CONST = CONST
_ELEMENTWISE = frozenset(op for op, info in OPS.items() if info.elementwise)
_SCALAR_ARITY = {op: info.arity for op, info in OPS.items() if info.elementwise}  # (_Emitter.scalar)
_SHAPE = operator.attrgetter("shape")
_TAG_FIELDS = frozenset(("rule", "loc", "step", "terms", "second"))
FANOUT = "fan-out: a value used twice sums its gradients"


class _Emitter:
    """Builds backward nodes, all tagged with one step's rule and location."""

    def __init__(self, b: Builder, scalar: bool = False):
        self.b = b
        self._tags = (None, None, None, (), None)  # loc, rule, step, terms, second of the nodes built
        self._extra: dict | None = None  # a meta with other fields (then every node takes the slow path)
        self.seed: int | None = None  # the seed 1.0 while the output's rule runs (see mul)
        # while the seed is live: it and the constants 1.0 made from it as adjoints (accumulate),
        # each 1.0 to a product (see mul); `first`: the first node of the step being built
        self.ones: set[int] = set()
        self.first = 0
        # every node of the graph is a scalar (so is every node a rule builds from them): an
        # elementwise node is built directly, without Builder.add_tagged's shape tests
        self.scalar = scalar
        self._consts: dict[float, int] = {}  # value -> its constant node (see const)

    def tag(self, rule, loc, step, terms=(), second=None) -> None:
        """Tag the nodes built from now on (what `e.meta = dict(...)` does, without the dict)."""
        self._tags = (loc, rule, step, terms, second)
        self._extra = None

    @property
    def meta(self) -> dict:
        if self._extra is not None:
            return self._extra
        loc, rule, step, terms, second = self._tags
        return dict(rule=rule, loc=loc, step=step, terms=terms, second=second)

    @meta.setter
    def meta(self, m: dict) -> None:
        if m.keys() <= _TAG_FIELDS:
            self.tag(m.get("rule"), m.get("loc"), m.get("step"), m.get("terms", ()), m.get("second"))
        else:
            self._extra = dict(m)

    def _add(self, op: Op, *args, attr=None) -> int:
        if self._extra is not None:
            return self.b.add(op, args, attr, **self._extra)
        if self.scalar and _SCALAR_ARITY.get(op) == len(args):
            nodes = self.b.nodes
            nid = len(nodes)
            loc, rule, step, terms, second = self._tags
            nodes.append(Node(nid, op, args, attr, None, None, loc, None, rule, step, (), terms, second))
            return nid
        return self.b.add_tagged(op, args, attr, *self._tags)

    def const(self, v):
        hit = self._consts.get(v)
        if hit is not None:
            return hit
        nid = self.b.const(v)
        if type(v) is float and v != 0.0 and v == v and self.seed is None:
            # by value: safe where equal floats print alike (not 0.0 / -0.0, never NaN), and
            # once the seed is gone (_drop_seed renumbers the constants before it)
            self._consts[v] = nid
        return nid

    def add(self, x, y):
        return self._add(ADD, x, y)

    def sub(self, x, y):
        return self._add(SUB, x, y)

    def mul(self, x, y):
        ones = self.ones
        if ones and (x in ones or y in ones) and x != y:
            # `1.0 * t` with the seed (or a 1.0 made from it): t itself, as folding would make it
            # (fold's `1 * x -> x` moves the product's metadata onto t, or names a forward t with
            # a copy, which is what `accumulate` does to t); built directly, the seed and its ones
            # usually stay unused and are taken out again (_drop_seed) before the graph grows
            t = y if x in ones else x
            n = self.b.nodes[t]
            if n.op is not _CONST and (t >= self.first or n.rule is None):
                return t
        return self._add(MUL, x, y)

    def div(self, x, y):
        return self._add(DIV, x, y)

    def neg(self, x):
        return self._add(NEG, x)

    def pow(self, x, k):
        return self._add(POW, x, attr=k)

    def step(self, x):
        return self._add(STEP, x)


    # -- arrays ---------------------------------------------------------------------
    def shape(self, x) -> tuple:
        return self.b.nodes[x].shape

    def matmul(self, x, y):
        return self._add(MATMUL, x, y)

    def transpose(self, x):
        return self._add(TRANSPOSE, x)

    def expand(self, x, axes):
        return self._add(EXPAND, x, attr=tuple(axes))

    def sum(self, x, axes):
        return self._add(SUM, x, attr=tuple(axes))

    def bcast(self, x, shape):
        return self._add(BCAST, x, attr=tuple(shape))

    def elem(self, x, index):
        return self._add(ELEM, x, attr=tuple(index))

    def place(self, array, pieces) -> int:
        """An array shaped like `array`, zero except `pieces` [(index, value)]: `elem`'s inverse."""
        sx = self.shape(array)
        lead = 1 if batched(sx) else 0
        pieces = [(i, self.exact(g, sx[:lead] + inner(sx)[len(i) :])) for i, g in pieces]
        if len(pieces) == 1 and size(self.shape(pieces[0][1])) == size(sx):
            index, g = pieces[0]  # one piece fills it: only size-1 axes to insert
            return self.expand(g, range(lead, lead + len(index)))
        ordered = sorted(pieces)
        args = [g for _, g in ordered]
        layout = (bool(lead), inner(sx), tuple(tuple(i) for i, _ in ordered))
        return self.b.add(PACK, args, layout, **self.meta)

    def exact(self, x, shape):
        """`x` broadcast to exactly `shape` (a no-op when it has it)."""
        return x if self.shape(x) == tuple(shape) else self.bcast(x, shape)

    def sum_to(self, x, shape, logical=None):
        """Sum `x` over the axes along which a value of `shape` was broadcast to `logical`.

        `x` may be smaller than `logical` (a gradient not yet materialised,
        standing for its broadcast); if an axis to be summed is one `x` lacks,
        `x` is materialised first, so each broadcast copy is counted.
        """
        sx = self.shape(x)
        logical = tuple(logical if logical is not None else sx)
        if sx == tuple(shape) == logical:
            return x
        lead_l = len(logical) - len(shape)
        reduce = list(range(max(lead_l, 0))) + [
            lead_l + k for k, d in enumerate(shape) if d == 1 and lead_l + k >= 0 and logical[lead_l + k] != 1
        ]
        off = len(logical) - len(sx)
        if any(logical[ax] != 1 and (ax - off < 0 or sx[ax - off] == 1) for ax in reduce):
            x, sx = self.bcast(x, logical), logical
        if sx == tuple(shape):
            return x
        lead = len(sx) - len(shape)
        if lead < 0:
            return x  # smaller: still broadcasts to `shape`
        kept = [k for k, d in enumerate(shape) if d == 1 and sx[lead + k] != 1]
        axes = tuple(range(lead)) + tuple(lead + k for k in kept)
        if not axes:
            return x
        x = self.sum(x, axes)
        return self.expand(x, kept) if kept else x


def _op_method(op: Op):
    def method(self, *args, attr=None):
        return self._add(op, *args, attr=attr)

    method.__name__ = op.value
    return method


for _op in Op:  # any other op of the registry: e.<op>(x, ...)
    if not hasattr(_Emitter, _op.value):
        setattr(_Emitter, _op.value, _op_method(_op))


def _label_step_nodes(b: Builder, root: int, first: int, comment: str) -> None:
    """Give the nodes this step built for one contribution (ids >= first) that argument's comment."""
    nodes = b.nodes
    stack = [root]
    while stack:
        i = stack.pop()
        if i >= first and nodes[i].rule != comment:
            nodes[i].rule = comment  # in place: a node this step built (see `grad`)
            stack.extend(nodes[i].args)


LAYER = ("matmul: d({a} @ {b}.T)/d{a} = g @ {b}", "matmul: d({a} @ {b}.T)/d({b}.T) = {a}.T @ g")
# x * x (and x - x, x / x): one line for both partials, with x's name
SAME_ARG = {Op.MUL: "mul: d({a} * {a})/d{a} = 2 * {a}"}
SAME_ARGS = "{op}: both arguments are {a}: the two partials add up"
ELEM_GATHER = "elem: the gradients of {x}'s read elements, back in place"


def grad(fwd: Graph, output: Role = VALUE, wrt=None) -> Graph:
    """The graph of `fwd`'s output and its gradient with respect to inputs.

    Outputs: (VALUE, out), then (grad_of(<arg>), g) for each input in order
    (or for the input ids in `wrt`), each with its input's shape.

    The nodes with ids from len(fwd) on are made here and held by no graph until `build`, so
    they are relabelled in place (a step's comment, an adjoint's `adj`): nodes are immutable
    once in a graph, and a new Node per relabelling was a third of reverse mode's time.
    """
    b = Builder(fwd.name + "_grad")
    b.nodes.extend(fwd.nodes)  # forward part, verbatim (same ids)
    for n in fwd.nodes:
        if n.op is CONST and n.name is None and n.adj is None:
            b._consts.setdefault(repr(float(n.attr)), n.id)
    out = fwd.output(output)
    scalar = not any(map(_SHAPE, fwd.nodes))  # a graph of floats: no shape to test or sum
    e = _Emitter(b, scalar)
    seed = b.const(1.0, adj=out, rule=SEED, step=0)
    adjoint: dict[int, int] = {out: seed}
    e.seed = seed
    e.ones = {seed}
    pending: dict[int, list] = {}  # array id -> [(index, adjoint of elem node)]
    read_at: dict = {}  # array id -> the model line of a read of it (for the gather's line)
    users: list = []  # fwd.users(), computed when first needed
    step = 0

    fnodes, nodes = fwd.nodes, b.nodes
    n_fwd = len(fnodes)
    tagged = b.add_tagged

    def new(op: Op, args: tuple, loc, comment: str, terms: tuple, adj) -> int:
        """A node of this step: `tagged(...)`, built directly in a graph of floats."""
        if scalar:
            nid = len(nodes)
            nodes.append(Node(nid, op, args, None, None, None, loc, adj, comment, step, (), terms, None))
            return nid
        return tagged(op, args, None, loc, comment, step, terms, adj=adj)

    def accumulate(a: int, c: int, comment: str, loc, terms=()) -> None:
        n = nodes[c]
        prev = adjoint.get(a)
        if c < n_fwd or n.adj is not None or n.step != step:
            # passed through unchanged (add's rule): give the adjoint its own node (built with
            # the comment, and as the adjoint itself when it is the first contribution)
            if prev is None:
                if c in e.ones:
                    # the seed passed through (add's rule): a named copy of a constant is that
                    # constant, as folding would make it (fold's COPY rule), built directly
                    adjoint[a] = b.const(n.attr, name=None, loc=loc, adj=a, rule=comment, step=step, second=None, terms=terms)
                    e.ones.add(adjoint[a])
                    return
                adjoint[a] = new(COPY, (c,), loc, comment, terms, a)
                return
            c = new(COPY, (c,), loc, comment, terms, None)
        elif prev is None:
            n.rule, n.terms, n.adj = comment, terms, a  # in place: a node of this step (see above)
            adjoint[a] = c
            return
        elif n.rule != comment or n.terms != terms:
            n.rule, n.terms = comment, terms
        if scalar:  # new(ADD, ...), inlined: one in two contributions ends here
            nid = len(nodes)
            nodes.append(Node(nid, ADD, (prev, c), None, None, None, loc, a, comment, step, (), terms, None))
            adjoint[a] = nid
        else:
            adjoint[a] = new(ADD, (prev, c), loc, comment, terms, a)

    for node in reversed(fnodes[: out + 1]):
        nid = node.id
        if e.seed is not None and nid != out and adjoint.get(nid) not in e.ones:
            # the output's rule has run, and those of the nodes whose adjoint is a 1.0 from it
            e.seed = None
            _drop_seed(b, seed, out, adjoint, pending, e.ones, nid)
            e.ones = set()
        if pending and nid in pending:
            step += 1
            loc = read_at.pop(nid)
            e.meta = dict(rule=ELEM_GATHER, loc=loc, step=step, terms=(nid, nid))
            pieces = _merge(e, pending.pop(nid))
            accumulate(nid, e.place(nid, pieces), ELEM_GATHER, loc, (nid, nid))
        g = adjoint.get(nid)
        if g is None:
            continue
        op = node.op
        if op is INPUT or op is CONST or op is BATCH:
            continue
        if op is ELEM:
            pending.setdefault(node.args[0], []).append((node.attr, g))
            if read_at.get(node.args[0]) is None:  # the gather names the first model line reading it
                read_at[node.args[0]] = node.loc if node.loc is not None else _first_loc(fwd, nid, users)
            continue
        r = RULES[op]
        step += 1
        args, loc = node.args, node.loc
        terms, rule_comments = (*args, nid), r.comments
        if op is MATMUL and fnodes[args[1]].op is TRANSPOSE:
            # z = x @ W.T (a layer): the comment names W, not W.T
            terms = (args[0], fnodes[args[1]].args[0], nid)
            rule_comments = LAYER
        e._tags, e._extra = (loc, rule_comments[0], step, terms, None), None  # e.tag(...), inlined
        if g in e.ones and g != seed and (len(set(args)) < len(args) or any(a in adjoint for a in args)):
            # a 1.0 from the seed stands for t in `1.0 * t` only where each product is its
            # argument's first contribution (folding would then name it as accumulate does)
            e.ones.discard(g)
        first = e.first = len(nodes)
        if scalar:
            contribs = r.fn(e, *args, out=nid, g=g, k=node.attr)
        else:
            last = len(rule_comments) - 1
            elementwise = op in _ELEMENTWISE
            if not elementwise and op is not SUM:
                g = e.exact(g, node.shape)  # (sum's rule takes a scalar gradient as it is)
            first = e.first = len(nodes)
            contribs = r.fn(e, *args, out=nid, g=g, k=node.attr)
            for i, (a, c) in enumerate(zip(args, contribs)):
                if c is None or fnodes[a].op is CONST:
                    continue
                shape = fnodes[a].shape
                if not shape and not nodes[c].shape and (not elementwise or not node.shape):
                    continue  # all scalars: nothing to sum (sum_to would return c)
                comment = rule_comments[min(i, last)]
                e.tag(comment, loc, step, terms)
                contribs = list(contribs)
                contribs[i] = e.sum_to(c, shape, node.shape if elementwise else None)
        comments = rule_comments
        if len(args) == 2 and args[0] == args[1] and None not in contribs:
            # x * x: both contributions go to x; add them first (one accumulation, 2 * g * x)
            comments = (SAME_ARG.get(op, SAME_ARGS).replace("{op}", op.value),)
            e.meta = dict(rule=comments[0], loc=loc, step=step, terms=terms)
            contribs = [e.add(contribs[0], contribs[1]), None]
        relabel = len(comments) > 1 or comments is not rule_comments
        if len(comments) < len(args):  # one comment for all the arguments (pack, x * x)
            comments = comments + (comments[-1],) * (len(args) - len(comments))
        if relabel:
            for c, comment in zip(contribs, comments):
                # (a contribution this step did not build, or whose last node has its comment
                # already, has nothing to relabel; its root is relabelled here: often the only one)
                if c is not None and c >= first and nodes[c].rule != comment:
                    n = nodes[c]
                    n.rule = comment
                    for x in n.args:
                        if x >= first:
                            _label_step_nodes(b, x, first, comment)
        for a, c, comment in zip(args, contribs, comments):
            if c is None or fnodes[a].op is CONST:
                continue
            accumulate(a, c, comment, loc, terms)
    if e.seed is not None:
        e.seed = None
        _drop_seed(b, seed, out, adjoint, pending, e.ones)
        e.ones = set()
    outputs = [(VALUE, out)]
    for i in fwd.inputs if wrt is None else wrt:
        shape = fwd.nodes[i].shape
        g = adjoint[i] if i in adjoint else b.const(0.0)  # (no 0.0 node unless one is needed)
        if b.nodes[g].shape != shape:
            n = b.nodes[g]
            e.meta = dict(rule="bcast: the gradient has its input's shape", loc=n.loc, step=step + 1)
            g = e.bcast(g, shape)
            if n.adj == i:
                b.set_meta(g, adj=i)
        outputs.append((grad_of(fwd.nodes[i].name), g))
    return b.build(fwd.inputs, outputs)


def _drop_seed(b: Builder, seed: int, out: int, adjoint: dict, pending: dict, ones: set, nid: int = -1) -> None:
    """Take the seed node, and the 1.0s made from it (`accumulate`), out when nothing uses them
    (their products were built as the other factor, `_Emitter.mul`), renumbering the few nodes
    built after the seed: what folding and dead-code elimination would do, without rebuilding
    the whole gradient graph.  `nid`: the forward node about to be processed (rules of the
    nodes after it have run, so their adjoints are read by nothing more)."""
    nodes = b.nodes
    if nodes[out].op in (INPUT, CONST, BATCH, ELEM):
        return  # no rule ran: the seed is the output's gradient as it is
    later = nodes[seed + 1 :]
    used = {a for n in later for a in n.args}
    for k, v in adjoint.items():
        if v in ones and (k <= nid or nodes[k].op in (INPUT, CONST, BATCH)):
            used.add(v)  # still to be read: by a rule to come, or as an input's gradient
    used.update(g for pieces in pending.values() for _, g in pieces)
    drop = sorted(i for i in ones if i not in used)
    if not drop or drop[0] != seed:
        return  # the seed itself is used: it stays, with the ones (folding takes them out)
    gone = set(drop)
    for k in [k for k, v in adjoint.items() if v in gone]:
        del adjoint[k]  # entries of nodes whose rule ran (the output's among them)
    new = {}
    kept = [n for n in nodes[seed:] if n.id not in gone]
    for i, n in enumerate(kept):
        new[n.id] = seed + i

    def down(i):
        return new.get(i, i) if i is not None and i > seed else i

    del nodes[seed:]
    for n in kept:
        nodes.append(
            Node(new[n.id], n.op, tuple(down(a) for a in n.args), n.attr, n.name, n.origin, n.loc, down(n.adj),
                 n.rule, n.step, n.shape, tuple(down(t) for t in n.terms), n.second)
        )  # fmt: skip
    for k, v in adjoint.items():
        adjoint[k] = down(v)
    for pieces in pending.values():
        pieces[:] = [(index, down(g)) for index, g in pieces]
    for k, v in b._consts.items():
        b._consts[k] = down(v)


def _first_loc(fwd: Graph, i: int, users: list):
    """The model line of the first user of node `i` that has one (an `elem` read has none of
    its own: the line using it is where the model read the array), or None."""
    if not users:
        users.extend(fwd.users())  # once per graph
    for u in users[i]:
        if fwd.nodes[u].loc is not None:
            return fwd.nodes[u].loc
    return None


def _merge(e: _Emitter, pieces: list) -> list:
    """Pieces at the same index add up (two reads of one element)."""
    out: dict[tuple, int] = {}
    for index, g in pieces:
        index = tuple(index)
        out[index] = e.add(out[index], g) if index in out else g
    return list(out.items())


__all__ = ["grad", "rebuild"]
