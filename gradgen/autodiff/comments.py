"""The comment on an emitted backward line: which rule, on which operands, from which model line.

A rule's comment is a template from the op registry, written with
placeholders for the forward operation's operands: `{a}` and `{b}` (binary
ops), `{x}` (unary ops), `{out}` (the forward result), `{k}` (the attribute,
e.g. pow's exponent) and `{k1}` (`k - 1`).  Reverse mode records on each
backward node the forward nodes that fill them (`Node.terms`: the forward
arguments, then the forward node itself); the backend passes `name_of`, which
gives the emitted name (or a short expression) of a forward node, so the
comment reads `mul: d(W0 * W0)/dW0 = 2 * W0` rather than `d(a * b)/da`.
Without terms (or where `name_of` gives None: an operand with no short
name) the placeholders print as their own letters.

Every piece goes through `names.comment_text` (one line, no control
characters): a user's label never reaches the code raw.
"""

from __future__ import annotations

import functools
import string

from gradgen.names import comment_text

LETTERS = {"a": "a", "b": "b", "x": "x", "out": "out", "k": "k", "k1": "k - 1"}


def _number(k) -> str:
    """An exponent as the comment shows it: `2`, `-1`, `0.5` (never a subclass's own repr)."""
    k = float(k)
    return int.__repr__(int(k)) if k.is_integer() and abs(k) < 2**53 else float.__repr__(k)


def fill(template: str, node, name_of=None, nodes=None) -> str:
    """The template with its placeholders replaced (see the module docstring); with the graph's
    `nodes`, `{k}` and `{k1}` are the forward node's attribute (pow's exponent) and k - 1."""
    words = dict(LETTERS)
    terms = node.terms
    if terms and nodes is not None:
        k = nodes[terms[-1]].attr
        if isinstance(k, (int, float)) and not isinstance(k, bool):
            words["k"], words["k1"] = _number(k), _number(k - 1)
    if terms and name_of is not None:
        *args, out = terms
        used = _placeholders(template)  # name only the operands the template shows
        if args:
            pairs = (("a", args[0]), ("b", args[1]), ("x", args[0])) if len(args) > 1 else (("a", args[0]), ("x", args[0]))
            for key, i in pairs:
                if key in used:
                    words[key] = name_of(i) or words[key]
        if "out" in used:
            words["out"] = name_of(out) or words["out"]
    try:
        return template.format(**words)
    except (KeyError, IndexError, ValueError):
        return template  # a template with literal braces: shown as written


@functools.lru_cache(maxsize=None)
def _placeholders(template: str) -> frozenset:
    """The placeholders `template` uses (every one of LETTERS where it is not a plain template)."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:
        return frozenset(LETTERS)
    return frozenset(fields) if fields <= LETTERS.keys() else frozenset(LETTERS)


@functools.lru_cache(maxsize=None)
def _where(loc) -> str:
    return f"   [{loc.short()}]"


def note(node, name_of=None, nodes=None) -> str:
    """`# <rule comment>   [model.py:LINE]` for a backward node, "" for a forward one."""
    if node.rule is None:
        return ""
    text = fill(node.rule, node, name_of, nodes)
    if node.loc is not None:
        text += _where(node.loc)
    return "# " + comment_text(text)
