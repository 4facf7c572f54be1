"""Import a model file and find its exported functions.

Every failure becomes a one-line `GradgenError` naming the file (and the
line, where there is one): a missing file, a syntax error, an exception or a
failing import while the module runs, no `@gradgen.export` function.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
import types

from gradgen.errors import GradgenError
from gradgen.export import is_exported


def load_model(path: str):
    """(module, [exported functions in definition order]) for the model file `path`."""
    if not os.path.exists(path):
        raise GradgenError("no such file; give the path of a model file (a .py file)", path)
    if os.path.isdir(path):
        raise GradgenError("is a directory, not a model file", path)
    if not path.endswith(".py"):
        raise GradgenError("a model file must be a .py file", path)
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec")
    except SyntaxError as e:
        line = e.lineno or None  # 0 when the file cannot even be decoded
        msg = f"syntax error: {e.msg}; fix the model file"
        coding = _coding_line(source)
        if "encoding" in str(e.msg) and coding is not None:
            line = coding
            msg = f"{e.msg}: fix the coding declaration (e.g. `# -*- coding: utf-8 -*-`) or remove it"
        elif line is None and coding is not None:
            line = coding
        raise GradgenError(msg, path, line) from e
    except (OSError, ValueError) as e:
        raise GradgenError(f"cannot read the model file: {e}", path) from e

    stem = os.path.splitext(os.path.basename(path))[0]
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]
    modname = f"_gradgen_model_{digest}_{''.join(c if c.isalnum() else '_' for c in stem)}"
    spec = importlib.util.spec_from_loader(modname, loader=None, origin=path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = os.path.abspath(path)
    model_dir = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, model_dir)
    sys.modules[modname] = module
    try:
        exec(code, module.__dict__)
    except (GradgenError, KeyboardInterrupt):
        raise
    except BaseException as e:  # SystemExit too: a model file must not end the compiler
        line = _model_line(e, path)
        if isinstance(e, ImportError):
            msg = f"import failed: {e}; install the missing package or fix the import"
        else:
            msg = (
                f"running the model raised {type(e).__name__}: {e}; fix the model, and keep "
                "demo code under `if __name__ == '__main__':`"
            )
        raise GradgenError(msg, path, line) from e
    finally:
        if sys.path and sys.path[0] == model_dir:
            sys.path.pop(0)

    fns = [
        obj
        for obj in vars(module).values()
        if is_exported(obj) and getattr(obj, "__module__", None) == modname
    ]
    for f in fns:
        if not isinstance(f, types.FunctionType):
            inner = inspect.unwrap(f) if callable(f) else f
            code = getattr(inner, "__code__", None)
            raise GradgenError(
                f"{getattr(f, '__name__', 'an export')} is a {type(f).__name__}, not a plain function; "
                "put @gradgen.export directly above the def (outside any other decorator's wrapper)",
                path,
                code.co_firstlineno if code is not None else None,
            )
    fns.sort(key=lambda f: f.__code__.co_firstlineno)
    if not fns:
        raise GradgenError(
            "no exported function: mark the function(s) to compile with @gradgen.export", path
        )
    return module, fns


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def _coding_line(source: bytes) -> int | None:
    """The line (1 or 2) of a PEP 263 coding declaration, if there is one."""
    for k, text in enumerate(source.splitlines()[:2]):
        if _CODING.match(text):
            return k + 1
    return None


def _model_line(e: BaseException, path: str) -> int | None:
    target = os.path.abspath(path)
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if os.path.abspath(frame.filename) == target:
            return frame.lineno
    return None
