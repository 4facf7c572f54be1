"""The dot-row recogniser of the re-rolling pass (`gradgen.passes.reroll`): one for every kind of row.

A sum chain `rest + sum_k P[j, k] * v_k` (or `P[k, j] * v_k`) over one 2-D
weight `P` is row j of a matrix product when every k appears once and the
bias terms in `rest` line up with the row.  The v_k are either

* the last axis of one array's elements, `V[lead, k]` (`element_row`:
  `x @ W.T`, or `x @ W` for columns), or
* each its own node, scalars the model computed one by one (`scalar_row`):
  they are packed into one vector V, once.

A chain over several weights splits into one row per weight (`split_row`:
`b + Wx x_t + Wh h`); a chain over a 1-D weight is a readout (`vector_dot`).
The zero a Python `sum` starts from is dropped from a re-rolled row.

`DotRows` is a part of `_Reroll` (`gradgen.passes.reroll.walk`): it uses its
builder `b`, `shape`, `is_param`, `lines_up` and the `_vectors` cache.
"""

from __future__ import annotations

from gradgen.ir.ops import Op
from gradgen.ir.shapes import batched, inner
from gradgen.passes.reroll.values import Built, Candidate, DotRow, Element, descr


class DotRows:
    def dot_row(self, n, prods, rest) -> Candidate | None:
        """The chain `n` = `rest + sum_k P[j, k] * v_k` (or `P[k, j] * v_k`) as row j of a matrix
        product, or None.  The v_k are the last axis of one array's elements, `V[lead, k]`, or
        each its own node (scalars the model computed one by one), which are packed into V."""
        row = self.one_row(prods)
        more = ()
        if row is None:
            parts = self.split_row(prods)
            if parts is None:
                return None
            row, more = parts
        scalars = any(isinstance(f, Built) for t in prods for f in (t.left, t.right))
        P, V, transposed, j, lead, out_inner = row
        index = lead + (j,)
        rest = [r for r in rest if not self.is_zero(r)]  # `b + sum(...)`: sum's start, 0
        for r in rest:  # a bias b[j], aligned with the row
            if isinstance(r, Element) and not self.lines_up(r, index, out_inner):
                return None
            if isinstance(r, Element) and scalars and r.index != index:
                return None  # a packed vector has no leading axes: the bias is b[j] itself
        key = ("dot", P, V, transposed, more, tuple(descr(r) for r in rest))
        return Candidate(key, index, DotRow(n, P, V, transposed, j, lead, tuple(rest), out_inner, more))

    def is_zero(self, r) -> bool:
        """The constant 0 a Python `sum` starts from (dropped from a re-rolled row: rows already
        sum in another order, and x + 0.0 differs from x only in the sign of a zero)."""
        return isinstance(r, Built) and self.b.nodes[r.node].op is Op.CONST and self.b.nodes[r.node].attr == 0.0

    def vector_dot(self, n, prods, rest) -> int | None:
        """`rest + sum_k w[k] * V[lead, k]` over a 1-D parameter `w`, every k once: the readout
        `(V[lead] * w).sum(axis=-1)`, built now (one value per example), or None."""
        terms = []
        for t in prods:
            if not (isinstance(t.left, Element) and isinstance(t.right, Element)):
                return None
            w, v = (t.left, t.right) if self.is_param(t.left.array) and len(self.shape(t.left.array)) == 1 else (t.right, t.left)
            terms.append((w, v))
        w0, v0 = terms[0]
        W, V, lead = w0.array, v0.array, v0.index[:-1]
        sw, sv = self.shape(W), self.shape(V)
        if not self.is_param(W) or len(sw) != 1 or not inner(sv) or inner(sv)[-1] != sw[0] or len(terms) != sw[0]:
            return None
        ks = set()
        for w, v in terms:
            if w.array != W or v.array != V or v.index[:-1] != lead or w.index != v.index[-1:]:
                return None
            ks.add(w.index[0])
        if len(ks) != sw[0]:
            return None
        vec = self.node(Element(V, lead)) if lead else V
        s = self.shape(vec)
        prod = self.b.add(Op.MUL, (vec, W), loc=n.loc)
        out = self.b.add(Op.SUM, (prod,), (len(s) - 1,), loc=n.loc)
        for r in rest:
            if not self.is_zero(r):
                out = self.b.add(Op.ADD, (out, self.node(r)), loc=n.loc)
        return out

    def one_row(self, prods):
        """The terms as one dot row over one weight (see `dot_row`), or None."""
        scalars = any(isinstance(f, Built) for t in prods for f in (t.left, t.right))
        return self.scalar_row(prods) if scalars else self.element_row(prods)

    def split_row(self, prods):
        """A mixed chain `sum_k Wx[j, k] x_k + sum_i Wh[j, i] h_i`: the terms grouped by their
        weight (a 2-D parameter), each group one dot row of the same row j; their vectors lose
        their leading axes (`X[:, t]`).  (first row, ((weight, vector, transposed), ...)) or None."""
        by_weight: dict[int, list] = {}
        for t in prods:
            ws = [f.array for f in (t.left, t.right) if isinstance(f, Element) and self.is_param(f.array)]
            ws = [w for w in ws if len(self.shape(w)) == 2]
            if not ws:
                return None
            by_weight.setdefault(ws[0], []).append(t)
        if len(by_weight) < 2:
            return None
        rows = []
        for terms in by_weight.values():
            row = self.one_row(terms)
            if row is None or row[0] not in by_weight:
                return None
            P, V, transposed, j, lead, out_inner = row
            if lead:  # x_t = X[:, t]: the vector is that slice
                V, out_inner = self.node(Element(V, lead)), out_inner[len(lead) :]
            rows.append((P, V, transposed, j, (), out_inner))
        if len({(r[3], r[5]) for r in rows}) != 1:
            return None  # the parts are not the same row of one result
        return rows[0], tuple((P, V, transposed) for P, V, transposed, *_ in rows[1:])

    def element_row(self, prods):
        """Terms `P[j, k] * V[lead, k]` for every k once: (P, V, transposed, j, lead, out_inner), or None."""
        first = prods[0]
        right_first = self.is_param(first.right.array)
        for swap in (right_first, not right_first):
            terms = [(t.right, t.left) if swap else (t.left, t.right) for t in prods]  # (P's, V's)
            p0, v0 = terms[0]
            P, V = p0.array, v0.array
            sp, sv = self.shape(P), self.shape(V)
            if batched(sp) or len(sp) != 2 or not inner(sv):
                continue
            n_k = inner(sv)[-1]
            for transposed in (True, False):  # V @ P.T (P[j, k]) or V @ P (P[k, j])
                kax = 1 if transposed else 0
                if sp[kax] != n_k or len(prods) != n_k:
                    continue
                seen, j, lead, ok = set(), None, None, True
                for p, v in terms:
                    if p.array != P or v.array != V:
                        ok = False
                        break
                    k, jj, ll = p.index[kax], p.index[1 - kax], v.index[:-1]
                    if v.index[-1] != k or (j is not None and (jj != j or ll != lead)):
                        ok = False
                        break
                    j, lead = jj, ll
                    seen.add(k)
                if ok and len(seen) == n_k:
                    return P, V, transposed, j, lead, inner(sv)[:-1] + (sp[1 - kax],)
        return None

    def scalar_row(self, prods):
        """Terms `P[j, k] * x_k`, each x_k its own node, for every k once: V is the x_k packed."""
        terms = [(t.left, t.right) if isinstance(t.left, Element) else (t.right, t.left) for t in prods]
        if any(not isinstance(p, Element) or not isinstance(x, Built) for p, x in terms):
            return None
        p0 = terms[0][0]  # P[j, k] of the first term
        P = p0.array
        sp = self.shape(P)
        if batched(sp) or len(sp) != 2 or any(p.array != P for p, _ in terms):
            return None
        by_k, j = {}, p0.index[0]
        for p, x in terms:
            if p.index[0] != j or p.index[1] in by_k:
                return None
            by_k[p.index[1]] = x.node
        if sorted(by_k) != list(range(sp[1])):
            return None
        V = self.vector(tuple(by_k[k] for k in range(sp[1])))
        if V is None:
            return None
        return P, V, True, j, (), (sp[0],)

    def vector(self, xs: tuple) -> int | None:
        """The nodes `xs` (scalars, or per-example scalars) packed into one vector, once."""
        if xs not in self._vectors:
            shapes = {self.shape(x) for x in xs}
            if len(shapes) != 1 or shapes.pop() not in ((), ("B",)):
                return None
            is_batched = self.shape(xs[0]) == ("B",)
            layout = (is_batched, (len(xs),), tuple((k,) for k in range(len(xs))))
            self._vectors[xs] = self.b.add(Op.PACK, xs, layout)
        return self._vectors[xs]
