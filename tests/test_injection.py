"""No code injection: user text reaches a generated module only as names from the namespace or escaped text.

Each case puts a hostile string in one position a model file controls --
a label, a module-global name of an `nn` module, a parameter name of a
custom Module, an argument or function name, a constant or exponent whose
type prints itself, an example value -- then compiles the model, walks the
generated module's AST and asserts that it imports, calls and names nothing
gradgen did not put there, and that importing it runs no payload (the
payload would create a canary file).
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import subprocess
import sys
import textwrap

import pytest

from gradgen.cli import main
from gradgen.backends import module as module_writer

PAYLOAD = '"""\n__import__("os").system("touch CANARY")\n"""'
# what generated code may call: gradgen's helpers, a few builtins, math.* and np.*
CALLABLE = {"max", "float", "ValueError", "getattr", "type", "zip", "slice", "isinstance", "len"}
HELPERS = set(module_writer.HELPERS)  # gradgen's own helper functions (fixed text)
CALLABLE |= HELPERS
METHODS = {"sum", "copy", "astype", "reshape", "T"}  # methods called on arrays

CASES = {
    "label": f"""
        import gradgen

        @gradgen.export
        def f(x, y):
            z = x * y
            z.label = {PAYLOAD!r}
            return z.tanh()
    """,
    "module global name": f"""
        import gradgen
        from gradgen import nn

        KEY = {PAYLOAD!r}
        globals()[KEY] = nn.Neuron(2)
        other = nn.Neuron(2)

        @gradgen.export
        def f(x1, x2):
            return globals()[KEY]([x1, x2]) + other([x1, x2])
    """,
    "parameter name": f"""
        import gradgen
        from gradgen import nn
        from gradgen.engine import Value

        class Odd(nn.Module):
            def __init__(self):
                self.p = Value(0.5)

            def named_parameters(self, prefix=""):
                return [(prefix + {PAYLOAD!r}, self.p)]

            def __call__(self, x):
                return self.p * x

        m = Odd()

        @gradgen.export
        def f(x):
            return m(x)
    """,
    "unicode argument and variable names": """
        import gradgen

        @gradgen.export
        def f(α, β):
            γ = α * β
            return γ.exp()
    """,
    "constant that prints itself": f"""
        import gradgen

        class Evil(float):
            def __repr__(self):
                return {PAYLOAD!r}

        @gradgen.export
        def f(x):
            return x * Evil(2.5) + Evil(1.0)
    """,
    "exponent that prints itself": f"""
        import gradgen

        class Evil(float):
            def __repr__(self):
                return {PAYLOAD!r}

        class EvilInt(int):
            def __repr__(self):
                return {PAYLOAD!r}

        @gradgen.export
        def f(x):
            return x ** Evil(3.0) + x ** EvilInt(2)
    """,
    "default that prints itself": f"""
        import gradgen

        class Evil(float):
            def __repr__(self):
                return {PAYLOAD!r}

        @gradgen.export
        def f(x, k=Evil(2.0)):
            return x * k
    """,
    "example value that prints itself": f"""
        import gradgen

        class Evil(float):
            def __repr__(self):
                return {PAYLOAD!r}

        @gradgen.export(example=dict(x=Evil(1.5)))
        def f(x):
            return x * x
    """,
    "data array and MLP": f"""
        import random
        import numpy as np
        import gradgen
        from gradgen import nn

        random.seed(0)
        model = nn.MLP(2, [3, 1])

        @gradgen.export(example=dict(X=np.zeros((2, 2)), y=np.zeros(2)))
        def loss(X, y):
            def one(x, yi):
                s = model(x)
                s.label = {PAYLOAD!r}
                return (1 + -yi * s).relu()
            return gradgen.mean(one, X, y)
    """,
}


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the module itself binds: functions, their parameters, assignment targets."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
            bound |= {a.arg for a in node.args.args + node.args.posonlyargs + node.args.kwonlyargs}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name)
        elif isinstance(node, ast.comprehension):
            for t in ast.walk(node.target):
                if isinstance(t, ast.Name):
                    bound.add(t.id)
    return bound


def _root(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def audit(text: str) -> None:
    """Assert the module imports only math and numpy (or torch) and calls and names only what gradgen emits."""
    tree = ast.parse(text)
    bound = _bound_names(tree)
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            assert [(a.name, a.asname) for a in stmt.names] in ([("math", None)], [("numpy", "np")], [("torch", None)])
        elif isinstance(stmt, ast.FunctionDef):
            pass
        elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant):  # an argument table
            assert [ast.unparse(t) for t in stmt.targets] == [f"_{stmt.value.value.split()[0]}_args"]
        else:  # the module docstring is the only other statement
            assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant), ast.dump(stmt)
            assert isinstance(stmt.value.value, str)
    helper_nodes = {id(c) for h in tree.body if isinstance(h, ast.FunctionDef) and h.name in HELPERS for c in ast.walk(h)}
    for h in tree.body:
        if isinstance(h, ast.FunctionDef) and h.name in HELPERS:  # gradgen's fixed helper text, verbatim
            assert ast.unparse(h) == ast.unparse(ast.parse(module_writer.helper_source(h.name)).body[0]), h.name
    for node in ast.walk(tree):
        assert not isinstance(node, (ast.ImportFrom, ast.Lambda, ast.ClassDef, ast.Global, ast.Delete))
        if id(node) in helper_nodes:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in bound or node.id in CALLABLE or hasattr(builtins, node.id), node.id
            assert node.id not in {"eval", "exec", "__import__", "open", "compile", "globals", "getattr"} or (
                node.id == "getattr"
            ), node.id
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id in CALLABLE, ast.unparse(func)
            else:
                assert isinstance(func, ast.Attribute), ast.unparse(func)
                root = _root(func)
                assert root in ("np", "math", "torch") or func.attr in METHODS, ast.unparse(func)
        if isinstance(node, ast.Attribute):
            assert node.attr.isidentifier() and node.attr not in {"system", "popen", "__import__"}, node.attr
    assert "CANARY" not in "".join(
        n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(tree) if isinstance(n, (ast.Name, ast.Attribute))
    )
    # string literals outside docstrings are names (the shape checks' argument names) or helper text
    helper_bodies = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in HELPERS]
    in_helpers = {id(c) for h in helper_bodies for c in ast.walk(h)}
    docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))}
    # argument tables, `_f_args = "f W0:16,2 X:B,2 k:; X"`: names and shapes only
    tables = set()
    for n in tree.body:
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant):
            name, arg = r"[A-Za-z_]\w*", r" [A-Za-z_]\w*:[\dB,]*"
            assert re.fullmatch(rf"{name}({arg})*(; {name}( {name})*)?", n.value.value), ast.unparse(n)
            tables.add(id(n.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or id(node) in in_helpers:
                continue
            assert node.value.isidentifier() or node.value == "B" or id(node) in tables, repr(node.value)
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            assert type(node.value) in (int, float, str, bool, type(None)), repr(node.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_text_never_becomes_code(case, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent(CASES[case]), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out)]) == 0
    text = (out / "model.py").read_text(encoding="utf-8")
    audit(text)
    assert "touch CANARY" not in text.replace("\n", " ") or all(
        "touch CANARY" not in line for line in text.splitlines() if not line.lstrip().startswith("#")
    ), "the payload reached a line of code or a docstring"
    # importing (and calling) the module runs no payload
    run = subprocess.run(
        [sys.executable, "-c", "import model, inspect; print(sorted(n for n in dir(model) if not n.startswith('__')))"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert not os.path.exists(out / "CANARY")


def test_the_audit_catches_an_injected_call():
    """A negative case: the audit is not vacuous."""
    bad = '"""doc"""\n\nimport math\n\n\ndef f(x):\n    """Value."""\n    __import__("os").system("true")\n    return x\n'
    with pytest.raises(AssertionError):
        audit(bad)
    bad_docstring_escape = '"""doc"""\n\nimport math\nimport os\n\n\ndef f(x):\n    return x\n'
    with pytest.raises(AssertionError):
        audit(bad_docstring_escape)
