"""The shortcuts compile speed added (issue #11) give what the general code gives.

* `names.sanitize` returns a plain name as is: for every hint the shortcut takes,
  the full rules (`names._rules`) return the same name; hostile hints are not taken.
* `names.comment_text` returns printable ASCII as is: the same as the per-character rule.
* `comments.fill` looks up only the operands a template shows: the same text as
  filling every placeholder, a template with literal braces shown as written.
* `CompiledModule` executes its text on first use only, and then computes the engine's numbers.
"""

from __future__ import annotations

import copy

import pytest

import gradgen
from gradgen import names
from gradgen.autodiff import comments
from gradgen.engine import Value
from gradgen.ir.graph import Node
from gradgen.ir.ops import Op

HINTS = [
    "x", "x_1", "g_x_12", "W0", "a_b", "sq_norm", "inv_B", "lambda", "list", "print", "np", "math",
    "_x", "x_", "x__y", "__init__", "1x", "x1", "a" * 24, "a" * 25, "é", "α", "x y", "x-1", "",
    "g_" + "w" * 30, "match", "case", "None", "True", "B", "v", "c_3",
]  # fmt: skip


@pytest.mark.parametrize("hint", HINTS)
def test_sanitize_shortcut_agrees_with_the_rules(hint):
    assert names.sanitize(hint) == names._rules(hint, "v")
    if names._plain(hint) and hint:
        assert names.sanitize(hint) == hint


def test_sanitize_shortcut_refuses_what_the_rules_change():
    changed = [h for h in HINTS if h and names._rules(h, "v") != h]
    assert changed  # the list has hints the rules rewrite ...
    assert not any(names._plain(h) for h in changed)  # ... and the shortcut takes none of them


@pytest.mark.parametrize("text", ["tanh: 1 - x**2   [m.py:3]", "a\nb", "tab\t", "ü", "~ ok", "\x7f", ""])
def test_comment_text_shortcut(text):
    assert names.comment_text(text) == "".join(c if " " <= c <= "~" else "?" for c in text)


def _fill_everything(template, node, name_of, nodes):
    """The rule as it was: every placeholder filled, then formatted."""
    words = dict(comments.LETTERS)
    k = nodes[node.terms[-1]].attr
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        words["k"], words["k1"] = comments._number(k), comments._number(k - 1)
    *args, out = node.terms
    for key, i in list(zip(("a", "b"), args)) + [("x", args[0])]:
        words[key] = name_of(i) or words[key]
    words["out"] = name_of(out) or words["out"]
    try:
        return template.format(**words)
    except (KeyError, IndexError, ValueError):
        return template


TEMPLATES = [
    "mul: d({a} * {b})/d{a} = {b}", "tanh: 1 - {out}**2", "pow: {k} * {x}**{k1}", "add: 1",
    "odd {", "literal {{braces}} {a}", "{0} positional", "{a!r} converted", "{a:>5} spec", "{zz} unknown",
]  # fmt: skip


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("arity", [1, 2])
def test_fill_looks_up_only_what_it_shows(template, arity):
    nodes = [Node(0, Op.INPUT, name="p"), Node(1, Op.INPUT, name="q"), Node(2, Op.POW, (0,), 3)]
    terms = (0, 1, 2) if arity == 2 else (0, 2)
    node = Node(3, Op.MUL, (0,), rule=template, terms=terms)

    def name_of(i):
        return None if i == 1 else f"n{i}"

    want = _fill_everything(template, node, name_of, nodes)
    assert comments.fill(template, node, name_of, nodes) == want


def test_fill_names_only_the_operands_shown():
    nodes = [Node(0, Op.INPUT, name="p"), Node(1, Op.INPUT, name="q"), Node(2, Op.MUL, (0, 1))]
    asked = []

    def name_of(i):
        asked.append(i)
        return f"n{i}"

    for template, want, looked_up in [
        ("add: 1", "add: 1", []),
        ("tanh: 1 - {out}**2", "tanh: 1 - n2**2", [2]),
        ("mul: d({a} * {b})/d{b} = {a}", "mul: d(n0 * n1)/dn1 = n0", [0, 1]),
    ]:
        asked.clear()
        node = Node(3, Op.MUL, (0,), rule=template, terms=(0, 1, 2))
        assert comments.fill(template, node, name_of, nodes) == want
        assert sorted(asked) == looked_up


def neuron(x1, x2, w1, w2, b):
    return (x1 * w1 + x2 * w2 + b).tanh()


def test_module_is_executed_on_first_use():
    mod = gradgen.compile_function(neuron)
    assert mod._module is None  # compiled, not yet executed
    copy.copy(mod)  # dunder lookups (copy, pickle) do not execute it either
    assert mod._module is None
    xs = [Value(v) for v in (2.0, 0.0, -3.0, 1.0, 6.8813735870195432)]
    out = neuron(*xs)
    out.backward()
    value, grads = mod.neuron_grad(2.0, 0.0, -3.0, 1.0, 6.8813735870195432)
    assert mod._module is not None and mod.module is mod._module
    assert value == pytest.approx(out.data, abs=1e-15)
    assert grads == pytest.approx([v.grad for v in xs], abs=1e-15)
