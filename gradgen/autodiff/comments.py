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
    used, words = _plan(template)  # only what the template shows is looked up
    words = dict(words)
    terms = node.terms
    if terms:
        if nodes is not None and ("k" in used or "k1" in used):
            k = nodes[terms[-1]].attr
            if isinstance(k, (int, float)) and not isinstance(k, bool):
                words["k"], words["k1"] = _number(k), _number(k - 1)
        if name_of is not None:
            if len(terms) > 1:  # the forward arguments, then the forward node
                if "a" in used:
                    words["a"] = name_of(terms[0]) or "a"
                if "b" in used and len(terms) > 2:
                    words["b"] = name_of(terms[1]) or "b"
                if "x" in used:
                    words["x"] = name_of(terms[0]) or "x"
            if "out" in used:
                words["out"] = name_of(terms[-1]) or "out"
    try:
        return template.format_map(words)
    except (KeyError, IndexError, ValueError):
        return template  # a template with literal braces: shown as written


@functools.lru_cache(maxsize=None)
def _plan(template: str) -> tuple[frozenset, dict]:
    """(the placeholders `template` shows, their letters) when each is a plain `{name}` from
    LETTERS; else every placeholder (the template is filled as given, or shown as written)."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError:
        fields = None
    if fields is not None and all(f in LETTERS and not spec and conv is None for f, spec, conv in fields):
        used = frozenset(f for f, _, _ in fields)
    else:
        used = frozenset(LETTERS)
    return used, {key: LETTERS[key] for key in used}


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
