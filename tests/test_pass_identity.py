"""Issue #11's fast paths: a pass that changes nothing returns its input (the same object),
a pass that changes something still gives the engine's numbers, and the compile turns the
cyclic GC off only while it runs."""

from __future__ import annotations

import gc

import gradgen
from gradgen.autodiff.reverse import grad
from gradgen.engine import Value
from gradgen.frontend.trace import trace
from gradgen.ir.interp import evaluate
from gradgen.passes import cse, dce, fold, optimize


def chain(x, a, b):
    for _ in range(4):
        x = (x * a + b).tanh()
    return x


def shared(x, y):
    u = x * y
    v = y * x  # the same product (mul commutes): CSE merges it
    return (u + v * 1.0).tanh()


def same(x):
    return x


def _engine(fn, **point):
    vals = {k: Value(v) for k, v in point.items()}
    out = fn(**vals)
    out.backward()
    return out.data, [vals[k].grad for k in point]


def test_passes_return_their_input_when_nothing_changes():
    g = trace(chain)
    assert fold(g) is g and cse(g) is g and dce(g) is g
    assert optimize(g) is g
    gg = optimize(grad(g))  # a fixed point: every pass returns it as it is
    assert fold(gg) is gg and cse(gg) is gg and dce(gg) is gg


def test_reverse_mode_builds_no_product_with_the_seed():
    """The output's rule multiplies its gradient by the seed 1.0: reverse mode builds the other
    factor instead (what fold's `1 * x -> x` would make of it) and takes the unused seed out, so
    the chain's gradient graph is a fixed point of the passes as built, with the engine's numbers."""
    g = trace(chain)
    gg = grad(g)
    assert not any(n.rule is not None and n.rule.startswith("seed") for n in gg.nodes)
    assert optimize(gg) is gg
    res = evaluate(gg, [0.5, 0.9, 0.1])
    value, grads = _engine(chain, x=0.5, a=0.9, b=0.1)
    assert res["value"] == value
    assert [res["grad:x"], res["grad:a"], res["grad:b"]] == grads
    # an output with no rule of its own keeps the seed: the gradient of f(x) = x is 1.0
    ident = grad(trace(same))
    assert evaluate(ident, [3.0])["grad:x"] == 1.0


def test_passes_that_change_the_graph_keep_the_engines_numbers():
    g = trace(shared)
    out = optimize(g)
    assert out is not g and len(out.nodes) < len(g.nodes)
    # the unchanged prefix (the inputs and the first product) is shared, not copied
    assert all(a is b for a, b in zip(out.nodes[:3], g.nodes[:3]))
    point = dict(x=0.3, y=-1.7)
    gopt = optimize(grad(out))
    res = evaluate(gopt, [point["x"], point["y"]])
    value, grads = _engine(shared, **point)
    assert res["value"] == value
    assert [res["grad:x"], res["grad:y"]] == grads


def test_the_compile_restores_the_gc_state():
    assert gc.isenabled()
    mod = gradgen.compile_function(chain)
    assert gc.isenabled()
    value, grads = _engine(chain, x=0.5, a=0.9, b=0.1)
    v, g = mod.chain_grad(0.5, 0.9, 0.1)
    assert v == value and list(g) == grads
    gc.disable()
    try:
        gradgen.compile_function(chain)
        assert not gc.isenabled()  # left off, as the caller had it
    finally:
        gc.enable()


def affine(x, a, b):
    for _ in range(4):
        x = x * a + b
    return x


def test_the_seed_passed_through_an_add_builds_no_product_with_it():
    """`x * a + b` as the output: add's rule passes the seed to both operands.  Reverse mode
    makes b's gradient the constant 1.0 (as folding a copy of a constant would) and the
    product's rule builds `a` and `x` instead of `1.0 * a`, `1.0 * x`, so the gradient is a
    fixed point of the passes as built (no full renumbering for two dead nodes)."""
    gg = grad(trace(affine))
    assert not any(n.rule is not None and n.rule.startswith("seed") for n in gg.nodes)
    assert optimize(gg) is gg
    _same_as_engine(gg, affine, x=0.5, a=0.9, b=0.1)


def _same_as_engine(gg, fn, **point):
    res = evaluate(gg, list(point.values()))
    value, grads = _engine(fn, **point)
    assert res["value"] == value, fn.__name__
    assert [res[f"grad:{k}"] for k in point] == grads, fn.__name__


def div_out(x, y, b):
    return x / y + b  # a 1.0 to a quotient: built as it was, folded later


def neg_out(x, y, b):
    return -(x * y) + b


def tanh_out(x, y, b):
    return (x * y).tanh() + b


def second_use(x, y, b):
    return x * y + y * b  # y's second contribution: a product, folded later


def shared_product(x, y, b):
    p = x * y
    return p + p * b


def three(x, y, b):
    return x * y + b + x


def inputs(x, y, b):
    return x + y


def square(x, y, b):
    return (x * y) ** 2 + b


def scaled(x, y, b):
    return 3.0 * x + b


def two_kinds(x, y, b):
    return (x * y).relu() + (b * x).exp()


def test_outputs_made_of_adds_keep_the_engines_numbers():
    for fn in (div_out, neg_out, tanh_out, second_use, shared_product, three, inputs, square, scaled, two_kinds):
        _same_as_engine(optimize(grad(trace(fn))), fn, x=0.5, y=2.0, b=0.1)
