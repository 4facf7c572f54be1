"""Names: whatever a user writes as a label becomes a valid, distinct identifier, never raw code.

`gradgen.names.sanitize` / `Namespace` on hostile hints, then whole models
whose values carry such labels: the generated module must parse, contain
no text a label smuggled in (a newline in a label must not start a new line
of code, not even from a comment), and compute the right numbers.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import math
import os
import tokenize

import pytest
import torch

import gradgen
from gradgen.engine import Value
from gradgen.ir.printer import format_graph
from gradgen.names import Namespace, comment_text, sanitize

HOSTILE = [
    "x y",
    "x1*w1 + x2*w2",
    "*",
    "**",
    'say "hi"',
    "it's",
    "a\nb",
    'x"\nimport os',
    "line\r\nbreak",
    "\u2028sep",
    "tab\there",
    "nul\x00",
    "α",
    "très",
    "日本",
    "lambda",
    "class",
    "None",
    "True",
    "match",
    "case",
    "_",
    "type",
    "sum",
    "max",
    "float",
    "print",
    "math",
    "np",
    "1abc",
    "123",
    "",
    "   ",
    "__",
    "x",
    "x",
    "x_1",
    "g_x",
    "a" * 100,
    "a" * 100 + "b",
]

FORBIDDEN = (
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
    | {"math", "np", "numpy"}
)


def valid(name: str) -> bool:
    return name.isidentifier() and name.isascii() and name not in FORBIDDEN


@pytest.mark.parametrize("hint", HOSTILE + [None], ids=repr)
def test_sanitize_gives_a_valid_identifier(hint):
    """sanitize(hint) is an ASCII identifier that is no keyword, builtin or reserved module name."""
    name = sanitize(hint)
    assert valid(name), name


def test_sanitize_keeps_readable_hints():
    """Plain identifiers pass unchanged; the rest keep their letters and digits."""
    assert sanitize("x1w1") == "x1w1"
    assert sanitize("x1*w1 + x2*w2") == "x1_w1_x2_w2"
    assert sanitize("lambda") == "lambda_"
    assert sanitize("sum") == "sum_"
    assert sanitize("math") == "math_"
    assert sanitize("1abc")[0].isalpha() and sanitize("1abc").endswith("1abc")
    assert sanitize("") == sanitize(None) == sanitize("*") == "v"
    assert sanitize("", default="g") == "g"
    # a learner's Greek and accented names keep a spelling
    assert [sanitize(h) for h in ("α", "Δw", "dL_dβ", "très", "naïve x", "ℓ2")] == [
        "alpha",
        "Delta_w",
        "dL_d_beta",
        "tres",
        "naive_x",
        "l2",
    ]


def test_namespace_gives_distinct_valid_names():
    """One Namespace turns every hostile hint (repeats included) into a different valid identifier."""
    ns = Namespace()
    names = [ns.create(h) for h in HOSTILE]
    assert all(valid(n) for n in names), names
    assert len(set(names)) == len(names), names
    # collisions are suffixed in order
    assert names[HOSTILE.index("x")] == "x"
    assert "x_2" in names or "x_1" in names


def test_namespace_respects_reserved_names_and_suffixes_in_order():
    """Reserved names are never handed out; repeats get _1, _2, ... in creation order."""
    ns = Namespace(reserved={"f", "f_grad", "_sigmoid"})
    assert ns.create("f") == "f_1"
    assert ns.create("f_grad") == "f_grad_1"
    assert [ns.create("y") for _ in range(3)] == ["y", "y_1", "y_2"]
    assert ns.create("y_1") == "y_1_1"  # taken by the suffixing above
    assert ns.create("_sigmoid") == "sigmoid"


def test_comment_text_is_one_printable_line():
    """comment_text maps anything to printable ASCII on one line."""
    text = comment_text('a\nb\r\u2028c\x00"é')
    assert "\n" not in text and "\r" not in text
    assert all(" " <= c <= "~" for c in text)


# --- whole models with hostile labels --------------------------------------------------


def model(x, y):
    a = x * y
    a.label = 'x"\nimport os'
    b = a.tanh()
    b.label = "lambda"
    c = b + x
    c.label = "sum"
    d = c * a
    d.label = "x"  # the name of an argument
    e = (d * 0.1).exp()
    e.label = "\u2028evil\r\x00"
    f = e.relu() + e.sigmoid()
    f.label = "max"  # relu is emitted with max(); a local `max` would shadow it
    g = f - y
    g.label = "float"
    h = g / x
    h.label = "_sigmoid"  # the helper sigmoid is emitted as _sigmoid
    i = h.log()
    i.label = "math"  # every op is emitted as math.<fn>
    j = i + a
    j.label = "g_x"  # what the adjoint of x is called
    k = j * j
    k.label = "model_grad"  # the compiled gradient function's name
    m = k + 1.0
    m.label = ""
    n = m * 2.0
    n.label = "1 2 3 # comment"
    o = n - 0.5
    o.label = "class"
    return o


def _tokens(source):
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def test_hostile_labels_compile_to_safe_code_that_computes_the_right_numbers():
    """A model labelling values 'x"\\nimport os', 'lambda', 'max', 'math', ... compiles, parses, and is right."""
    mod = gradgen.compile_function(model, check=True)
    source = mod.source
    tree = ast.parse(source)

    # nothing a label wrote became code
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [a.name for n in imports for a in n.names] == ["math"]
    assert "import os" not in source
    assert not any(
        line.lstrip().startswith(("import os", "os")) for line in source.splitlines()
    )
    # every comment is printable ASCII on its own line
    for tok in _tokens(source):
        if tok.type == tokenize.COMMENT:
            assert all(" " <= c <= "~" for c in tok.string), tok.string
    assert source.isascii()
    # every assigned name is valid and no assignment shadows what the code calls
    # (a local `model_grad` inside `model` is harmless: neither function calls the other)
    stores = {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    assert stores.isdisjoint({"math", "max", "float", "_sigmoid"})
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        params = {a.arg for a in fn.args.args}
        local = {
            n.id
            for n in ast.walk(fn)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        assert fn.name not in local and params.isdisjoint(local), fn.name
    assert all(
        valid(s) or s == "e" for s in stores
    ), stores  # `e` is the sigmoid helper's local

    # the numbers: interpreted engine (bit for bit) and torch float64
    for point in [(0.7, 1.3), (1.5, 0.4)]:
        vs = [Value(p) for p in point]
        out = model(*vs)
        out.backward()
        value, grads = mod.model_grad(*point)
        assert mod.model(*point) == value
        assert math.isclose(value, out.data, rel_tol=1e-12, abs_tol=1e-12)
        for g, v in zip(grads, vs):
            assert math.isclose(g, v.grad, rel_tol=1e-12, abs_tol=1e-12)

        ts = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
        tout = _torch_model(*ts)
        tgrads = torch.autograd.grad(tout, ts)
        assert math.isclose(value, tout.item(), rel_tol=1e-12)
        for g, t in zip(grads, tgrads):
            assert math.isclose(g, t.item(), rel_tol=1e-10)


def _torch_model(x, y):
    a = x * y
    b = a.tanh()
    c = b + x
    d = c * a
    e = (d * 0.1).exp()
    f = e.relu() + e.sigmoid()
    g = f - y
    h = g / x
    i = h.log()
    j = i + a
    k = j * j
    return (k + 1.0) * 2.0 - 0.5


def test_hostile_labels_stay_out_of_the_printed_ir():
    """The IR printer names nodes through the same namespace: no label text escapes a line."""
    mod = gradgen.compile_function(model)
    for ir in mod.functions:
        for graph in (ir.forward, ir.grad_opt):
            text = format_graph(graph)
            assert "import os" not in text
            assert text.isascii()
            for line in text.splitlines()[1:]:
                assert line.startswith("  "), line


def test_a_hostile_model_file_name_stays_in_comments(tmp_path):
    """A model file whose name holds quotes, a newline and backslashes still gives a parsable module."""
    path = os.path.join(tmp_path, 'we"ird\nimport os\\ \u2028 """x.py')
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "def f(x):\n    y = x * x\n    y.label = 'a\\nimport sys'\n    return y.sigmoid()\n"
        )
    namespace = {}
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), namespace)
    mod = gradgen.compile_function(namespace["f"], check=True)
    tree = ast.parse(mod.source)
    imports = [
        a.name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    ]
    assert imports == ["math"]
    assert mod.source.isascii()
    value, (g,) = mod.f_grad(0.3)
    s = 1 / (1 + math.exp(-0.09))
    assert math.isclose(value, s, rel_tol=1e-15)
    assert math.isclose(g, s * (1 - s) * 0.6, rel_tol=1e-12)


@pytest.mark.parametrize("fname", ["max", "float"])
def test_exported_function_named_like_a_builtin_the_code_calls(fname, tmp_path):
    """A function called max or float either compiles to correct code or is refused with a GradgenError."""
    path = tmp_path / "model.py"
    path.write_text(f"def {fname}(x):\n    return (x * 3.0).relu()\n")
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    fn = namespace[fname]
    try:
        mod = gradgen.compile_function(fn, check=True)
    except gradgen.GradgenError:
        return  # refusing the name is a fine answer
    value, (g,) = getattr(mod, fname + "_grad")(1.5)
    assert (value, g) == (4.5, 3.0)


# -- names from meaning (gradgen.names.meaning): one case per rule ------------------------------


def _named(build):
    """assign_names of the graph `build(b, inp)` makes; inp(name, shape=()) adds an input."""
    from gradgen.ir.graph import Builder, Origin
    from gradgen.names import assign_names

    b = Builder("f")
    ins = []

    def inp(name, shape=()):
        ins.append(b.add(Op.INPUT, (), name=name, origin=Origin("arg", name), shape=shape))
        return ins[-1]

    out = build(b, inp)
    g = b.build(ins, [("value", out)])
    return dict(zip(range(len(g.nodes)), assign_names(g)))


from gradgen.ir.ops import Op  # noqa: E402


def test_meaning_reciprocal_is_inv():
    """1.0 / B -> inv_B."""
    names = _named(lambda b, inp: b.add(Op.DIV, (b.const(1.0), inp("B"))))
    assert "inv_B" in names.values()


def test_meaning_negation_is_neg_name():
    """-y -> neg_y; a long operand name keeps the op name (neg)."""
    assert "neg_y" in _named(lambda b, inp: b.add(Op.NEG, (inp("y"),))).values()
    long = _named(lambda b, inp: b.add(Op.NEG, (inp("a_very_long_name"),)))
    assert "neg" in long.values()


def test_meaning_square_and_sum_of_squares():
    """x * x -> sq_x; sum(W * W), sum(c * c) and their sum -> sq_norm (the L2 term)."""

    def square(b, inp):
        x = inp("x")
        return b.add(Op.MUL, (x, x))

    assert list(_named(square).values())[-1] == "sq_x"

    def l2(b, inp):
        w, c = inp("W", (2, 3)), inp("c", (3,))
        sw = b.add(Op.SUM, (b.add(Op.MUL, (w, w)),), (0, 1))
        sc = b.add(Op.SUM, (b.add(Op.MUL, (c, c)),), (0,))
        return b.add(Op.ADD, (sw, sc))

    names = list(_named(l2).values())
    # W, c, W * W, sum(W * W), c * c, sum(c * c), their sum
    assert names == ["W", "c", "sq_W", "sq_norm", "sq_c", "sq_norm_1", "sq_norm_2"]


def test_meaning_hinge_and_margin():
    """relu(1.0 + t) -> hinge, its 1.0 + t -> margin; a relu of a plain value keeps `relu`."""

    def svm(b, inp):
        m = b.add(Op.ADD, (b.const(1.0), inp("t")))
        return b.add(Op.RELU, (m,))

    names = list(_named(svm).values())
    assert names[-2:] == ["margin", "hinge"]
    assert list(_named(lambda b, inp: b.add(Op.RELU, (inp("t"),))).values())[-1] == "relu"


def test_meaning_sum_and_product_of_named_values():
    """sum(x) -> sum_x; a * b -> a_b; a product of unnamed values keeps `mul`."""
    assert list(_named(lambda b, inp: b.add(Op.SUM, (inp("x", (3,)),), (0,))).values())[-1] == "sum_x"
    assert list(_named(lambda b, inp: b.add(Op.MUL, (inp("a"), inp("b")))).values())[-1] == "a_b"

    def unnamed(b, inp):
        e = b.add(Op.EXP, (inp("a"),))
        return b.add(Op.MUL, (e, b.add(Op.EXP, (e,))))

    assert list(_named(unnamed).values())[-1] == "mul"
