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
        pairs = list(zip(("a", "b"), args)) + [("x", args[0])] if args else []
        for key, i in pairs:
            words[key] = name_of(i) or words[key]
        words["out"] = name_of(out) or words["out"]
    try:
        return template.format(**words)
    except (KeyError, IndexError, ValueError):
        return template  # a template with literal braces: shown as written


def note(node, name_of=None, nodes=None) -> str:
    """`# <rule comment>   [model.py:LINE]` for a backward node, "" for a forward one."""
    if node.rule is None:
        return ""
    text = fill(node.rule, node, name_of, nodes)
    if node.loc is not None:
        text += f"   [{node.loc.short()}]"
    return "# " + comment_text(text)
