"""The values the re-rolling pass works with (`gradgen.passes.reroll`).

* a **resolved value** says what an old graph's node stands for in the new
  graph: `Built` (a node already built), `Element` (an element of an array
  built so far, not read yet) or `Product` (a term `a * c` of a sum chain,
  with an element among its factors: the chain decides how it is computed);
* a **candidate** is a ready node that may join an array op: `Elementwise`
  (one lane of an elementwise op or sum chain) or `DotRow` (one row of a
  matrix product), inside a `Candidate` with its group key and index;
* a `Fallback` records what could not be re-rolled, and why, for
  `gradgen compile --report`.

All are frozen dataclasses: fields by name, compared by value.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradgen.ir.graph import Loc, Node


@dataclass(frozen=True)
class Fallback:
    loc: Loc | None
    reason: str

    def __str__(self) -> str:
        return f"{self.loc.short() if self.loc else '?'}: {self.reason}"


# -- resolved values: what an old node stands for in the new graph --------------------------
@dataclass(frozen=True, slots=True)
class Built:
    """The value is node `node` of the new graph."""

    node: int


@dataclass(frozen=True, slots=True)
class Element:
    """The value is `array[index]` (index over the array's inner axes), not read yet."""

    array: int
    index: tuple


@dataclass(frozen=True, slots=True)
class Product:
    """A term `left * right` of a sum chain, with an element among its factors: the chain decides
    how it is computed (a dot row, a whole-array product, or one `mul`)."""

    left: Built | Element
    right: Built | Element
    loc: Loc | None


Value = Built | Element | Product


def source(v: Built | Element) -> int:
    """The node a value reads: an element's array, or the node itself."""
    return v.array if isinstance(v, Element) else v.node


def descr(v: Value) -> tuple | int:
    """What a value contributes to a group's key: the same for every lane of one array op."""
    if isinstance(v, Element):
        return v.array
    if isinstance(v, Product):
        return ("p", descr(v.left), descr(v.right))
    return ("n", v.node)


# -- candidates: ready nodes that may join an array op -------------------------------------
@dataclass(frozen=True, slots=True)
class Elementwise:
    """`node` (an elementwise op, or a sum chain of `vals`) at one index of an `out_inner` result."""

    node: Node
    vals: tuple
    out_inner: tuple


@dataclass(frozen=True, slots=True)
class DotRow:
    """`node` = `rest + sum_k P[row, k] * V[lead, k]` (`transposed`: `V @ P.T`), or with `P[k, row]`
    (`V @ P`): row `row` of a result of inner shape `out_inner`; `more` adds further dot parts
    over other weights (a mixed chain `b + Wx x + Wh h`, each vector without leading axes)."""

    node: Node
    weight: int
    vector: int
    transposed: bool
    row: int
    lead: tuple
    rest: tuple
    out_inner: tuple
    more: tuple = ()  # further (weight, vector, transposed) dot parts of the same row: `+ h @ Wh.T`


@dataclass(frozen=True, slots=True)
class Candidate:
    key: tuple  # members with equal keys are lanes of one array op
    index: tuple
    member: Elementwise | DotRow
