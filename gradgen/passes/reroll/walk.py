"""The re-rolling walk (`gradgen.passes.reroll`): one `_Reroll` per graph.

`run()` resolves the old graph's nodes in waves; `classify` turns each ready
node into a resolved value or a candidate (the dot-row recogniser:
`dot_row`, over `element_row` or `scalar_row`); `build_group` makes one
array op of a group's candidates (`elementwise`, `matmul`), or per-element
code with a recorded fallback; `reduction` resolves a sum chain on its own.
Node creation order is the output's order: dicts keep insertion order, sets are only tested.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from gradgen.ir.graph import Builder, Graph
from gradgen.ir.ops import OPS, Op
from gradgen.ir.shapes import batched, inner
from gradgen.passes import layer_names
from gradgen.passes.reroll import layers
from gradgen.passes.reroll.dot_rows import DotRows
from gradgen.passes.reroll.values import (
    Built,
    Candidate,
    DotRow,
    Element,
    Elementwise,
    Fallback,
    Product,
    Value,
    descr,
    source,
)


def _full(shape) -> list[tuple]:
    return list(itertools.product(*(range(d) for d in shape)))


class _Reroll(DotRows):
    def __init__(self, g: Graph):
        self.g = g
        self.b = Builder(g.name)
        self.val: dict[int, Value] = {}  # old id -> what it stands for in the new graph
        self.fallbacks: list[Fallback] = []
        self._elems: dict[tuple, int] = {}
        self._elem_meta: dict[tuple, tuple] = {}  # (array, index) -> (name, loc) of the value it stands for
        self._vectors: dict[tuple, int] = {}  # scalar nodes -> their pack
        self.hint: dict[int, str] = {}  # array id -> suffix for names ("0" for W0 -> z0, h0)
        users = g.users()
        self.users_of = users
        self.layer_nodes = layers.find(g, users)  # the trace-time layer path's array ops
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

    def node(self, v: Value) -> int:
        """A resolved value as one node (reading an element if need be)."""
        if isinstance(v, Built):
            return v.node
        if isinstance(v, Element):
            key = (v.array, v.index)
            if key not in self._elems:
                name = layer_names.element(self.b.nodes[v.array].name, v.index)
                name, loc = self._elem_meta.get(key, (name, None))
                self._elems[key] = self.b.add(Op.ELEM, (v.array,), v.index, name=name, loc=loc)
            return self._elems[key]
        return self.b.add(Op.MUL, (self.node(v.left), self.node(v.right)), loc=v.loc)

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

    def is_param(self, array: int) -> bool:
        origin = self.b.nodes[array].origin
        return origin is not None and origin.kind == "param"

    # -- classification -------------------------------------------------------------------
    def classify(self, n) -> Value | Candidate:
        """What `n` stands for now, or the candidate it makes for an array op."""
        g = self.g
        if n.op is Op.ADD and not self.interior[n.id] and n.id not in self.layer_nodes:
            return self.classify_chain(n, [self.val[t] for t in self._in_order(n.id)])
        vals = [self.val[a] for a in n.args]
        if self.layer_nodes:
            found = layers.classify(self, n, vals)
            if found is not None:
                return found
        if not OPS[n.op].elementwise or all(isinstance(v, Built) for v in vals):
            return Built(self.copy(n, [self.node(v) for v in vals]))
        if n.op is Op.MUL and self.user[n.id] is not None and g[self.user[n.id]].op is Op.ADD:
            a, c = vals
            if isinstance(a, Element) or isinstance(c, Element):
                return Product(a, c, n.loc)  # a product term: its chain decides
        aligned = self.aligned(vals)
        if aligned is None:
            self.fall(n, f"{n.op} of elements at unrelated indices is computed per element")
            return Built(self.copy(n, [self.node(v) for v in vals]))
        index, out_inner = aligned
        if self.lone_element(vals, out_inner):
            return Built(self.copy(n, [self.node(v) for v in vals]))
        key = ("ew", n.op, repr(n.attr), tuple(descr(v) for v in vals))
        return Candidate(key, index, Elementwise(n, tuple(vals), out_inner))

    def aligned(self, vals):
        """(index, result inner shape) if the elements line up under broadcasting, else None."""
        elems = [v for v in vals if isinstance(v, Element)]
        longest = max(elems, key=lambda v: len(v.index))
        index, out_inner = longest.index, inner(self.shape(longest.array))
        for v in elems:
            if not self.lines_up(v, index, out_inner):
                return None
        return index, out_inner

    def lines_up(self, v: Element, index: tuple, out_inner: tuple) -> bool:
        """`v` is at the trailing axes of `index` in a result of inner shape `out_inner`."""
        k = len(v.index)
        return (
            k <= len(index)
            and v.index == index[len(index) - k :]
            and inner(self.shape(v.array)) == out_inner[len(out_inner) - k :]
        )

    def lone_element(self, vals, out_inner) -> bool:
        """The one element of a one-element axis (`z2[:, 0]` of a one-neuron layer) meets a
        per-example value: computed on the element, not by giving the other value an axis."""
        if any(d != 1 for d in out_inner):
            return False
        return any(
            isinstance(v, Built) and batched(self.shape(v.node)) and len(inner(self.shape(v.node))) < len(out_inner)
            for v in vals
        )

    def classify_chain(self, n, vals) -> Value | Candidate:
        prods = [v for v in vals if isinstance(v, Product)]
        rest = [v for v in vals if not isinstance(v, Product)]
        if prods:
            dot = self.dot_row(n, prods, rest)
            if dot is not None:
                return dot
            readout = self.vector_dot(n, prods, rest)
            if readout is not None:
                return Built(self.rename(readout, n))
        flat = [x for v in vals for x in ((v.left, v.right) if isinstance(v, Product) else (v,))]
        if any(isinstance(v, Element) for v in flat):
            aligned = self.aligned(flat)
            if aligned is not None and self.lone_element(flat, aligned[1]):
                return Built(self.copy_chain(n.id))
            if aligned is not None:  # the same sum at every index: an elementwise chain
                index, out_inner = aligned
                key = ("ew", Op.ADD, "chain", tuple(descr(v) for v in vals))
                return Candidate(key, index, Elementwise(n, tuple(vals), out_inner))
        return Built(self.reduction(n, vals))

    def reduction(self, n, vals) -> int:
        """A sum chain resolved on its own: whole arrays summed, everything else added in order."""
        vals = self.pack_products(vals, n.loc)
        by_array: dict[int, set] = {}
        for v in vals:
            if isinstance(v, Element):
                by_array.setdefault(v.array, set()).add(v.index)
        whole = set()
        for a, idxs in by_array.items():
            count = sum(1 for v in vals if isinstance(v, Element) and v.array == a)
            if count == len(idxs) and idxs == set(_full(inner(self.shape(a)))):
                whole.add(a)
        parts, done = [], set()
        partial = False
        for v in vals:
            if isinstance(v, Element) and v.array in whole:
                if v.array not in done:
                    done.add(v.array)
                    s = self.shape(v.array)
                    axes = tuple(range(1 if batched(s) else 0, len(s)))
                    parts.append(self.b.add(Op.SUM, (v.array,), axes, loc=n.loc) if axes else v.array)
                continue
            partial = partial or not isinstance(v, Built)
            parts.append(self.node(v))
        if partial:
            self.fall(n, "a sum over some elements of an array is computed per element")
        if all(isinstance(v, Built) for v in vals):  # no arrays involved: keep the chain's own nodes
            return self.copy_chain(n.id)
        out = parts[0]
        for p in parts[1:]:
            out = self.b.add(Op.ADD, (out, p), loc=n.loc)
        return self.rename(out, n)

    def pack_products(self, vals, loc):
        """Product terms a[i] * c[i] that cover all of a and c -> elements of one array a * c."""

        def pair(v):  # (a, c) for a term a[i] * c[i] (one index, arrays of one shape), else None
            if isinstance(v, Product) and isinstance(v.left, Element) and isinstance(v.right, Element):
                a, c = v.left, v.right
                if a.index == c.index and self.shape(a.array) == self.shape(c.array):
                    return a.array, c.array
            return None

        pairs: dict[tuple, list] = {}
        for v in vals:
            if pair(v):
                pairs.setdefault(pair(v), []).append(v.left.index)
        made = {}
        for (a, c), idxs in pairs.items():
            if len(set(idxs)) == len(idxs) and set(idxs) == set(_full(inner(self.shape(a)))):
                made[(a, c)] = self.b.add(Op.MUL, (a, c), loc=loc)
        if not made:
            return vals
        # only the terms counted above: a[0] * c[1] in the same chain is not (a * c)[0]
        return [Element(made[pair(v)], v.left.index) if pair(v) in made else v for v in vals]

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
    def build_group(self, members: list[tuple[tuple, Elementwise | DotRow]]) -> None:
        """One array op for the lanes `members` ((index, candidate) pairs), or per-element code
        if they miss indices."""
        first = members[0][1]
        if isinstance(first, layers.LayerOp):
            return layers.build(self, first)
        n, out_inner = first.node, first.out_inner
        indices = [idx for idx, _ in members]
        complete = len(set(indices)) == len(indices) and set(indices) == set(_full(out_inner))
        if isinstance(first, Elementwise):
            if not complete:
                total = len(_full(out_inner))
                self.fall(n, f"{n.op} over {len(indices)} of the {total} elements is computed per element")
                for _, m in members:
                    mn = m.node
                    if mn.op is Op.ADD:
                        self.val[mn.id] = Built(self.reduction(mn, m.vals))
                    else:
                        self.val[mn.id] = Built(self.copy(mn, [self.node(v) for v in m.vals]))
                return
            out = self.elementwise(first)
        else:
            if not complete and first.lead and self.by_lead(members):
                return  # the rows of one slice V[lead] (x_t = X[:, t]), each slice its own matmul
            if not complete:
                rows = sorted({m.row for _, m in members})
                self.fall(n, f"dot products with rows {rows} of {self.name(first.weight)} only are computed row by row")
                for _, m in members:
                    self.val[m.node.id] = Built(self.row_dot(m))
                return
            out = self.matmul(first)
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
        for idx, member in members:
            m = member.node
            self.val[m.id] = Element(out, idx) if out_inner else Built(out)
            if not out_inner and m.name is not None:
                self.b.set_meta(out, name=m.name)
            elif m.name is not None:  # read as an element later (score = z2[:, 0]): its name
                self._elem_meta[(out, idx)] = (m.name, m.loc)

    def by_lead(self, members) -> bool:
        """Dot rows over slices `V[lead]` of their vector, every row of each slice present: one
        matmul per slice (`X[:, t] @ Wx.T`), True; else nothing built, False."""
        slices: dict[tuple, list] = {}
        for idx, m in members:
            k = len(m.lead)
            sliced = replace(m, vector=None, lead=(), out_inner=m.out_inner[k:])
            slices.setdefault(m.lead, []).append((idx[k:], sliced))
        for part in slices.values():
            indices = [idx for idx, _ in part]
            if len(set(indices)) != len(indices) or set(indices) != set(_full(part[0][1].out_inner)):
                return False
        for lead, part in slices.items():
            V = self.node(Element(members[0][1].vector, lead))
            self.build_group([(idx, replace(m, vector=V)) for idx, m in part])
        return True

    def elementwise(self, first: Elementwise) -> int:
        """The array op every lane of `first`'s group computes."""
        n, k = first.node, len(first.out_inner)
        args = []
        for v in first.vals:
            if isinstance(v, Product):
                left, right = self.broadcast_arg(source(v.left), k), self.broadcast_arg(source(v.right), k)
                args.append(self.b.add(Op.MUL, (left, right), loc=n.loc))
            else:
                args.append(self.broadcast_arg(source(v), k))
        if n.op is Op.ADD:  # an elementwise sum chain
            out = args[0]
            for a in args[1:]:
                out = self.b.add(Op.ADD, (out, a), loc=n.loc)
        else:
            out = self.b.add(n.op, args, n.attr, loc=n.loc)
        src = [v.array for v in first.vals if isinstance(v, Element) and v.array in self.hint]
        if src and layer_names.activation(n.op, self.hint[src[0]]):
            self.hint[out] = self.hint[src[0]]
            self.b.set_meta(out, name=layer_names.activation(n.op, self.hint[out]))
        return out

    def matmul(self, first: DotRow) -> int:
        """`V @ P.T + rest` (or `V @ P + rest`): every row of `first`'s group at once."""
        n = first.node
        out = self.b.add(Op.MATMUL, (first.vector, self.weight(first.weight, first.transposed, first.more, n)), loc=n.loc)
        for P, V, transposed in first.more:  # + h @ Wh.T
            w = self.weight(P, transposed, first.more, n)
            out = self.b.add(Op.ADD, (out, self.b.add(Op.MATMUL, (V, w), loc=n.loc)), loc=n.loc)
        for r in first.rest:
            out = self.b.add(Op.ADD, (out, self.broadcast_arg(source(r), len(first.out_inner))), loc=n.loc)
        suffix = layer_names.layer_suffix(self.name(first.weight))
        if suffix is not None:
            self.hint[out] = suffix
            self.b.set_meta(out, name=layer_names.preactivation(suffix))
        return out

    def weight(self, P: int, transposed: bool, more: tuple, n) -> int:
        """`P.T` (or `P`) for a matmul; in a mixed chain (an RNN step, repeated) named `Wx_T`."""
        if not transposed:
            return P
        name = f"{self.name(P)}_T" if more else None
        return self.b.add(Op.TRANSPOSE, (P,), name=name, loc=n.loc)

    def row_dot(self, d: DotRow) -> int:
        """Row `d.row` on its own: `v @ P[j]`, or per element for a column of P."""
        P, V, loc = d.weight, d.vector, d.node.loc
        if d.transposed:
            vec = self.node(Element(V, d.lead)) if d.lead else V
            out = self.b.add(Op.MATMUL, (vec, self.node(Element(P, (d.row,)))), loc=loc)
        else:  # columns of P: per element
            out = None
            for k in range(self.shape(P)[0]):
                p, v = self.node(Element(P, (k, d.row))), self.node(Element(V, d.lead + (k,)))
                t = self.b.add(Op.MUL, (p, v), loc=loc)
                out = t if out is None else self.b.add(Op.ADD, (out, t), loc=loc)
        for P, V, transposed in d.more:
            part = self.row_dot(DotRow(d.node, P, V, transposed, d.row, (), (), d.out_inner))
            out = self.b.add(Op.ADD, (out, part), loc=loc)
        for r in d.rest:
            out = self.b.add(Op.ADD, (out, self.node(r)), loc=loc)
        return out

    def name(self, array: int) -> str:
        return self.b.nodes[array].name or "array"

    # -- the pass --------------------------------------------------------------------------------
    def run(self) -> Graph:
        g, b = self.g, self.b
        todo = []
        for n in g.nodes:
            if n.op is Op.INPUT:
                self.val[n.id] = Built(b.add(Op.INPUT, (), name=n.name, origin=n.origin, shape=n.shape, loc=n.loc))
            elif n.op is Op.CONST:
                self.val[n.id] = Built(b.const(n.attr) if n.name is None else self.copy(n, []))
            elif n.op is Op.ELEM and g[n.args[0]].op is Op.INPUT:
                self.val[n.id] = Element(self.val[n.args[0]].node, n.attr)
            elif self.layer_nodes.get(n.id) == "t":
                self.val[n.id] = layers.Waiting(n)  # built with its layer's add
            elif not self.interior[n.id]:
                todo.append(n)
        while todo:
            ready, later = [], []
            for n in todo:
                if n.id in self.val:
                    continue  # an element of a layer array, resolved when the array was built
                deps = self._in_order(n.id) if n.op is Op.ADD else n.args
                (ready if all(d in self.val for d in deps) else later).append(n)
            if not ready:
                raise AssertionError("reroll: no node is ready (the graph has a cycle?)")
            groups: dict[tuple, list] = {}
            for n in ready:
                c = self.classify(n)
                if isinstance(c, Candidate):
                    groups.setdefault(c.key, []).append((c.index, c.member))
                else:
                    self.val[n.id] = c
            for members in groups.values():
                self.build_group(members)
            todo = [n for n in later if n.id not in self.val]
        outputs = [(role, self.node(self.val[i])) for role, i in g.outputs]
        return b.build([self.val[i].node for i in g.inputs], outputs)
