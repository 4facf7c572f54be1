"""Issue 9 item 5 (IR side): one-output layers, model lines and operand names on backward lines.

Each case says what it checks; numbers are checked against the interpreter (bit
for bit where a fold promises it) or the engine-checked goldens' modules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gradgen.autodiff import comments
from gradgen.ir.graph import Builder, Node, Origin
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import Op
from gradgen.passes import fold

ROOT = Path(__file__).resolve().parent.parent


def _backward(path: Path) -> list[str]:
    """The code lines (comments joined to the line they precede) of every `# backward` section."""
    out, on, pending = [], False, ""
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith(" "):  # the function ended (a def, a table, ...)
            on = False
        elif line.strip() == "# backward":
            on = True
        elif on and (line.strip().startswith("return") or line.strip() == "# update"):
            on = False  # (a return may span lines: newton's Hessian; a step's update follows its backward)
        elif on and line.strip().startswith("# "):
            pending = line
        elif on and line.strip():
            out.append(line + pending)
            pending = ""
    return out


def test_every_backward_line_names_its_model_line():
    """Every backward statement of every generated example carries `[file.py:NN]` (its own or the
    comment line above it): weight gradients, the L2 lines and the gathers included."""
    for path in sorted((ROOT / "generated").glob("*.py")):
        lines = _backward(path)
        assert lines, path
        for line in lines:
            assert re.search(r"\[\w+\.py:\d+\]", line), f"{path.name}: {line}"


def test_moons_last_layer_is_like_the_others():
    """moons' one-output layer: z2 = h1 @ W2.T + b2, score = z2[:, 0], g_W2 = g_z2.T @ h1; no gathers."""
    text = (ROOT / "generated" / "moons.py").read_text()
    assert "z2 = h1 @ W2.T + b2" in text and "score = z2[:, 0]" in text
    assert "g_W2 = g_z2.T @ h1" in text
    assert "W2_0" not in text and "b2_0" not in text and "ndmin" not in text


def test_l2_comment_names_the_parameter():
    """x * x's one line reads `mul: d(W0 * W0)/dW0 = 2 * W0`, not 'both arguments are x'."""
    text = (ROOT / "generated" / "moons.py").read_text()
    assert "# mul: d(W0 * W0)/dW0 = 2 * W0   [moons.py:48]" in text
    assert "both arguments" not in text
    assert "# matmul: d(h1 @ W2.T)/dW2 = g.T @ h1   [moons.py:35]" in text


def test_fill_uses_terms_and_falls_back_to_letters():
    """comments.fill: terms (args, then the forward node) fill {a} {b} {x} {out}; without terms, or
    where name_of gives None, the letters stay."""
    names = {3: "h1", 4: "W2", 5: "z2"}
    node = Node(9, Op.MUL, rule="x", terms=(3, 4, 5))
    assert comments.fill("d({a} @ {b}.T)/d{a} -> {out}", node, names.get) == "d(h1 @ W2.T)/dh1 -> z2"
    unary = Node(9, Op.MUL, rule="x", terms=(3, 5))
    assert comments.fill("1 - {out}**2 at {x}", unary, names.get) == "1 - z2**2 at h1"
    assert comments.fill("d({a} + {b})/d{b}", Node(9, Op.ADD), names.get) == "d(a + b)/db"
    assert comments.fill("d({a} + {b})/d{b}", node, {3: "h1"}.get) == "d(h1 + b)/db"


def test_fold_outer_product_is_a_broadcast_multiply():
    """a @ c with a (3, 1) and c (1, 4) becomes a * c, bit for bit (one product per element)."""
    b = Builder("f")
    a = b.add(Op.INPUT, (), name="a", origin=Origin("arg", "a"), shape=(3, 1))
    c = b.add(Op.INPUT, (), name="c", origin=Origin("arg", "c"), shape=(1, 4))
    m = b.add(Op.MATMUL, (a, c))
    g = b.build([a, c], [("value", b.add(Op.SUM, (m,), (0, 1)))])
    after = fold(g)
    assert [n.op for n in after.nodes if n.op in (Op.MATMUL, Op.MUL)] == [Op.MUL]
    rng = np.random.RandomState(1)
    args = [rng.randn(3, 1) * 1e150, rng.randn(1, 4) * 1e-160]
    assert evaluate(g, args)["value"] == evaluate(after, args)["value"]


def test_fold_keeps_a_real_matmul():
    """Negative: (3, 2) @ (2, 4) has sums in it: no rewrite."""
    b = Builder("f")
    a = b.add(Op.INPUT, (), name="a", origin=Origin("arg", "a"), shape=(3, 2))
    c = b.add(Op.INPUT, (), name="c", origin=Origin("arg", "c"), shape=(2, 4))
    m = b.add(Op.MATMUL, (a, c))
    g = b.build([a, c], [("value", b.add(Op.SUM, (m,), (0, 1)))])
    assert [n.op for n in fold(g).nodes if n.op in (Op.MATMUL, Op.MUL)] == [Op.MATMUL]
