"""The demos in examples/, run as a user runs them: `main([...])`, its printout parsed.

* examples/moons.py (micrograd's demo.ipynb): step 0 loss is micrograd's
  0.8958441028683222 (interpreted, exactly; compiled, to 1e-12), both engines
  print the same losses and accuracies to 1e-9 at every step, full batch and
  minibatch, and the decision-boundary PNG is written.  The compiled 100-step
  run reaches 100% accuracy, as micrograd's demo does.
* examples/lecture_mlp.py (the lecture's tiny MLP): both engines agree.

Each run loads the example afresh (its module-level model is trained in
place by `main`, and `random.seed(1337)` at import time fixes its initial
weights).  The interpreted 100-step moons run takes minutes: it runs only
with GRADGEN_SLOW=1.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
MOONS = ROOT / "examples" / "moons.py"
LECTURE = ROOT / "examples" / "lecture_mlp.py"
MICROGRAD_STEP0 = 0.8958441028683222  # micrograd's demo.ipynb, step 0
PNG = b"\x89PNG\r\n\x1a\n"

_loaded = 0


def fresh(path: Path):
    """A new instance of the example module (a fresh model at its seeded initial weights)."""
    global _loaded
    _loaded += 1
    spec = importlib.util.spec_from_file_location(f"_demo_{path.stem}_{_loaded}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MOONS_LINE = re.compile(r"step (\d+) loss (\S+), accuracy (\S+)%")
LECTURE_LINE = re.compile(r"step (\d+) loss (\S+)")


def run(path: Path, argv: list[str], capsys, pattern) -> list[tuple]:
    """main(argv) of a fresh example module; its `step` lines as (k, loss[, accuracy])."""
    np.random.seed(0)  # main reseeds itself (make_data); this only makes the test independent of order
    capsys.readouterr()
    fresh(path).main(argv)
    out = capsys.readouterr().out
    rows = [m.groups() for m in map(pattern.fullmatch, out.splitlines()) if m]
    assert rows, out
    return [(int(g[0]),) + tuple(float(x) for x in g[1:]) for g in rows]


def assert_engines_agree(compiled, interpreted, rel: float = 1e-9):
    assert [r[0] for r in compiled] == [r[0] for r in interpreted]
    for c, i in zip(compiled, interpreted):
        for a, b in zip(c[1:], i[1:]):
            assert math.isclose(a, b, rel_tol=rel), f"step {c[0]}: compiled {c} vs interpreted {i}"


# -- moons ----------------------------------------------------------------------------------------


def test_moons_both_engines_three_steps(capsys, tmp_path):
    """3 full-batch steps: micrograd's step 0 loss, the same losses and accuracies on both engines, a PNG."""
    results = {}
    for engine in ("compiled", "interpreted"):
        plot = tmp_path / f"{engine}.png"
        results[engine] = run(MOONS, ["--steps", "3", "--engine", engine, "--plot", str(plot)], capsys, MOONS_LINE)
        assert [r[0] for r in results[engine]] == [0, 1, 2]
        assert plot.read_bytes()[:8] == PNG
    assert results["interpreted"][0][1] == MICROGRAD_STEP0
    assert math.isclose(results["compiled"][0][1], MICROGRAD_STEP0, rel_tol=1e-12)
    assert results["compiled"][0][2] == 50.0
    assert_engines_agree(results["compiled"], results["interpreted"])


def test_moons_minibatches_agree(capsys):
    """--batch-size 10: both engines draw the same minibatches (main reseeds np.random) and agree at each step."""
    argv = ["--steps", "3", "--batch-size", "10", "--plot", ""]
    compiled = run(MOONS, argv + ["--engine", "compiled"], capsys, MOONS_LINE)
    interpreted = run(MOONS, argv + ["--engine", "interpreted"], capsys, MOONS_LINE)
    assert len(compiled) == 3
    assert_engines_agree(compiled, interpreted)
    # a minibatch is not the full batch: step 0 differs from the full-batch loss
    assert not math.isclose(compiled[0][1], MICROGRAD_STEP0, rel_tol=1e-6)


def test_moons_compiled_100_steps_reaches_100_percent(capsys, tmp_path):
    """The default run (100 steps, compiled) ends at 100% accuracy, like micrograd's demo."""
    plot = tmp_path / "moons.png"
    rows = run(MOONS, ["--plot", str(plot)], capsys, MOONS_LINE)
    assert [r[0] for r in rows] == list(range(100))
    assert math.isclose(rows[0][1], MICROGRAD_STEP0, rel_tol=1e-12)
    assert rows[-1][2] == 100.0
    assert rows[-1][1] < 0.05
    assert plot.read_bytes()[:8] == PNG


@pytest.mark.skipif(
    os.environ.get("GRADGEN_SLOW") != "1", reason="minutes on the interpreted engine; GRADGEN_SLOW=1 runs it"
)
def test_moons_interpreted_100_steps_matches_compiled(capsys):
    """The interpreted 100-step run prints the compiled run's numbers (to 1e-9) and ends at 100%."""
    compiled = run(MOONS, ["--plot", ""], capsys, MOONS_LINE)
    interpreted = run(MOONS, ["--plot", "", "--engine", "interpreted"], capsys, MOONS_LINE)
    assert interpreted[-1][2] == 100.0
    assert_engines_agree(compiled, interpreted)


# -- the lecture's MLP ------------------------------------------------------------------------------


def test_lecture_mlp_both_engines_agree(capsys):
    """5 steps of the lecture's 3-4-4-1 tanh MLP: the same losses on both engines, and the loss goes down."""
    compiled = run(LECTURE, ["--steps", "5"], capsys, LECTURE_LINE)
    interpreted = run(LECTURE, ["--steps", "5", "--engine", "interpreted"], capsys, LECTURE_LINE)
    assert [r[0] for r in compiled] == list(range(5))
    assert_engines_agree(compiled, interpreted)
    assert compiled[-1][1] < compiled[0][1]
