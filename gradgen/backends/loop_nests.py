"""The numba backend's loop nests (gradgen.backends.loops): the statements of a body as
`Nest`s, `Plain` statements and `Section` comments, how nests fuse (`fuse`: a nest joins an
earlier one over the same or a leading shape, hopping over statements it does not depend
on) and how they print (`render`); `unused_views` drops the view statements the loops read
through."""

from __future__ import annotations

from dataclasses import dataclass, field

from gradgen.backends.base import LINE


@dataclass
class Nest:
    space: tuple  # loop extents, outermost first ("B", 16); extents of 1 are no loop
    pre: list  # lines before the loops: allocations, a product into the result
    body: list  # (text, note, loops): statements in the innermost loop, each inside its own
    # further loops ((var, extent), ...: a deeper nest fused into this one); text may be several lines
    maps: dict = field(default_factory=dict)  # array -> the index it is written at
    sums: set = field(default_factory=set)  # names accumulated over some of the nest's axes
    reads: set = field(default_factory=set)  # (name, index) the body reads
    pre_reads: set = field(default_factory=set)  # names the pre lines read

    def writes(self) -> set:
        return set(self.maps) | self.sums


@dataclass
class Section:
    lines: list  # `# forward`, `# backward`: no nest moves or fuses across it


@dataclass
class Plain:
    lines: list
    writes: set
    reads: set
    view: bool = False  # a view no loop needs once the loops read through it


def _reads_names(item) -> set:
    return ({nm for nm, _ in item.reads} | item.pre_reads) if isinstance(item, Nest) else item.reads


def _writes(item) -> set:
    return item.writes() if isinstance(item, Nest) else item.writes


def can_hop(nest: Nest, plain: Plain) -> bool:
    """Whether `nest` may run before the statement `plain` (which comes first)."""
    return not (plain.writes & _reads_names(nest)) and not (nest.writes() & (plain.reads | plain.writes))


def can_fuse(a: Nest, b: Nest) -> bool:
    """Whether nest b's statements may run inside nest a's loops, after a's, index by index."""
    if a.space != b.space[: len(a.space)] or b.pre_reads & a.writes():
        return False
    for name, idx in b.reads:
        if name in a.sums or (name in a.maps and a.maps[name] != idx):
            return False
    for name in b.writes():
        if name in a.sums or any(nm == name and (name not in b.maps or idx != b.maps[name]) for nm, idx in a.reads):
            return False
        if name in b.sums and any(nm == name for nm, _ in a.reads):
            return False
    return True


def inner(nest: Nest, depth: int, vars_) -> list:
    """nest's body statements inside its loops past `depth` (to run inside a shallower nest)."""
    extra = tuple((vars_[d], nest.space[d]) for d in range(depth, len(nest.space)))
    return [(t, nt, extra + loops) for t, nt, loops in nest.body]


def fuse(items: list, vars_) -> list:
    """The items with each nest fused into an earlier one where `can_fuse` (see the module docstring)."""
    out: list = []
    for item in items:
        if isinstance(item, Nest):
            k = len(out) - 1
            while k >= 0 and isinstance(out[k], Plain) and can_hop(item, out[k]):
                k -= 1
            if k >= 0 and isinstance(out[k], Nest) and can_fuse(out[k], item):
                a = out[k]
                a.pre += item.pre
                a.body += inner(item, len(a.space), vars_)
                a.maps.update(item.maps)
                a.sums |= item.sums
                a.reads |= item.reads
                a.pre_reads |= item.pre_reads
                continue
        out.append(item)
    return out


def render(item, vars_) -> list[str]:
    if not isinstance(item, Nest):
        return item.lines
    lines = ["    " + ln for ln in item.pre]
    indent = "    "
    for d, ext in enumerate(item.space):
        lines.append(f"{indent}for {vars_[d]} in range({ext}):")
        indent += "    "
    opened: tuple = ()  # the further loops the previous statement was in
    for text, note, loops in item.body:
        if loops != opened:
            for var, ext in loops:
                lines.append(f"{indent}for {var} in range({ext}):")
                indent += "    "
        else:
            indent += "    " * len(loops)
        opened = loops
        first, *more = text.split("\n")
        if note and not more and len(indent) + len(first) + 2 + len(note) <= LINE:
            lines.append(f"{indent}{first}  {note}")
        else:
            if note:
                lines.append(f"{indent}{note}")
            lines += [indent + ln for ln in [first, *more]]
        indent = indent[: len(indent) - 4 * len(loops)]
    return lines


def unused_views(items: list) -> list:
    """The items less the view statements that nothing after them reads (the loops read through them)."""
    out, later = [], set()
    for item in reversed(items):
        if isinstance(item, Plain) and item.view and not (item.writes & later):
            continue
        if not isinstance(item, Section):
            later |= _reads_names(item)
        out.append(item)
    return out[::-1]
