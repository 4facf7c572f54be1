"""Learner-style models (tests/learners/): each compiles, and `gradgen check` passes on it.

These are the models a new user writes first -- the lecture's neuron with its
labels and hand-written tanh, a global `nn.Neuron` called on scalar
arguments, ReLUs sitting on their kink (zero biases, zero inputs), dead
units, a one-example list loss with L2 over one layer, logistic regression
with `gradgen.mean`, a Module that overrides only `parameters()`, keyword
defaults -- and every one of them is correct, so `check` must say PASS
(no false alarms).  `check` compares with the engine, PyTorch where it runs,
and finite differences, so a PASS here is three oracles agreeing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gradgen.cli import main

MODELS = sorted((Path(__file__).parent / "learners").glob("*.py"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_learner_model_compiles_and_checks(model, tmp_path, capsys):
    assert main(["compile", str(model), "-o", str(tmp_path)]) == 0, capsys.readouterr().err
    assert (tmp_path / model.name).exists()
    code = main(["check", str(model), "--points", "3"])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "check passed" in out.out
