"""The `gradgen` command, run as a user runs it: in a subprocess (`python -m gradgen`).

Bad input: exit status 1, exactly one line on stderr, `gradgen: error: FILE[:LINE]: ...`,
saying what went wrong and what to do, no traceback (`--debug` shows one), and
nothing written: a module already in the output directory is left byte for byte,
and no temporary file is left behind.

Odd but legal input compiles to a module that imports and computes what the
interpreted engine computes: labels with quotes, newlines and keywords; NaN and
infinite constants; a division by zero at run time raises ZeroDivisionError, as
in the engine.  Also `--check`, `gradgen ir`, and determinism across hash seeds.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from gradgen import Value
from gradgen.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SENTINEL = (
    b"# a module written before the failed compile: it must survive byte for byte\n"
)


def gradgen(
    *args: str, cwd: Path, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradgen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- bad input ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    name: str
    source: str | None  # None: the file does not exist
    line: int | None  # the line the message must name (None: no line)
    wrong: str  # regex: what went wrong
    remedy: str  # regex: what to do


HEAD = "import gradgen\n\n\n@gradgen.export\n"  # the exported def is on line 5

BAD = [
    Bad("missing_file", None, None, r"no such file", r"give the path"),
    Bad(
        "syntax_error",
        HEAD + "def f(x):\n    return x +\n",
        6,
        r"syntax error",
        r"\bfix\b|\bcorrect\b",
    ),
    Bad(
        "raises_at_import",
        "import gradgen\n\nX = 1\nraise RuntimeError('boom')\n",
        4,
        r"RuntimeError: boom",
        r"\bfix\b|\bmake sure\b|\bguard\b|__main__",
    ),
    Bad(
        "failing_import",
        "import gradgen\nimport nonexistent_mod\n",
        2,
        r"nonexistent_mod",
        r"\binstall\b|\bfix\b|\bcheck\b",
    ),
    Bad(
        "no_export",
        "import gradgen\n\n\ndef f(x):\n    return x * 2\n",
        None,
        r"no exported function",
        r"@gradgen\.export",
    ),
    Bad(
        "pow_value_value",
        HEAD + "def f(x, y):\n    z = x * 2\n    return x**y\n",
        7,
        r"Value \*\* Value",
        r"\bwrite\b",
    ),
    Bad(
        "list_output",
        HEAD + "def f(x, y):\n    z = x * y\n    return [x, z]\n",
        7,
        r"returns a list",
        r"return one Value",
    ),
    Bad(
        "float_output",
        HEAD + "def f(x, y):\n    z = x * y\n    return 1.5\n",
        7,
        r"returns float",
        r"\breturn (a|one) Value\b|\bcompute the\b",
    ),
    Bad(
        "div_by_const_zero",
        HEAD + "def f(x):\n    y = x * 2\n    return y / 0.0\n",
        7,
        r"division by the constant zero",
        r"\bdivide by\b",
    ),
    Bad(
        "if_on_data",
        HEAD
        + "def f(x):\n    y = x * 2\n    if y.data > 0:\n        return y\n    return -y\n",
        7,
        r"\.data",
        r"compute both sides",
    ),
    Bad(
        "if_on_comparison",
        HEAD
        + "def f(x):\n    y = x * 2\n    if y > 0:\n        return y\n    return -y\n",
        7,
        r"comparison",
        r"compute both sides",
    ),
    Bad(
        "star_args",
        HEAD + "def f(*xs):\n    return xs[0] * 2\n",
        5,
        r"variadic positional parameter \(xs\)",
        r"fixed list of scalar arguments",
    ),
    Bad(
        "raises_while_tracing",
        HEAD + "def f(x):\n    y = x * 2\n    raise ValueError('bad model')\n",
        7,
        r"ValueError: bad model",
        r"\bfix\b|\bmake sure\b",
    ),
]
# models with parameters and array arguments (issue 3); the exported def is on line 9
AHEAD = (
    "import numpy as np\nimport gradgen\nfrom gradgen import nn\n\nmodel = nn.MLP(2, [3, 1])\n\n\n"
    "@gradgen.export(example=dict(X=np.zeros((2, 2)), y=np.zeros(2)))\n"
)
BAD += [
    Bad(
        "if_on_parameter_data",
        AHEAD + "def f(X, y):\n    s = 0.0\n    for p in model.parameters():\n        if p.data > 0:\n"
        "            s = s + p\n    return s\n",
        12,
        r"\.data of a parameter",
        r"compute both sides",
    ),
    Bad(
        "array_slice",
        AHEAD + "def f(X, y):\n    return model(X[:, 0])\n",
        10,
        r"indexed with integers \(got slice\)",
        r"loop over the elements",
    ),
    Bad(
        "array_as_a_value",
        AHEAD + "def f(X, y):\n    return model(X)\n",
        10,
        r"X is an array argument row of shape \(2,\)",
        r"index it|pass it to gradgen\.mean",
    ),
    Bad(
        "foreign_value",
        AHEAD.replace("model = nn", "w = gradgen.Value(2.0)\nmodel = nn").replace("(example", "(example", 1)
        + "def f(X, y):\n    return gradgen.mean(lambda x, yi: w * x[0] * yi, X, y)\n",
        11,
        r"neither an argument nor a parameter",
        r"pass it in as an argument",
    ),
    Bad(
        "indexed_and_batched",
        AHEAD + "def f(X, y):\n    a = X[0][0] * 2\n    return gradgen.mean(lambda x, yi: x[0] * yi, X, y) + a\n",
        11,
        r"indexed directly and also passed to gradgen\.mean",
        r"use one or the other",
    ),
    Bad(
        "mean_of_a_list",
        AHEAD + "def f(X, y):\n    return gradgen.mean(lambda x, yi: x[0] * yi, [[1.0, 2.0]], y)\n",
        10,
        r"gradgen\.mean needs whole array arguments",
        r"each with an array `example`",
    ),
]
BAD_IDS = [b.name for b in BAD]


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    """run(case, pre, post) -> (CompletedProcess, workdir) of `gradgen PRE compile model.py -o out POST`, memoised."""
    memo = {}

    def run(case: Bad, pre: tuple[str, ...] = (), post: tuple[str, ...] = ()):
        key = (case.name, pre, post)
        if key not in memo:
            work = tmp_path_factory.mktemp(case.name)
            if case.source is not None:
                (work / "model.py").write_text(case.source, encoding="utf-8")
            (work / "out").mkdir()
            (work / "out" / "model.py").write_bytes(SENTINEL)
            memo[key] = (
                gradgen(*pre, "compile", "model.py", "-o", "out", *post, cwd=work),
                work,
            )
        return memo[key]

    return run


def assert_nothing_written(work: Path):
    assert (
        work / "out" / "model.py"
    ).read_bytes() == SENTINEL, "the existing module was modified"
    assert sorted(os.listdir(work / "out")) == [
        "model.py"
    ], "files left in the output directory"


@pytest.mark.parametrize("case", BAD, ids=BAD_IDS)
def test_bad_input_is_one_line_and_writes_nothing(bad_run, case):
    """Exit 1, one `gradgen: error: model.py[:LINE]: ...` line, no traceback, output untouched."""
    r, work = bad_run(case)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    where = "model.py" if case.line is None else r"model.py:\d+"
    assert re.match(f"gradgen: error: {where}: ", lines[0]), lines[0]
    assert re.search(case.wrong, lines[0]), lines[0]
    assert "Traceback" not in r.stderr
    assert_nothing_written(work)


@pytest.mark.parametrize(
    "case",
    [b for b in BAD if b.line is not None],
    ids=[b.name for b in BAD if b.line is not None],
)
def test_bad_input_names_the_line(bad_run, case):
    """The line is the one that holds the problem (the def line for a bad signature)."""
    r, _ = bad_run(case)
    assert r.stderr.startswith(f"gradgen: error: model.py:{case.line}: "), r.stderr


@pytest.mark.parametrize("case", BAD, ids=BAD_IDS)
def test_bad_input_message_says_what_to_do(bad_run, case):
    """The one line also says what to do about it (STYLE.md: Errors)."""
    r, _ = bad_run(case)
    assert re.search(case.remedy, r.stderr, re.IGNORECASE), r.stderr


@pytest.mark.parametrize("case", BAD, ids=BAD_IDS)
def test_debug_shows_the_traceback_and_writes_nothing(bad_run, case):
    """`gradgen compile --debug` shows the traceback instead of the one line, and still writes nothing."""
    r, work = bad_run(case, post=("--debug",))
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr
    assert "GradgenError" in r.stderr or "TraceError" in r.stderr
    assert re.search(case.wrong, r.stderr)
    assert_nothing_written(work)


def test_debug_before_the_subcommand_shows_the_traceback(bad_run):
    """`gradgen --debug compile` (the top-level flag) shows the traceback too."""
    r, work = bad_run(BAD[BAD_IDS.index("div_by_const_zero")], pre=("--debug",))
    assert "Traceback (most recent call last)" in r.stderr, r.stderr
    assert_nothing_written(work)


def test_failed_compile_of_several_models_writes_none(tmp_path):
    """`compile good.py bad.py`: the good model's module is not written either."""
    (tmp_path / "good.py").write_text(HEAD + "def f(x):\n    return x * 2\n")
    (tmp_path / "bad.py").write_text(HEAD + "def g(x):\n    return x / 0\n")
    out = tmp_path / "out"
    out.mkdir()
    for stem in ("good", "bad"):
        (out / f"{stem}.py").write_bytes(SENTINEL)
    r = gradgen("compile", "good.py", "bad.py", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1
    assert (
        r.stderr.startswith("gradgen: error: bad.py:6: ") and r.stderr.count("\n") == 1
    ), r.stderr
    assert r.stdout == ""
    for stem in ("good", "bad"):
        assert (out / f"{stem}.py").read_bytes() == SENTINEL
    assert sorted(os.listdir(out)) == ["bad.py", "good.py"]


def test_ir_of_a_bad_model_is_one_line(tmp_path):
    """`gradgen ir` reports errors the same way."""
    (tmp_path / "model.py").write_text(HEAD + "def f(x, y):\n    return x**y\n")
    r = gradgen("ir", "model.py", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr.startswith("gradgen: error: model.py:6: ")
        and r.stderr.count("\n") == 1
    ), r.stderr


def test_ir_unknown_function_is_one_line():
    r = gradgen("ir", "examples/neuron.py", "--function", "nope", cwd=ROOT)
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr.startswith("gradgen: error: examples/neuron.py: ")
        and "'nope'" in r.stderr
    )
    assert r.stderr.count("\n") == 1


def test_exported_lambda_is_a_user_error(tmp_path):
    """An exported lambda has no usable name: a one-line error (or a sane name), never a traceback."""
    (tmp_path / "model.py").write_text(
        "import gradgen\n\nf = gradgen.export(lambda x: x * 2)\n"
    )
    r = gradgen("compile", "model.py", "-o", "out", cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode in (0, 1)
    if r.returncode == 1:
        assert (
            r.stderr.startswith("gradgen: error: model.py")
            and r.stderr.count("\n") == 1
        )


def test_sys_exit_while_tracing_is_a_user_error(tmp_path):
    """A model that calls sys.exit(3) while traced gets the one-line error, like one that raises."""
    (tmp_path / "model.py").write_text(
        "import sys\nimport gradgen\n\n\n@gradgen.export\ndef f(x):\n    sys.exit(3)\n"
    )
    r = gradgen("compile", "model.py", "-o", "out", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith("gradgen: error: model.py:7: "), r.stderr


def test_written_module_has_ordinary_permissions(tmp_path):
    """A new module is created like any file (0666 less the umask), not 0600."""
    shutil.copy(ROOT / "examples" / "neuron.py", tmp_path / "neuron.py")
    umask = os.umask(0o022)
    os.umask(umask)
    r = gradgen("compile", "neuron.py", "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mode = stat.S_IMODE((tmp_path / "out" / "neuron.py").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)


# -- odd but legal ----------------------------------------------------------------------

ODD = dedent('''
    import gradgen


    @gradgen.export
    def labels(x, y):
        a = x * y
        a.label = 'he said "hi"\\nimport os; os.system("echo pwned")  # """'
        b = a + x
        b.label = "class"
        c = b.tanh()
        c.label = "\\'\\'\\'\\\\"
        d = c * y
        d.label = "return"
        e = d.sigmoid()
        e.label = "_sigmoid"
        h = e + x
        h.label = "x"
        k = h * h
        k.label = "math"
        m = k - y
        m.label = "g_x"
        n = m * 2.0
        n.label = "labels_grad"
        p = n + 1.0
        p.label = "\\u00e9 1abc \\t\\r\\n"
        return p


    @gradgen.export
    def nan_mul(x):
        return x * float("nan") + x


    @gradgen.export
    def inf_add(x):
        return x + float("inf")


    @gradgen.export
    def overflow(x):
        return x * 1e308 * 10 + x * (1e308 * 10)


    @gradgen.export
    def neg_inf(x):
        return x * -float("inf") - x


    @gradgen.export
    def reciprocal(x):
        return 1 / x
    ''').lstrip()
ODD_POINTS = (0.5, -2.0, 0.0, 3.25)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """(compiled module, {name: model function}, source text) for the odd-but-legal model."""
    work = tmp_path_factory.mktemp("odd")
    (work / "odd.py").write_text(ODD, encoding="utf-8")
    r = gradgen("compile", "odd.py", "-o", "out", cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    source = (work / "out" / "odd.py").read_text(encoding="utf-8")
    module = import_file(work / "out" / "odd.py", "gradgen_test_odd")
    _, fns = load_model(str(work / "odd.py"))
    return module, {f.__name__: f for f in fns}, source


def engine(fn, point):
    leaves = [Value(float(v)) for v in point]
    out = fn(*leaves)
    out.backward()
    return out.data, tuple(v.grad for v in leaves)


def same(a: float, b: float) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    return math.isclose(a, b, rel_tol=1e-12)


def assert_like_engine(module, fn, point):
    want_v, want_g = engine(fn, point)
    got_v, got_g = getattr(module, fn.__name__ + "_grad")(*point)
    assert same(got_v, want_v), (fn.__name__, point, got_v, want_v)
    assert same(getattr(module, fn.__name__)(*point), want_v)
    assert len(got_g) == len(want_g)
    for a, b in zip(got_g, want_g):
        assert same(a, b), (fn.__name__, point, got_g, want_g)


def test_odd_labels_compile_and_compute_like_the_engine(odd):
    """Labels with quotes, newlines, keywords and clashing names become plain identifiers."""
    module, fns, source = odd
    for point in [(0.5, -1.25), (-2.0, 0.75), (1.5, 2.0)]:
        assert_like_engine(module, fns["labels"], point)
    assert "os.system" not in source and "pwned" not in source
    assert all(
        c == "\n" or " " <= c <= "~" for c in source
    ), "non-ASCII or control characters emitted"
    tree = ast.parse(source)
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert defs.count("labels") == 1 and defs.count("labels_grad") == 1
    assert all(
        isinstance(n, (ast.Import, ast.FunctionDef))
        or isinstance(getattr(n, "value", None), ast.Constant)
        for n in tree.body
    )


@pytest.mark.parametrize("name", ["nan_mul", "inf_add", "overflow", "neg_inf"])
def test_nan_and_inf_constants_emit_valid_python(odd, name):
    """NaN and infinite constants are written as math.nan / math.inf and compute like the engine."""
    module, fns, source = odd
    for point in ODD_POINTS:
        assert_like_engine(module, fns[name], (point,))


def test_nan_and_inf_spelling(odd):
    """No bare `nan` / `inf` names (which would be NameErrors): only math.nan and math.inf."""
    _, _, source = odd
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    assert not names & {"nan", "inf", "NaN", "Infinity"}
    assert "math.nan" in source and "math.inf" in source


def test_division_by_zero_at_run_time_raises_like_the_engine(odd):
    """1 / x at x = 0 raises ZeroDivisionError in the compiled module, as in the engine."""
    module, fns, _ = odd
    with pytest.raises(ZeroDivisionError):
        engine(fns["reciprocal"], (0.0,))
    with pytest.raises(ZeroDivisionError):
        module.reciprocal(0.0)
    with pytest.raises(ZeroDivisionError):
        module.reciprocal_grad(0.0)
    assert_like_engine(module, fns["reciprocal"], (-4.0,))


# -- --check, ir, determinism ---------------------------------------------------------------


def test_check_exit_status(tmp_path):
    """--check: 1 while a module is missing or stale (writing nothing), 0 once it is up to date."""
    shutil.copy(ROOT / "examples" / "neuron.py", tmp_path / "neuron.py")
    target = tmp_path / "out" / "neuron.py"

    r = gradgen("compile", "neuron.py", "-o", "out", "--check", cwd=tmp_path)
    assert r.returncode == 1 and not target.exists()
    assert "out/neuron.py: out of date" in r.stdout

    r = gradgen("compile", "neuron.py", "-o", "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = gradgen("compile", "neuron.py", "-o", "out", "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "up to date" in r.stdout

    stale = target.read_bytes().replace(b"math.tanh(n)", b"math.tanh(n + 0.0)")
    assert stale != target.read_bytes()
    target.write_bytes(stale)
    r = gradgen("compile", "neuron.py", "-o", "out", "--check", cwd=tmp_path)
    assert r.returncode == 1
    assert "gradgen compile neuron.py -o out" in r.stdout  # says how to regenerate
    assert target.read_bytes() == stale  # --check writes nothing
    assert sorted(os.listdir(tmp_path / "out")) == ["neuron.py"]


def test_ir_prints_the_neuron():
    """`gradgen ir examples/neuron.py` prints the traced forward graph in its text form."""
    r = gradgen("ir", "examples/neuron.py", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "def neuron(x1, x2, w1, w2, b):"
    body = [ln.split("  #")[0] for ln in lines[1:]]
    assert body == [
        "  x1w1 = mul x1 w1",
        "  x2w2 = mul x2 w2",
        "  x1w1x2w2 = add x1w1 x2w2",
        "  n = add x1w1x2w2 b",
        "  o = tanh n",
        "  return o",
    ]
    assert "# [neuron.py:" in lines[1]


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    """Two compiles under PYTHONHASHSEED=0 and 12345 write the same bytes and print the same IR."""
    models = [str(p.relative_to(ROOT)) for p in EXAMPLES]
    odd_model = tmp_path / "odd.py"
    odd_model.write_text(ODD, encoding="utf-8")
    outputs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = tmp_path / f"seed{seed}" / "gen"
        r = gradgen(
            "compile", *models, str(odd_model), "-o", str(out), cwd=ROOT, env=env
        )
        assert r.returncode == 0, r.stderr
        files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        ir = gradgen("ir", str(odd_model), "--grad", "--optimized", cwd=ROOT, env=env)
        assert ir.returncode == 0, ir.stderr
        outputs.append((files, ir.stdout))
    (files0, ir0), (files1, ir1) = outputs
    assert sorted(files0) == sorted(p.name for p in EXAMPLES) + ["odd.py"]
    for name in files0:
        assert files0[name] == files1[name], f"{name} differs between hash seeds"
    assert ir0 == ir1
