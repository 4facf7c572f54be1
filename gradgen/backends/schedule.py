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

from dataclasses import dataclass, replace

from gradgen.ir.graph import VALUE, Graph
from gradgen.ir.ops import Op
from gradgen.names import assign_names, sanitize

INLINE_LIMIT = 56  # longest expression inlined into its user


@dataclass
class Schedule:
    graph: Graph
    line: list[bool]  # the node is computed by its own statement
    rebind: list[bool]  # ... and that statement is `name += e` / `name -= e` on its partial
    names: list[str | None]  # the emitted name of each node with a line, and of every input
    uses: list[int]

    def named(self, i: int) -> bool:
        """Whether node i is referred to by its name (rather than its expression)."""
        return self.line[i] or self.graph.nodes[i].op is Op.INPUT


def _group(n) -> tuple:
    return ("b", n.step) if n.rule is not None else ("f",)


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
            est[n.id] = len(like.literal(n.attr)[0])
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
        size = like.estimate(n.op) + sum(est[a] for a in n.args)
        own = n.name is not None or n.adj is not None or n.op is Op.CONST
        same = uses[n.id] == 1 and _group(nodes[user[n.id]]) == _group(n)
        line[n.id] = own or not same or size > INLINE_LIMIT
        est[n.id] = len(sanitize(n.name or n.op.value)) + 4 if line[n.id] else size

    # 2. `g_x += c` / `g_x -= c`: an accumulation whose previous partial is used nowhere else
    rebind = [False] * len(nodes)
    for n in nodes:
        if n.op in (Op.ADD, Op.SUB) and n.adj is not None and line[n.id]:
            p = nodes[n.args[0]]
            if p.adj == n.adj and line[p.id] and uses[p.id] == 1 and n.args[1] != p.id:
                # arrays: only a fresh result of the same shape may be updated in place
                rebind[n.id] = p.op in backend.inplace_ok and p.shape == n.shape

    # 3. names, through the one namespace
    wanted = [line[i] and not rebind[i] for i in range(len(nodes))]
    for i in graph.inputs:
        wanted[i] = True
    names = assign_names(graph, reserved=set(reserved) | backend.reserved, wanted=wanted)
    for n in nodes:
        if rebind[n.id]:
            names[n.id] = names[n.args[0]]
    return Schedule(graph, line, rebind, names, uses)


def forward_part(sched: Schedule) -> Schedule:
    """The schedule of the value alone, cut from a gradient function's schedule: the nodes the
    value needs (and every input), with the same lines and names, so `f` and `f_grad` write
    the forward alike (minus what only the backward needs)."""
    g = sched.graph
    value = g.output(VALUE)
    need = [False] * len(g.nodes)
    need[value] = True
    for n in reversed(g.nodes):
        if need[n.id]:
            for a in n.args:
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
            nodes.append(replace(n, id=len(nodes), args=tuple(new[a] for a in n.args), adj=adj, terms=terms))
    graph = Graph(g.name, tuple(nodes), tuple(new[i] for i in g.inputs), ((VALUE, new[value]),))

    def keep(xs):
        return [x for x, k in zip(xs, need) if k]

    return Schedule(graph, keep(sched.line), keep(sched.rebind), keep(sched.names), keep(sched.uses))
