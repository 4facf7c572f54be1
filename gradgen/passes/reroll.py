"""Re-rolling: scalar repetition -> array operations (an SLP vectoriser for traces).

A scalar trace of an MLP repeats one small subgraph per neuron, per weight
and (in micrograd's plain batch loop) per example.  The leaves say where
they came from -- `elem W0 (j, k)`, `elem X (b, k)` -- so the repetition is
visible in the indices.  This pass walks the graph in waves: a node is
ready when its arguments are resolved, each resolved value being a graph
node or an *element* `(array, index)` of an array built so far.  Ready
nodes are grouped:

* **packs**: the same elementwise op over elements at the same index of the
  same arrays (NumPy broadcasting allowed), covering every index once ->
  one elementwise array op (`relu(z0)`, `W0 * W0`);
* **dot rows**: a sum chain `b[j] + sum_k P[j, k] * v[k]` over one weight
  matrix `P` and one vector `v`, for every row j -> `v @ P.T + b`
  (a one-row `P` too: `z2 = h1 @ W2.T + b2` of shape (B, 1), whose one output
  is read as the column `z2[:, 0]`, or `z2.T[0]` over stacked examples);
* **reductions**: a sum chain over every element of an array -> `sum`
  (the plain loop's `sum(losses)`, the L2 term `sum(p * p)`).

What cannot be grouped -- a pack that misses indices, a chain that mixes
arrays -- falls back to correct per-element code (`elem` reads, scalar ops;
a dot row over part of a matrix becomes `v @ P[j]`), and each fallback is
recorded with its model line and reason for `gradgen compile --report`.
The arrays built are named by the rules of `gradgen.passes.layer_names`
(`z0`, `h0`, ...).
Element order of sums changes (BLAS, pairwise sums), so re-rolled code
matches the engine to rounding, not bit for bit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from gradgen.ir.graph import Builder, Graph, Loc
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched, inner
from gradgen.passes import layer_names


@dataclass(frozen=True)
class Fallback:
    loc: Loc | None
    reason: str

    def __str__(self) -> str:
        return f"{self.loc.short() if self.loc else '?'}: {self.reason}"


def _full(shape) -> list[tuple]:
    return list(itertools.product(*(range(d) for d in shape)))


class _Reroll:
    def __init__(self, g: Graph):
        self.g = g
        self.b = Builder(g.name)
        self.val: dict[int, tuple] = {}  # old id -> ("n", new id) | ("e", array id, index) | ("p", va, vc, loc)
        self.fallbacks: list[Fallback] = []
        self._elems: dict[tuple, int] = {}
        self._elem_meta: dict[tuple, tuple] = {}  # (array, index) -> (name, loc) of the value it stands for
        self.hint: dict[int, str] = {}  # array id -> suffix for names ("0" for W0 -> z0, h0)
        users = g.users()
        self.uses = [len(u) for u in users]
        for _, i in g.outputs:
            self.uses[i] += 1
        self.user = [u[0] if len(u) == 1 else None for u in users]
        self.interior = [
            n.op is Op.ADD and self.uses[n.id] == 1 and self.user[n.id] is not None and g[self.user[n.id]].op is Op.ADD
            for n in g.nodes
        ]

    # -- helpers ------------------------------------------------------------------------
    def shape(self, i: int) -> tuple:
        return self.b.nodes[i].shape

    def node(self, v: tuple) -> int:
        """A resolved value as one node (reading an element if need be)."""
        if v[0] == "n":
            return v[1]
        if v[0] == "e":
            key = (v[1], v[2])
            if key not in self._elems:
                base = self.b.nodes[v[1]].name
                name = layer_names.element(base, v[2])
                name, loc = self._elem_meta.get(key, (name, None))
                self._elems[key] = self.b.add(Op.ELEM, (v[1],), v[2], name=name, loc=loc)
            return self._elems[key]
        return self.b.add(Op.MUL, (self.node(v[1]), self.node(v[2])), loc=v[3])

    def _in_order(self, root: int) -> list[int]:
        out: list[int] = []
        stack = [root]
        while stack:
            i = stack.pop()
            if i != root and not self.interior[i]:
                out.append(i)
                continue
            stack.extend(reversed(self.g[i].args))
        return out

    def broadcast_arg(self, i: int, out_inner: int) -> int:
        """`i` shaped to broadcast against a (maybe batched) result with `out_inner` inner axes."""
        s = self.shape(i)
        if batched(s) and len(inner(s)) < out_inner:
            return self.b.add(Op.EXPAND, (i,), tuple(range(1, 1 + out_inner - len(inner(s)))))
        return i

    def fall(self, node, reason: str) -> None:
        self.fallbacks.append(Fallback(node.loc, reason))

    # -- classification -------------------------------------------------------------------
    def classify(self, n):
        """("now", val) | ("group", key, index, info)."""
        g = self.g
        if n.op is Op.ADD and not self.interior[n.id]:
            return self.classify_chain(n, [self.val[t] for t in self._in_order(n.id)])
        vals = [self.val[a] for a in n.args]
        if not OPS[n.op].elementwise or all(v[0] == "n" for v in vals):
            return ("now", ("n", self.copy(n, [self.node(v) for v in vals])))
        if n.op is Op.MUL and self.user[n.id] is not None and g[self.user[n.id]].op is Op.ADD:
            va, vc = vals
            if "e" in (va[0], vc[0]):
                return ("now", ("p", va, vc, n.loc))  # a product term: its chain decides
        aligned = self.aligned(vals)
        if aligned is None:
            self.fall(n, f"{n.op} of elements at unrelated indices is computed per element")
            return ("now", ("n", self.copy(n, [self.node(v) for v in vals])))
        index, out_inner = aligned
        if self.lone_element(vals, out_inner):
            return ("now", ("n", self.copy(n, [self.node(v) for v in vals])))
        key = ("ew", n.op, repr(n.attr), tuple(v[1] if v[0] == "e" else ("n", v[1]) for v in vals))
        return ("group", key, index, (n, vals, out_inner))

    def aligned(self, vals):
        """(index, result inner shape) if the elements line up under broadcasting, else None."""
        elems = [v for v in vals if v[0] == "e"]
        longest = max(elems, key=lambda v: len(v[2]))
        index, out_inner = longest[2], inner(self.shape(longest[1]))
        for v in elems:
            k = len(v[2])
            if v[2] != index[len(index) - k :] or inner(self.shape(v[1])) != out_inner[len(out_inner) - k :]:
                return None
        return index, out_inner

    def lone_element(self, vals, out_inner) -> bool:
        """The one element of a one-element axis (`z2[:, 0]` of a one-neuron layer) meets a
        per-example value: computed on the element, not by giving the other value an axis."""
        if any(d != 1 for d in out_inner):
            return False
        return any(v[0] == "n" and batched(self.shape(v[1])) and len(inner(self.shape(v[1]))) < len(out_inner) for v in vals)

    def classify_chain(self, n, vals):
        prods = [v for v in vals if v[0] == "p"]
        rest = [v for v in vals if v[0] != "p"]
        if prods:
            dot = self.dot_row(prods, rest)
            if dot is not None:
                key, index, info = dot
                return ("group", key, index, (n, info, info[-1]))
        flat = [x for v in vals for x in ((v[1], v[2]) if v[0] == "p" else (v,))]
        if any(v[0] == "e" for v in flat):
            aligned = self.aligned(flat)
            if aligned is not None and self.lone_element(flat, aligned[1]):
                return ("now", ("n", self.copy_chain(n.id)))
            if aligned is not None:  # the same sum at every index: an elementwise chain
                index, out_inner = aligned
                key = ("ew", Op.ADD, "chain", tuple(self.descr(v) for v in vals))
                return ("group", key, index, (n, vals, out_inner))
        return ("now", ("n", self.reduction(n, vals)))

    def descr(self, v):
        if v[0] == "e":
            return v[1]
        if v[0] == "p":
            return ("p", v[1][1], v[2][1])
        return ("n", v[1])

    def dot_row(self, prods, rest):
        """A sum chain `rest + sum_k P[j, k] * V[pre, k]`, or None."""
        if any(t[1][0] == "n" or t[2][0] == "n" for t in prods):
            return self.dot_row_scalars(prods, rest)
        first = prods[0]
        param_first = self.b.nodes[first[2][1]].origin is not None and self.b.nodes[first[2][1]].origin.kind == "param"
        for swap in (param_first, not param_first):
            p, v = (first[2], first[1]) if swap else (first[1], first[2])
            P, V = p[1], v[1]
            sp, sv = self.shape(P), self.shape(V)
            if batched(sp) or len(sp) != 2 or not inner(sv):
                continue
            n_k = inner(sv)[-1]
            for case in ("PT", "P"):  # V @ P.T (P[j, k]) or V @ P (P[k, j])
                kax = 1 if case == "PT" else 0
                if sp[kax] != n_k or len(prods) != n_k:
                    continue
                seen, j, pre, ok = set(), None, None, True
                for t in prods:
                    tp, tv = (t[2], t[1]) if swap else (t[1], t[2])
                    if tp[1] != P or tv[1] != V:
                        ok = False
                        break
                    k, jj, pp = tp[2][kax], tp[2][1 - kax], tv[2][:-1]
                    if tv[2][-1] != k or (j is not None and (jj != j or pp != pre)):
                        ok = False
                        break
                    j, pre = jj, pp
                    seen.add(k)
                if not ok or len(seen) != n_k:
                    continue
                m = sp[1 - kax]
                index = pre + (j,)
                out_inner = inner(sv)[:-1] + (m,)
                for r in rest:
                    if r[0] == "e":
                        k = len(r[2])
                        rs = inner(self.shape(r[1]))
                        if k > len(index) or r[2] != index[len(index) - k :] or rs != out_inner[len(out_inner) - k :]:
                            return None
                key = ("dot", P, V, case, tuple(r[1] if r[0] == "e" else ("n", r[1]) for r in rest))
                return key, index, (P, V, case, j, pre, rest, out_inner)
        return None

    def dot_row_scalars(self, prods, rest):
        """`rest + sum_k P[j, k] * x_k` with each x_k its own node: V is those nodes packed."""
        terms = [(t[1], t[2]) if t[1][0] == "e" else (t[2], t[1]) for t in prods]
        if any(p[0] != "e" or x[0] != "n" for p, x in terms):
            return None
        P = terms[0][0][1]
        sp = self.shape(P)
        if batched(sp) or len(sp) != 2 or any(p[1] != P for p, _ in terms):
            return None
        by_k, j = {}, terms[0][0][2][0]
        for p, x in terms:
            if p[2][0] != j or p[2][1] in by_k:
                return None
            by_k[p[2][1]] = x[1]
        if sorted(by_k) != list(range(sp[1])):
            return None
        xs = tuple(by_k[k] for k in range(sp[1]))
        V = self.vector(xs)
        if V is None:
            return None
        index, out_inner = (j,), (sp[0],)
        for r in rest:  # a bias b[j], aligned with the row
            if r[0] == "e" and (r[2] != index or inner(self.shape(r[1])) != out_inner):
                return None
        key = ("dot", P, V, "PT", tuple(self.descr(r) for r in rest))
        return key, index, (P, V, "PT", j, (), rest, out_inner)

    def vector(self, xs: tuple) -> int | None:
        """The nodes `xs` (scalars, or per-example scalars) packed into one vector, once."""
        cache = self.__dict__.setdefault("_vectors", {})
        if xs not in cache:
            shapes = {self.shape(x) for x in xs}
            if len(shapes) != 1 or shapes.pop() not in ((), ("B",)):
                return None
            is_batched = self.shape(xs[0]) == ("B",)
            layout = (is_batched, (len(xs),), tuple((k,) for k in range(len(xs))))
            cache[xs] = self.b.add(Op.PACK, xs, layout)
        return cache[xs]

    def reduction(self, n, vals) -> int:
        """A sum chain resolved on its own: whole arrays summed, everything else added in order."""
        vals = self.pack_products(vals, n.loc)
        by_array: dict[int, set] = {}
        for v in vals:
            if v[0] == "e":
                by_array.setdefault(v[1], set()).add(v[2])
        whole = set()
        for a, idxs in by_array.items():
            s = self.shape(a)
            count = sum(1 for v in vals if v[0] == "e" and v[1] == a)
            if count == len(idxs) and idxs == set(_full(inner(s))):
                whole.add(a)
        parts, done = [], set()
        partial = False
        for v in vals:
            if v[0] == "e" and v[1] in whole:
                if v[1] not in done:
                    done.add(v[1])
                    s = self.shape(v[1])
                    axes = tuple(range(1 if batched(s) else 0, len(s)))
                    parts.append(self.b.add(Op.SUM, (v[1],), axes, loc=n.loc) if axes else v[1])
                continue
            partial = partial or v[0] != "n"
            parts.append(self.node(v))
        if partial:
            self.fall(n, "a sum over some elements of an array is computed per element")
        if not any(v[0] != "n" for v in vals):  # no arrays involved: keep the chain's own nodes
            return self.copy_chain(n.id)
        out = parts[0]
        for p in parts[1:]:
            out = self.b.add(Op.ADD, (out, p), loc=n.loc)
        return self.rename(out, n)

    def pack_products(self, vals, loc):
        """Product terms a[i] * c[i] that cover all of a and c -> elements of one array a * c."""
        pairs: dict[tuple, list] = {}
        for v in vals:
            if v[0] == "p" and v[1][0] == v[2][0] == "e" and v[1][2] == v[2][2] and self.shape(v[1][1]) == self.shape(v[2][1]):
                pairs.setdefault((v[1][1], v[2][1]), []).append(v[1][2])
        made = {}
        for (a, c), idxs in pairs.items():
            if len(set(idxs)) == len(idxs) and set(idxs) == set(_full(inner(self.shape(a)))):
                made[(a, c)] = self.b.add(Op.MUL, (a, c), loc=loc)
        if not made:
            return vals
        out = []
        for v in vals:
            key = (v[1][1], v[2][1]) if v[0] == "p" and v[1][0] == v[2][0] == "e" else None
            out.append(("e", made[key], v[1][2]) if key in made else v)
        return out

    def copy_chain(self, root: int) -> int:
        def build(i):
            if i != root and not self.interior[i]:
                return self.node(self.val[i])
            node = self.g[i]
            return self.copy(node, [build(a) for a in node.args])

        return build(root)

    def copy(self, n, args) -> int:
        return self.b.add(n.op, args, n.attr, name=n.name, loc=n.loc)

    def rename(self, nid: int, n) -> int:
        if n.name is not None and self.b.nodes[nid].name is None and self.b.nodes[nid].op is not Op.INPUT:
            self.b.set_meta(nid, name=n.name, loc=n.loc)
        return nid

    # -- building groups -------------------------------------------------------------------
    def build_group(self, key, members) -> None:
        kind = key[0]
        n, payload, out_inner = members[0][1]
        indices = [idx for idx, _ in members]
        complete = len(set(indices)) == len(indices) and set(indices) == set(_full(out_inner))
        if kind == "ew":
            vals = payload
            if not complete:
                self.fall(n, f"{n.op} over {len(indices)} of the {len(_full(out_inner))} elements is computed per element")
                for idx, (m, mv, _) in members:
                    self.val[m.id] = ("n", self.copy(m, [self.node(v) for v in mv]) if m.op is not Op.ADD
                                      else self.reduction(m, mv))
                return
            k = len(out_inner)
            args = [
                self.b.add(Op.MUL, (self.broadcast_arg(v[1][1], k), self.broadcast_arg(v[2][1], k)), loc=n.loc)
                if v[0] == "p"
                else self.broadcast_arg(v[1], k)
                for v in vals
            ]
            if n.op is Op.ADD:  # an elementwise sum chain
                out = args[0]
                for a in args[1:]:
                    out = self.b.add(Op.ADD, (out, a), loc=n.loc)
            else:
                out = self.b.add(n.op, args, n.attr, loc=n.loc)
            src = [v[1] for v in vals if v[0] == "e" and v[1] in self.hint]
            if src and layer_names.activation(n.op, self.hint[src[0]]):
                self.hint[out] = self.hint[src[0]]
                self.b.set_meta(out, name=layer_names.activation(n.op, self.hint[out]))
        else:
            P, V, case, _, _, rest, _ = payload
            if not complete:
                rows = sorted({m[1][3] for _, m in members})
                self.fall(n, f"dot products with rows {rows} of {self.name(P)} only are computed row by row")
                for idx, (m, (P, V, case, j, pre, rest, _), _) in members:
                    self.val[m.id] = ("n", self.row_dot(m, P, V, case, j, pre, rest))
                return
            w = self.b.add(Op.TRANSPOSE, (P,), loc=n.loc) if case == "PT" else P
            out = self.b.add(Op.MATMUL, (V, w), loc=n.loc)
            for r in rest:
                out = self.b.add(Op.ADD, (out, self.broadcast_arg(r[1], len(out_inner))), loc=n.loc)
            suffix = layer_names.layer_suffix(self.name(P))
            if suffix is not None:
                self.hint[out] = suffix
                self.b.set_meta(out, name=layer_names.preactivation(suffix))
            if len(out_inner) == 2 and out_inner[-1] == 1 and not batched(self.shape(out)):
                # one neuron over stacked examples, z2 of shape (4, 1): its column z2.T[0]
                # lines up with the examples' other (4,) arrays (the targets)
                z = out
                out = self.b.add(Op.ELEM, (self.b.add(Op.TRANSPOSE, (z,), loc=n.loc),), (0,), loc=n.loc)
                if z in self.hint:
                    self.hint[out] = self.hint[z]
                    self.b.set_meta(out, name=layer_names.column(self.b.nodes[z].name))
                out_inner = out_inner[:1]
                members = [(idx[:1], m) for idx, m in members]
        for idx, (m, *_) in members:
            self.val[m.id] = ("e", out, idx) if out_inner else ("n", out)
            if not out_inner and m.name is not None:
                self.b.set_meta(out, name=m.name)
            elif m.name is not None:  # read as an element later (score = z2[:, 0]): its name
                self._elem_meta[(out, idx)] = (m.name, m.loc)

    def row_dot(self, m, P, V, case, j, pre, rest) -> int:
        if case == "PT":
            vec = self.node(("e", V, pre)) if pre else V
            out = self.b.add(Op.MATMUL, (vec, self.node(("e", P, (j,)))), loc=m.loc)
        else:  # columns of P: per element
            out = None
            for k in range(self.shape(P)[0]):
                t = self.b.add(Op.MUL, (self.node(("e", P, (k, j))), self.node(("e", V, pre + (k,)))), loc=m.loc)
                out = t if out is None else self.b.add(Op.ADD, (out, t), loc=m.loc)
        for r in rest:
            out = self.b.add(Op.ADD, (out, self.node(r)), loc=m.loc)
        return out

    def name(self, array: int) -> str:
        return self.b.nodes[array].name or "array"

    # -- the pass --------------------------------------------------------------------------------
    def run(self) -> Graph:
        g, b = self.g, self.b
        todo = []
        for n in g.nodes:
            if n.op is Op.INPUT:
                self.val[n.id] = ("n", b.add(Op.INPUT, (), name=n.name, origin=n.origin, shape=n.shape, loc=n.loc))
            elif n.op is Op.CONST:
                self.val[n.id] = ("n", b.const(n.attr) if n.name is None else self.copy(n, []))
            elif n.op is Op.ELEM and g[n.args[0]].op is Op.INPUT:
                self.val[n.id] = ("e", self.val[n.args[0]][1], n.attr)
            elif not self.interior[n.id]:
                todo.append(n)
        while todo:
            ready, later = [], []
            for n in todo:
                deps = self._in_order(n.id) if n.op is Op.ADD else n.args
                (ready if all(d in self.val for d in deps) else later).append(n)
            if not ready:
                raise AssertionError("reroll: no node is ready (the graph has a cycle?)")
            groups: dict[tuple, list] = {}
            for n in ready:
                c = self.classify(n)
                if c[0] == "now":
                    self.val[n.id] = c[1]
                else:
                    _, key, index, info = c
                    groups.setdefault(key, []).append((index, info))
            for key, members in groups.items():
                self.build_group(key, members)
            todo = later
        outputs = [(role, self.node(self.val[i])) for role, i in g.outputs]
        return b.build([self.val[i][1] for i in g.inputs], outputs)


def reroll(graph: Graph, fallbacks: list | None = None) -> Graph:
    """Re-roll `graph`'s scalar repetition into array ops; append fallbacks to `fallbacks`."""
    if not any(n.op is Op.ELEM for n in graph.nodes):
        return graph  # nothing came from an array: scalar code stays as it is
    r = _Reroll(graph)
    out = r.run()
    if fallbacks is not None:
        fallbacks.extend(r.fallbacks)
    return out
