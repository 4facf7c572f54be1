"""The progress line of long compiles (gradgen.progress), and the moons demo's --progress.

A fake clock and a fake terminal drive the reporter (no sleeping): silent for
the first seconds, then `gradgen: FILE: PHASE NAME, N nodes, T s` redrawn in
place with `\\r` and cleared at the end; nothing when stderr is no terminal or
with `--quiet`.  The node count while tracing is read live from the trace in
progress.  The moons demo writes no escape codes or carriage returns into a log.
"""

from __future__ import annotations

import importlib.util
import io
import threading
from pathlib import Path

import pytest

import gradgen
from gradgen import progress
from gradgen.cli import main

ROOT = Path(__file__).resolve().parents[1]
NEURON = ROOT / "examples" / "neuron.py"


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_silent_before_the_delay_then_one_line_redrawn_in_place_and_cleared():
    clock, tty = Clock(), FakeTTY()
    r = progress.Reporter("moons.py", tty, clock=clock, delay=2.0, width=200)
    r.phase("tracing loss", 123_456)
    clock.t += 1.9
    r.tick()
    assert tty.getvalue() == "", "drew a line before the delay"
    clock.t += 1.3
    r.tick()
    assert tty.getvalue() == "\rgradgen: moons.py: tracing loss, 123,456 nodes, 3.2 s"
    r.phase("formatting (black)")  # a new phase redraws at once; the shorter line covers the longer one
    first = len("gradgen: moons.py: tracing loss, 123,456 nodes, 3.2 s")
    second = "gradgen: moons.py: formatting (black), 3.2 s"
    assert tty.getvalue().endswith("\r" + second.ljust(first))
    r.close()
    assert tty.getvalue().endswith("\r" + " " * first + "\r")
    screen = tty.getvalue().split("\r")[-1]
    assert screen == "", "the line was not cleared"


def test_quick_builds_print_nothing_at_all():
    clock, tty = Clock(), FakeTTY()
    r = progress.Reporter("neuron.py", tty, clock=clock, delay=2.0)
    r.phase("tracing neuron", 10)
    clock.t += 0.5
    r.tick()
    r.close()
    assert tty.getvalue() == ""


def test_line_never_wraps():
    clock, tty = Clock(), FakeTTY()
    r = progress.Reporter("a" * 200 + ".py", tty, clock=clock, delay=0.0, width=60)
    r.tick()
    assert len(tty.getvalue()) == 1 + 59


def test_node_count_is_read_live_while_tracing():
    """tracing_nodes() (the count the thread draws) grows while the trace is being recorded."""
    seen = []

    @gradgen.export
    def f(x):
        y = x
        for _ in range(5):
            y = y * x
            seen.append(progress.tracing_nodes())
        return y

    assert progress.tracing_nodes() is None
    gradgen.compile_function(f)
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] >= seen[0] + 4, seen
    assert progress.tracing_nodes() is None


def test_the_thread_draws_on_a_terminal_only():
    """reporting(): a daemon thread draws on a terminal; on a pipe there is no reporter at all."""
    assert progress.reporting("x.py", io.StringIO()).reporter is None
    tty = FakeTTY()
    drawn = threading.Event()
    with progress.reporting("x.py", tty, interval=0.001, delay=0.0) as r:
        real_tick = r.tick

        def tick():
            real_tick()
            drawn.set()

        r.tick = tick
        progress.phase("tracing f", 3)
        assert drawn.wait(10), "the thread never drew"
    assert progress._current is None
    assert tty.getvalue().startswith("\rgradgen: x.py: ")
    assert tty.getvalue().split("\r")[-1] == ""


def compile_with_stderr(monkeypatch, tmp_path, stream, *extra):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.001)
    monkeypatch.setattr("sys.stderr", stream)
    rc = main(["compile", str(NEURON), "-o", str(tmp_path / "out"), *extra])
    monkeypatch.undo()
    return rc


def test_cli_progress_on_a_terminal(monkeypatch, tmp_path, capsys):
    tty = FakeTTY()
    assert compile_with_stderr(monkeypatch, tmp_path, tty) == 0
    text = tty.getvalue()
    assert "\rgradgen: " in text and "neuron.py: tracing neuron" in text, text
    assert "nodes" in text and "writing" in text, text
    assert text.split("\r")[-1] == "", "the line was not cleared"
    assert "\x1b" not in text
    assert capsys.readouterr().out.startswith("wrote ")


def test_cli_no_progress_with_quiet_or_without_a_terminal(monkeypatch, tmp_path, capsys):
    tty = FakeTTY()
    assert compile_with_stderr(monkeypatch, tmp_path, tty, "--quiet") == 0
    assert tty.getvalue() == ""
    assert capsys.readouterr().out == ""  # --quiet: no "wrote" line either
    pipe = io.StringIO()
    assert compile_with_stderr(monkeypatch, tmp_path, pipe) == 0
    assert pipe.getvalue() == ""


def test_progress_line_is_cleared_before_an_error(monkeypatch, tmp_path, capsys):
    model = tmp_path / "bad.py"
    model.write_text("import gradgen\n\n\n@gradgen.export\ndef g(x):\n    return x / 0\n")
    tty = FakeTTY()
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr("sys.stderr", tty)
    rc = main(["compile", str(model), "-o", str(tmp_path / "out")])
    monkeypatch.undo()
    assert rc == 1
    text = tty.getvalue()
    assert "\rgradgen: " in text
    before, error = text.rsplit("\r", 1)
    assert error.startswith("gradgen: error: ") and error.count("\n") == 1, text


# -- the moons demo ----------------------------------------------------------------------------


def test_moons_progress_writes_no_escape_codes_into_a_log(capsys):
    """`python examples/moons.py --progress > log 2>&1`: the log has the step lines, no \\r or escapes."""
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("_moons_progress", ROOT / "examples" / "moons.py")
    moons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moons)
    moons.main(["--steps", "2", "--progress", "--plot", ""])
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("step 0 loss 0.89584410286832")
    assert "\r" not in out + err and "\x1b" not in out + err, repr(err)

