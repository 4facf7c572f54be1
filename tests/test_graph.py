"""`gradgen graph`: the lecture's `draw_dot` picture, with the lecture's numbers.

The DOT text is parsed back (record labels `{ name | data D | grad G }`),
and, where Graphviz's `dot` is installed, so is the SVG it renders.  Bad
input is one line on stderr, exit status 1, and no file written or changed.
"""

import os
import re
import shutil
import time
import xml.etree.ElementTree as ET

import pytest

from gradgen.tools import draw
from gradgen.cli import main

pytest.importorskip("graphviz", reason="gradgen graph needs the graphviz package: pip install -e '.[graph]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEURON = os.path.join(ROOT, "examples", "neuron.py")
ACTIVATIONS = os.path.join(ROOT, "examples", "activations.py")
DECAY = os.path.join(ROOT, "benchmarks", "decay_loop.py")
HAVE_DOT = shutil.which("dot") is not None

# the lecture's draw_dot(o) at b = 6.8813735870195432
LECTURE = {
    "x1": ("2.0000", "-1.5000"),
    "x2": ("0.0000", "0.5000"),
    "w1": ("-3.0000", "1.0000"),
    "w2": ("1.0000", "0.0000"),
    "b": ("6.8814", "0.5000"),
    "x1w1": ("-6.0000", "0.5000"),
    "x2w2": ("0.0000", "0.5000"),
    "x1w1x2w2": ("-6.0000", "0.5000"),
    "n": ("0.8814", "0.5000"),
    "o": ("0.7071", "1.0000"),
}
RECORD = re.compile(r'(\w+) \[label="\{ (\S+) \| data (\S+) \| grad (\S+) \}"')


def run(capsys, *argv):
    rc = main(["graph", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def records(dot_text: str) -> dict[str, tuple[str, str]]:
    return {name: (data, grad) for _, name, data, grad in RECORD.findall(dot_text)}


def test_neuron_dot_has_the_lectures_numbers(capsys, tmp_path):
    out_file = tmp_path / "neuron.dot"
    rc, out, err = run(capsys, NEURON, "-o", str(out_file))
    assert rc == 0, err
    assert out.startswith(f"wrote {out_file} (neuron, forward, at the example point x1=2.0,")
    text = out_file.read_text()
    assert "rankdir=LR" in text
    assert records(text) == LECTURE
    ops = re.findall(r'(op\d+) \[label="?([^"\]]+)"?\]', text)
    assert sorted(label for _, label in ops) == ["*", "*", "+", "+", "tanh"]
    # each op sits between its inputs and its output: x1 -> * -> x1w1
    ids = {name: vid for vid, name, *_ in RECORD.findall(text)}
    (mul,) = re.findall(rf"{ids['x1']} -> (op\d+)", text)
    assert f"{mul} -> {ids['x1w1']}" in text and f"{ids['w1']} -> {mul}" in text


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")
def test_neuron_svg_shows_the_lectures_numbers(capsys, tmp_path):
    out_file = tmp_path / "neuron.svg"
    rc, out, err = run(capsys, NEURON, "-o", str(out_file))
    assert rc == 0, err
    ns = {"svg": "http://www.w3.org/2000/svg"}
    shown = {}
    for g in ET.parse(out_file).getroot().iter("{http://www.w3.org/2000/svg}g"):
        if g.get("class") == "node":
            texts = [t.text for t in g.findall("svg:text", ns)]
            if len(texts) == 3:
                shown[texts[0]] = (texts[1], texts[2])
    assert shown == {name: (f"data {d}", f"grad {g}") for name, (d, g) in LECTURE.items()}


def test_backward_graph_marks_adjoints_and_reused_values(capsys, tmp_path):
    out_file = tmp_path / "neuron_grad.dot"
    rc, out, err = run(capsys, NEURON, "--backward", "-o", str(out_file))
    assert rc == 0, err
    text = out_file.read_text()
    assert records(text) == LECTURE  # the forward half, as before
    adjoints = dict(re.findall(r'label="\{ (g_\w+) \| (\S+) \}"[^\]]*fillcolor', text))
    assert adjoints == {
        "g_n": "0.5000",
        "g_b": "0.5000",
        "g_x1w1x2w2": "0.5000",
        "g_x1w1": "0.5000",
        "g_x2w2": "0.5000",
        "g_x1": "-1.5000",
        "g_x2": "0.5000",
        "g_w1": "1.0000",
        "g_w2": "0.0000",
    }
    # tanh's rule reuses the forward o: a dashed blue edge from o into the backward pass
    o_id = re.search(r'(v\d+) \[label="\{ o \|', text).group(1)
    assert re.search(rf"{o_id} -> op\d+ \[color=\"#2f5fb3\" style=dashed\]", text)


def test_record_labels_are_escaped():
    assert draw.record_text('a{b}|<c>"d\\e\nf\x01') == 'a\\{b\\}\\|\\<c\\>\\"d\\\\e\\nf?'


def test_user_labels_cannot_break_the_dot_text(capsys, tmp_path):
    """A label full of DOT syntax still gives a valid file with sanitised names."""
    model = tmp_path / "weird.py"
    model.write_text(
        "import gradgen\n\n"
        "@gradgen.export(example=dict(x=0.5))\n"
        "def f(x):\n"
        "    y = x * 2\n"
        "    y.label = 'y } | <port> \"q\" \\\\ \\n]; digraph {'\n"
        "    return y.tanh()\n"
    )
    out_file = tmp_path / "weird.dot"
    rc, out, err = run(capsys, str(model), "-o", str(out_file))
    assert rc == 0, err
    text = out_file.read_text()
    assert [line for line in text.splitlines() if "digraph" in line and "label" not in line] == ["digraph f {"]
    assert "<port>" not in text and len(records(text)) == 3
    if HAVE_DOT:
        import subprocess

        done = subprocess.run(["dot", "-Tsvg", str(out_file)], capture_output=True)
        assert done.returncode == 0, done.stderr


def test_point_from_at(capsys, tmp_path):
    out_file = tmp_path / "p.dot"
    rc, out, err = run(capsys, ACTIVATIONS, "--function", "powers", "--at", "x=4", "-o", str(out_file))
    assert rc == 0, err
    # powers(4) = 64 - 32 + 2 - 0.25; d/dx = 48 - 16 + 0.25 + 0.0625
    assert records(out_file.read_text())["out"] == ("33.7500", "1.0000")
    assert records(out_file.read_text())["x"] == ("4.0000", "32.3125")


def test_large_graph_is_capped_and_fast(capsys, tmp_path):
    """15,000 nodes: the 400 nearest the output are drawn, with one summary node, in seconds."""
    out_file = tmp_path / ("decay.svg" if HAVE_DOT else "decay.dot")
    t0 = time.perf_counter()
    rc, out, err = run(capsys, DECAY, "-o", str(out_file))
    seconds = time.perf_counter() - t0
    assert rc == 0, err
    assert seconds < 15, seconds
    assert "drew the 400 of 15002 values nearest the output" in out
    if not HAVE_DOT:
        text = out_file.read_text()
        assert len(RECORD.findall(text)) == 400
        assert "\u2026 14602 more nodes" in text
    else:
        assert "\u2026 14602 more nodes" in out_file.read_text(encoding="utf-8")


def test_small_cap_keeps_the_nodes_nearest_the_output(capsys, tmp_path):
    """--max-nodes 3: the three values nearest o, and one box for the other seven."""
    out_file = tmp_path / "n.dot"
    rc, out, err = run(capsys, NEURON, "--max-nodes", "3", "-o", str(out_file))
    assert rc == 0, err
    # breadth first from o: o, then tanh's argument n, then n's first argument
    assert set(records(out_file.read_text())) == {"o", "n", "x1w1x2w2"}
    assert "\u2026 7 more nodes" in out_file.read_text()
    assert out.startswith("drew the 3 of 10 values nearest the output")


def test_without_dot_the_dot_text_is_written_and_the_run_fails(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    out_file = tmp_path / "neuron.svg"
    rc, out, err = run(capsys, NEURON, "-o", str(out_file))
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1
    assert "apt-get install graphviz" in err and "neuron.dot" in err
    assert not out_file.exists()
    assert records((tmp_path / "neuron.dot").read_text()) == LECTURE


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/no/such/model.py"], "no such file"),
        ([NEURON, "--at", "x1=2;x2=0"], "bad --at"),
        ([NEURON, "--at", "x1=2"], "no value for x2, w1, w2, b"),
        ([NEURON, "--at", "x1=2,x2=0,w1=-3,w2=1,b=1,c=2"], "has no argument c"),
        ([ACTIVATIONS], "pick one with --function NAME"),
        ([ACTIVATIONS, "--function", "powers", "--at", "x=0"], "pick a point inside the domain with --at"),
        ([ACTIVATIONS, "--function", "powers", "--at", "x=-1"], "not a real number"),
        ([NEURON, "--max-nodes", "0"], "--max-nodes must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_touches_nothing(capsys, tmp_path, argv, expected):
    out_file = tmp_path / "out.svg"
    out_file.write_text("old")
    rc, out, err = run(capsys, *argv, "-o", str(out_file))
    assert rc == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("gradgen: error: "), err
    assert expected in err
    assert out_file.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.svg"]


def test_unknown_output_extension(capsys, tmp_path):
    rc, out, err = run(capsys, NEURON, "-o", str(tmp_path / "neuron.txt"))
    assert rc == 1 and "end the -o file in one of .dot .gv .svg .png .pdf" in err
    assert os.listdir(tmp_path) == []


def test_no_example_asks_for_at(capsys, tmp_path):
    model = tmp_path / "noex.py"
    model.write_text("import gradgen\n\n@gradgen.export\ndef f(x):\n    return x.exp()\n")
    rc, out, err = run(capsys, str(model), "-o", str(tmp_path / "f.dot"))
    assert rc == 1 and "noex.py:3: f(x) has no example point; give one with --at" in err
    assert sorted(os.listdir(tmp_path)) == ["noex.py"]
