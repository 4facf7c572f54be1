"""Scheduling: which IR nodes get a line of emitted code, their names, and in-place updates.

The same for every backend; a backend only supplies the facts it is parameterised by
(`Backend.estimate`, `Backend.inplace_ok`, `Backend.reserved`).

* A node gets a line when it has a name (a user label or variable, or an adjoint `g_x`),
  is used more than once, is an output, or is too long to inline (`INLINE_LIMIT`).
  Otherwise it is inlined into its one user if that user belongs to the same line group:
  the forward code, or one backward step (one rule application).  So the forward reads
  like the model source and the backward has one adjoint step per line.
* Inputs are parameters; plain constants are literals; `batch` is the prologue's `B`.
* An accumulation `g_x_1 = g_x + c` whose previous partial is used nowhere else becomes
  `g_x += c` (`rebind`), when the backend may update that partial in place: an array is
  updated in place only when it is a fresh result of the same shape.
* Names come from `gradgen.names.assign_names` (the one namespace), for the nodes that
  get a line and the inputs; a rebound accumulation keeps its partial's name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from itertools import chain
from operator import attrgetter

from gradgen.ir.graph import VALUE, Graph, Node
from gradgen.ir.ops import Op
from gradgen.names import assign_names, sanitize

INLINE_LIMIT = 56  # longest expression inlined into its user
_ARGS, _ADJ, _TERMS = attrgetter("args"), attrgetter("adj"), attrgetter("terms")


@dataclass
class Schedule:
    graph: Graph
    line: list[bool]  # the node is computed by its own statement
    rebind: list[bool]  # ... and that statement is `name += e` / `name -= e` on its partial
    names: list[str | None]  # the emitted name of each node with a line, and of every input
    uses: list[int]
    cut: int | None = None  # forward_part: the graph is the first `cut` nodes of the one it was cut from
    array: bool | None = None  # whether the graph is an array graph, once known (base.is_array_graph)

    def named(self, i: int) -> bool:
        """Whether node i is referred to by its name (rather than its expression)."""
        return self.line[i] or self.graph.nodes[i].op is Op.INPUT


def schedule(graph: Graph, backend, reserved=(), like=None) -> Schedule:
    """The schedule of `graph` for `backend` (see the module docstring).

    `like`: the backend whose spellings' lengths decide inlining (default `backend`), so
    that a backend can lay out its code line for line like another (torch like NumPy).
    """
    like = like or backend
    nodes = graph.nodes
    uses = [0] * len(nodes)
    user: list[int | None] = [None] * len(nodes)
    for n in nodes:
        i = n.id
        for a in n.args:
            uses[a] += 1
            user[a] = i
    for _, i in graph.outputs:
        uses[i] += 2  # an output always gets a name

    # 1. which nodes get a line (estimates lengths with hints; names come after), and
    # 2. `g_x += c` / `g_x -= c`: an accumulation whose previous partial is used nowhere else.
    # One sweep (both depend only on the node and earlier ones), its body inlined: it runs
    # once per node of graphs with millions.
    line = [False] * len(nodes)
    rebind = [False] * len(nodes)
    rebound: list[int] = []  # the ids with rebind set
    est: list[int] = [0] * len(nodes)
    cost: dict = {}  # op -> like.estimate(op)
    op_len: dict = {}  # op -> the length of its sanitised name (an unnamed node's name hint)
    name_len: dict = {}  # a node's name -> the length of its sanitised form
    literal_len: dict = {}  # (type, value) -> the length of its literal, nonzero constants (0.0 == -0.0)
    INPUT, CONST, BATCH, COPY, ADD, SUB = Op.INPUT, Op.CONST, Op.BATCH, Op.COPY, Op.ADD, Op.SUB
    inplace_ok = backend.inplace_ok
    for n in nodes:
        i, op, adj, name = n.id, n.op, n.adj, n.name
        if op is INPUT:
            est[i] = len(name or "x")
            continue
        if op is CONST and adj is None and name is None:
            v = n.attr
            # cached for nonzero ints and floats only (0.0 == -0.0; anything else: literal's error)
            key = (v.__class__, v) if v and (v.__class__ is float or v.__class__ is int) else None
            k = literal_len.get(key) if key else None
            if k is None:
                k = len(like.literal(v)[0])
                if key:
                    literal_len[key] = k
            est[i] = k
            continue
        if op is BATCH:  # the prologue's `B`
            est[i] = 1
            continue
        if op is COPY and adj is not None and not line[adj] and nodes[adj].op is not INPUT:
            # the adjoint of a forward value the code never names: just an alias (a copy
            # is never updated in place, and neither is what it copies while the copy is read)
            est[i] = est[n.args[0]]
            continue
        size = cost.get(op)
        if size is None:
            size = cost[op] = like.estimate(op)
        for a in n.args:
            size += est[a]
        # inlined only into its one user, and only within one line group: the forward
        # code, or one backward step (a rule's nodes share their `step`)
        if name is not None or adj is not None or op is CONST or uses[i] != 1 or size > INLINE_LIMIT:
            line[i] = True
            if name is not None:
                k = name_len.get(name)
                if k is None:
                    k = name_len[name] = len(sanitize(name)) + 4
                est[i] = k
            else:
                k = op_len.get(op)
                if k is None:
                    k = op_len[op] = len(sanitize(op.value)) + 4
                est[i] = k
            if (op is ADD or op is SUB) and adj is not None:
                p = nodes[n.args[0]]
                if p.adj == adj and line[p.id] and uses[p.id] == 1 and n.args[1] != p.id:
                    # arrays: only a fresh result of the same shape may be updated in place
                    if p.op in inplace_ok and p.shape == n.shape:
                        rebind[i] = True
                        rebound.append(i)
            continue
        u = nodes[user[i]]
        rule = n.rule
        if (u.rule is None) != (rule is None) or (rule is not None and u.step != n.step):
            line[i] = True
            k = op_len.get(op)
            if k is None:
                k = op_len[op] = len(sanitize(op.value)) + 4
            est[i] = k
        else:
            est[i] = size

    # 3. names, through the one namespace
    wanted = line.copy()
    for i in rebound:
        wanted[i] = False
    for i in graph.inputs:
        wanted[i] = True
    names = assign_names(graph, reserved=set(reserved) | backend.reserved, wanted=wanted)
    for i in rebound:
        names[i] = names[nodes[i].args[0]]
    return Schedule(graph, line, rebind, names, uses)


if tuple(f.name for f in fields(Node)) == (
    "id", "op", "args", "attr", "name", "origin", "loc", "adj", "rule", "step", "shape", "terms", "second"
):  # fmt: skip

    def _moved(n: Node, i: int, args: tuple, adj, terms: tuple) -> Node:
        """`replace(n, id=i, args=args, adj=adj, terms=terms)`, built positionally (several times faster)."""
        return Node(i, n.op, args, n.attr, n.name, n.origin, n.loc, adj, n.rule, n.step, n.shape, terms, n.second)

else:  # Node has changed: the general form

    def _moved(n: Node, i: int, args: tuple, adj, terms: tuple) -> Node:
        return replace(n, id=i, args=args, adj=adj, terms=terms)


def forward_part(sched: Schedule) -> Schedule:
    """The schedule of the value alone, cut from a gradient function's schedule: the nodes the
    value needs (and every input), with the same lines and names, so `f` and `f_grad` write
    the forward alike (minus what only the backward needs)."""
    g = sched.graph
    value = g.output(VALUE)
    nodes = g.nodes
    end = value + 1
    if max(g.inputs, default=-1) < end:
        # the usual case: the value is computed by the graph's first nodes, the gradient after
        # them; the part is that prefix, node for node (the same ids, nothing to renumber).
        # Every node before the value is needed iff each (but the value and the inputs) has a
        # user among them: the last one without a needed user would have none.  Both tests run
        # in C (map/chain), as does _within's usual case: no forward node has an adjoint or terms.
        prefix = nodes[:end]
        used = set(chain.from_iterable(map(_ARGS, prefix)))
        used.update(g.inputs)
        used.add(value)
        if len(used) == end and _within(prefix, end):
            graph = Graph(g.name, prefix, g.inputs, ((VALUE, value),))
            array = False if sched.array is False else None
            return Schedule(
                graph, sched.line[:end], sched.rebind[:end], sched.names[:end], sched.uses[:end], end, array
            )
    need = [False] * len(g.nodes)
    need[value] = True
    for i in range(value, -1, -1):  # only the value and what precedes it can be needed
        if need[i]:
            for a in nodes[i].args:
                need[a] = True
    for i in g.inputs:
        need[i] = True
    new: dict[int, int] = {}
    nodes = []
    for n in g.nodes:
        if need[n.id]:
            new[n.id] = len(nodes)
            terms = tuple(new[t] for t in n.terms) if all(t in new for t in n.terms) else ()
            adj = new.get(n.adj) if n.adj is not None else None
            nodes.append(_moved(n, len(nodes), tuple(new[a] for a in n.args), adj, terms))
    graph = Graph(g.name, tuple(nodes), tuple(new[i] for i in g.inputs), ((VALUE, new[value]),))

    def keep(xs):
        return [x for x, k in zip(xs, need) if k]

    return Schedule(graph, keep(sched.line), keep(sched.rebind), keep(sched.names), keep(sched.uses))


def _within(nodes, end: int) -> bool:
    """Whether no node among the first `end` refers (adjoint, comment terms) to a later one."""
    if not any(map(_ADJ, nodes[:end])) and not any(map(_TERMS, nodes[:end])):
        return True  # none refers to any node (an adjoint of node 0 is within too)
    for n in nodes[:end]:
        if n.adj is not None and n.adj >= end:
            return False
        for t in n.terms:
            if t >= end:
                return False
    return True
