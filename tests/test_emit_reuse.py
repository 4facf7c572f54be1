"""The emitter's shortcuts write what the general paths write (issue #11's scalar chain).

* A value function cut from its gradient function's schedule (`schedule.forward_part`) reuses
  the gradient's forward statements (`base.Prefix`) when its graph is the gradient graph's
  first nodes; the module is the same as when the value function is rendered on its own.
* `forward_part`'s prefix case (the same nodes, no renumbering) gives the schedule its
  general renumbering path gives.
* The Python backend's inlined renderer (`base._render`'s pre-bound templates) writes each
  expression as `Backend.expression` does.
* The backward's lines joined in chunks (`base.CHUNK`) make the same module text.
Each is checked on every example model and on a chain, for each backend.
"""

from __future__ import annotations

import glob
import os

import pytest

from gradgen import api
from gradgen.backends import base, schedule

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))

CHAIN = """import gradgen


@gradgen.export(example=dict(x=0.5, a=0.9, b=0.1))
def chain(x, a, b):
    for i in range(40):
        x = (x * a + b).tanh()
    return x
"""


def _source(path: str, backend: str) -> str:
    return api.compile_file(path, write=False, backend=backend).source


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    chain = tmp_path_factory.mktemp("chain") / "chain.py"
    chain.write_text(CHAIN)
    return MODELS + [str(chain)]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_shortcuts_write_what_the_general_paths_write(models, backend, monkeypatch):
    """Every shortcut on, then every one off: the same module, byte for byte."""
    fast = {path: _source(path, backend) for path in models}
    real_emit = base.emit_function

    def emit_without_prefix(*args, prefix=None, **kw):
        return real_emit(*args, **kw)  # the value function rendered on its own

    monkeypatch.setattr(api, "emit_function", emit_without_prefix)
    monkeypatch.setattr(schedule, "_within", lambda nodes, end: False)  # forward_part renumbers
    monkeypatch.setattr(base, "CHUNK", 1)  # one line per entry
    # the inlined renderer off: a backend whose `expression` is not the base one's goes through it
    from gradgen.backends import python

    class NoFast(python.PythonBackend):
        def expression(self, n, operand, sched, helpers, needs):
            return super().expression(n, operand, sched, helpers, needs)

    monkeypatch.setattr(python.PYTHON, "__class__", NoFast)
    for path in models:
        assert _source(path, backend) == fast[path], os.path.basename(path)


def test_prefix_is_taken_on_the_chain(models):
    """The shortcut applies to the chain: its value function's graph is the gradient graph's prefix."""
    path = models[-1]
    mod = api.compile_file(path, write=False)
    ir = mod.functions[0]
    from gradgen.backends import backend_for

    b = backend_for("numpy", ir.grad_opt)
    sched = schedule.schedule(ir.grad_opt, b, reserved={"chain", "chain_grad"})
    part = schedule.forward_part(sched)
    assert part.cut == len(part.graph.nodes) == ir.grad_opt.output("value") + 1
    g = base.emit_function(ir.grad_opt, "chain_grad", "grad", None, b, ir.defaults, sched)
    assert g.prefix is not None and g.prefix.end == part.cut
    f = base.emit_function(part.graph, "chain", "value", "Value of chain.", b, ir.defaults, part, prefix=g.prefix)
    alone = base.emit_function(part.graph, "chain", "value", "Value of chain.", b, ir.defaults, part)
    assert "\n".join(f.lines) == "\n".join(alone.lines)
    assert (f.helpers, f.needs) == (alone.helpers, alone.needs) == (set(), {"math"})
    # the module computes what the engine computes
    x = 0.5
    for _ in range(40):
        x = __import__("math").tanh(x * 0.9 + 0.1)
    assert mod.chain(0.5, 0.9, 0.1) == pytest.approx(x, rel=1e-15)


def test_the_compile_leaves_nothing_frozen_and_a_users_freeze_alone(models):
    """After a compile the objects it made are ordinary (nothing in gc's permanent generation), and
    a caller's own `gc.freeze()` is left as it was (api._no_gc moves objects only when none are frozen)."""
    import gc

    api.compile_file(models[-1], write=False)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        api.compile_file(models[-1], write=False)
        assert 0 < gc.get_freeze_count() <= frozen  # (frozen objects may still be freed by refcount)
    finally:
        gc.unfreeze()


def test_forward_part_leaves_out_a_forward_node_only_the_backward_reads():
    """A node before the value that the value does not need (only a later node reads it) is not
    in the value's part: the prefix shortcut does not apply, and the part renumbers."""
    from gradgen.backends.python import PYTHON
    from gradgen.ir.graph import VALUE, Builder, Origin, grad_of
    from gradgen.ir.ops import Op

    b = Builder("f")
    x = b.add(Op.INPUT, (), name="x", origin=Origin("arg", "x"))
    dead = b.add(Op.MUL, (x, x))  # read only by the node after the value
    y = b.add(Op.ADD, (x, x), name="y")
    g = b.add(Op.MUL, (dead, y), rule="r", step=0, adj=x)
    graph = b.build([x], [(VALUE, y), (grad_of("x"), g)])
    sched = schedule.schedule(graph, PYTHON, reserved={"f", "f_grad"})
    part = schedule.forward_part(sched)
    assert part.cut is None
    assert [n.op for n in part.graph.nodes] == [Op.INPUT, Op.ADD]
    assert part.graph.outputs == ((VALUE, 1),) and part.names == [sched.names[x], sched.names[y]]
