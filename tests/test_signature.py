"""The Signature the front end builds (gradgen.frontend.signature), and names from helpers.

Every example and every learner model (tests/learners) gets the signature
written out here by hand: each input's kind (param / data / scalar), shape
(symbolic batch axis "B"), module and default, the returned shape, and the
one-sentence description a docstring uses.  `lower` carries it as
`FunctionIR.signature` and takes the defaults from it.  Then the naming
rule: a value a model helper function computes and returns is named after
the helper, unless a local or the exported function's result names it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradgen
from gradgen.api import lower
from gradgen.export import example_of, params_of
from gradgen.frontend.loader import load_model
from gradgen.frontend.signature import Signature, SigInput
from gradgen.frontend.trace import trace_function
from gradgen.ir.graph import VALUE

ROOT = Path(__file__).resolve().parent.parent


def P(name, shape, module):
    return SigInput(name, "param", shape, module)


def D(name, shape):
    return SigInput(name, "data", shape)


def S(name, default=None):
    return SigInput(name, "scalar", (), None, default)


def mlp(module, sizes, prefix=""):
    """The parameter inputs of an nn.MLP with layer sizes `sizes` (nin first)."""
    out = []
    for k, (nin, nout) in enumerate(zip(sizes, sizes[1:])):
        out += [P(f"{prefix}W{k}", (nout, nin), module), P(f"{prefix}b{k}", (nout,), module)]
    return out


# (model file, function) -> (inputs, returns)
EXPECTED = {
    ("examples/moons.py", "loss"): (mlp("model", [2, 16, 16, 1]) + [D("X", ("B", 2)), D("y", ("B",))], ()),
    ("examples/moons.py", "scores"): (mlp("model", [2, 16, 16, 1]) + [D("X", ("B", 2))], ("B",)),
    ("examples/lecture_mlp.py", "loss"): (mlp("n", [3, 4, 4, 1]) + [D("xs", (4, 3)), D("ys", (4,))], ()),
    ("examples/neuron.py", "neuron"): ([S("x1"), S("x2"), S("w1"), S("w2"), S("b")], ()),
    # foreign engines (frontend/foreign.py): micrograd's package, the lecture's own Value class
    ("examples/micrograd_demo.py", "loss"): (mlp("model", [2, 16, 16, 1]) + [D("X", ("B", 2)), D("y", ("B",))], ()),
    ("examples/micrograd_demo.py", "scores"): (mlp("model", [2, 16, 16, 1]) + [D("X", ("B", 2))], ("B",)),
    ("examples/lecture_value.py", "loss"): (mlp("m", [3, 4, 4, 1]) + [D("xs", (4, 3)), D("ys", (4,))], ()),
    ("examples/lecture_value.py", "neuron"): ([S("x1"), S("x2"), S("w1"), S("w2"), S("b")], ()),
    ("examples/activations.py", "softplus_ratio"): ([S("x"), S("y")], ()),
    ("examples/activations.py", "logistic"): ([S("x"), S("w"), S("b")], ()),
    ("examples/activations.py", "powers"): ([S("x")], ()),
    ("examples/activations.py", "smooth_step"): ([S("x"), S("y")], ()),
    ("examples/micrograd_tests.py", "sanity_check"): ([S("x")], ()),
    ("examples/micrograd_tests.py", "more_ops"): ([S("a"), S("b")], ()),
    ("examples/rnn_cell.py", "loss"): (
        [P("Wx", (8, 3), "cell"), P("Wh", (8, 8), "cell"), P("b", (8,), "cell"), P("wo", (8,), "cell")]
        + [P("bo", (), "cell"), D("X", ("B", 4, 3)), D("y", ("B",))],
        (),
    ),
    ("examples/residual.py", "loss"): (
        [P("W1", (8, 4), "block"), P("b1", (8,), "block"), P("W2", (4, 8), "block"), P("b2", (4,), "block")]
        + [D("X", ("B", 4)), D("T", ("B", 4))],
        (),
    ),
    ("examples/newton.py", "loss"): ([S("w0"), S("w1"), S("w2")], ()),
    ("tests/learners/all_ops.py", "f"): ([S("a"), S("b")], ()),
    ("tests/learners/custom_module.py", "step"): ([P("w", (2,), "cell"), P("b", (), "cell"), S("x1"), S("x2"), S("h")], ()),
    ("tests/learners/dead_units.py", "loss"): (mlp("model", [2, 4, 1], "model_") + [D("X", ("B", 2)), D("y", ("B",))], ()),
    ("tests/learners/defaults.py", "softplus"): ([S("x"), S("temperature", 1.0)], ()),
    ("tests/learners/global_neuron.py", "f"): ([P("w", (2,), "unit"), P("b", (), "unit"), S("x1"), S("x2")], ()),
    ("tests/learners/l2_one_neuron_layer.py", "loss"): (mlp("model", [3, 1]) + [D("X", (2, 3))], ()),
    ("tests/learners/lecture_list_loss.py", "loss"): (mlp("model", [3, 4, 4, 1]), ()),
    ("tests/learners/mean_sigmoid_bce.py", "loss"): ([P("w", (3,), "clf"), P("b", (), "clf"), D("X", ("B", 3)), D("y", ("B",))], ()),
    ("tests/learners/neuron_labels.py", "neuron"): ([S("x1"), S("x2"), S("w1"), S("w2"), S("b")], ()),
    ("tests/learners/one_example_list.py", "loss"): (mlp("model", [2, 3, 1]) + [D("X", (1, 2)), D("y", (1,))], ()),
    ("tests/learners/relu_at_zero.py", "f"): ([P("W", (3, 2), "layer"), P("b", (3,), "layer"), S("x1"), S("x2")], ()),
    ("tests/learners/tanh_mlp_scalars.py", "loss"): (mlp("net", [3, 4, 4, 1]) + [S("a"), S("b"), S("c"), S("target")], ()),
}


def exported(path: str):
    _, fns = load_model(str(ROOT / path))
    return {f.__name__: f for f in fns}


def signature_of(fn) -> Signature:
    return trace_function(fn, example=example_of(fn), params=params_of(fn))[1]


def test_every_example_and_learner_model_is_listed():
    files = {str(p.relative_to(ROOT)) for p in [*ROOT.glob("examples/*.py"), *ROOT.glob("tests/learners/*.py")]}
    listed = {(path, name) for path in files for name in exported(path)}
    assert listed == set(EXPECTED)


@pytest.mark.parametrize("path, name", sorted(EXPECTED), ids=lambda x: x if "/" not in x else Path(x).stem)
def test_signature_of_each_model(path, name):
    sig = signature_of(exported(path)[name])
    inputs, returns = EXPECTED[path, name]
    assert sig.name == name
    assert list(sig.inputs) == inputs
    assert sig.returns == returns
    assert sig.per_example == bool(returns)
    # the views agree with the kinds
    assert [i.name for i in sig.params()] == [i.name for i in inputs if i.kind == "param"]
    assert [i.name for i in sig.data()] == [i.name for i in inputs if i.kind == "data"]
    assert [i.name for i in sig.wrt()] == [i.name for i in inputs if i.kind != "data"]
    assert [i.name for i in sig.arrays()] == [i.name for i in inputs if i.shape]


def test_signature_matches_the_traced_graph_inputs():
    """The signature lists the graph's inputs in order, with the graph's shapes (batch axes included)."""
    for path, name in sorted(EXPECTED):
        fn = exported(path)[name]
        graph, sig = trace_function(fn, example=example_of(fn), params=params_of(fn))
        assert [graph[i].name for i in graph.inputs] == sig.names(), (path, name)
        assert [graph[i].shape for i in graph.inputs] == [i.shape for i in sig.inputs], (path, name)
        assert graph[graph.output(VALUE)].shape == sig.returns


def test_describe_moons_and_lecture_mlp():
    moons = signature_of(exported("examples/moons.py")["loss"])
    assert moons.describe() == (
        "loss(W0, b0, W1, b1, W2, b2, X, y): W0..b2 are model's parameter arrays "
        "(gradgen.params.read(model)); X (B, 2) and y (B,) are the data."
    )
    # lecture_mlp takes the parameters and xs, ys (not X, y): its docstring must say so
    lecture = signature_of(exported("examples/lecture_mlp.py")["loss"])
    assert lecture.describe() == (
        "loss(W0, b0, W1, b1, W2, b2, xs, ys): W0..b2 are n's parameter arrays "
        "(gradgen.params.read(n)); xs (4, 3) and ys (4,) are the data."
    )
    assert lecture.modules() == ["n"] and lecture.prefix("n") == ""


def test_describe_scalars_defaults_and_small_modules():
    assert signature_of(exported("tests/learners/defaults.py")["softplus"]).describe() == (
        "softplus(x, temperature=1.0): x and temperature are numbers."
    )
    assert signature_of(exported("tests/learners/global_neuron.py")["f"]).describe() == (
        "f(w, b, x1, x2): w and b are unit's parameter arrays (gradgen.params.read(unit)); x1 and x2 are numbers."
    )
    assert signature_of(exported("examples/micrograd_tests.py")["sanity_check"]).describe() == (
        "sanity_check(x): x is a number."
    )
    assert signature_of(exported("examples/moons.py")["scores"]).describe().endswith("; X (B, 2) is the data.")


def write_model(tmp_path, source: str, name: str = "model.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    _, fns = load_model(str(path))
    return {f.__name__: f for f in fns}


def test_two_modules_are_prefixed_and_described(tmp_path):
    fns = write_model(
        tmp_path,
        """
        import gradgen
        from gradgen import nn

        enc = nn.Layer(2, 3)
        head = nn.Neuron(3, nonlin=False)
        unused = nn.Neuron(1)

        @gradgen.export
        def f(x1, x2, k=0.5):
            return head(enc([x1, x2])) * k
        """,
    )
    sig = signature_of(fns["f"])
    assert list(sig.inputs) == [
        P("enc_W", (3, 2), "enc"),
        P("enc_b", (3,), "enc"),
        P("head_w", (3,), "head"),
        P("head_b", (), "head"),
        S("x1"),
        S("x2"),
        S("k", 0.5),
    ]
    assert sig.modules() == ["enc", "head"]
    assert sig.prefix("enc") == "enc_" and sig.prefix("unused") == "unused_"
    assert sig.defaults() == {"k": 0.5}
    assert sig.describe() == (
        "f(enc_W, enc_b, head_w, head_b, x1, x2, k=0.5): enc_W and enc_b are enc's parameter arrays "
        "(gradgen.params.read(enc, 'enc_')); head_w and head_b are head's parameter arrays "
        "(gradgen.params.read(head, 'head_')); x1, x2 and k are numbers."
    )
    # the prefixes are the ones gradgen.params.read takes
    assert list(gradgen.params.read(fns["f"].__globals__["enc"], sig.prefix("enc"))) == ["enc_W", "enc_b"]


def test_params_modules_are_inputs_even_unused(tmp_path):
    """With params=, every array of the named module is an input, used or not."""
    fns = write_model(
        tmp_path,
        """
        import numpy as np
        import gradgen
        from gradgen import nn

        model = nn.MLP(2, [2, 1])

        @gradgen.export(params=model, example=dict(X=np.zeros((3, 2))))
        def f(X):
            return X[0][0] * X[1][1]
        """,
    )
    sig = signature_of(fns["f"])
    assert list(sig.inputs) == mlp("model", [2, 2, 1]) + [D("X", (3, 2))]


def test_lower_carries_the_signature_and_its_defaults():
    fn = exported("tests/learners/defaults.py")["softplus"]
    ir = lower(fn)
    assert ir.signature == signature_of(fn)
    assert ir.defaults == {"temperature": 1.0}
    each = lower(exported("examples/moons.py")["scores"])
    assert each.grad_opt is None and each.signature.returns == ("B",)


def test_gradient_note_names_the_data():
    lecture = signature_of(exported("examples/lecture_mlp.py")["loss"])
    assert lecture.gradient_note().endswith("each with its argument's shape; the data (xs and ys) get none.")
    neuron = signature_of(exported("examples/neuron.py")["neuron"])
    assert neuron.gradient_note() == (
        "Gradients come back in argument order, one per argument, each with its argument's shape."
    )


def test_signature_of_reads_the_export():
    from gradgen.frontend.trace import signature_of as traced_signature

    fn = exported("examples/moons.py")["loss"]
    assert traced_signature(fn) == signature_of(fn)
    assert traced_signature(fn).data() == [D("X", ("B", 2)), D("y", ("B",))]


def test_sig_input_kind_is_checked():
    with pytest.raises(ValueError, match="kind"):
        SigInput("x", "array")


# -- names from helper functions ------------------------------------------------


def names(graph) -> list[str]:
    return [n.name for n in graph.nodes if n.name]


def test_moons_margin_is_named_after_svm_loss():
    graph = trace_function(exported("examples/moons.py")["loss"], example=dict(X=np.zeros((1, 2)), y=np.zeros(1)))[0]
    named = {n.name: n for n in graph.nodes if n.name}
    assert named["svm_loss"].op.value == "relu"
    assert graph[graph.output(VALUE)].name == "out"


HELPERS = """
import gradgen

def halve(v):
    return v * 0.5

def same(v):
    return v

def sq(v):
    return v * v

@gradgen.export
def f(x, y):
    h = halve(x)            # a local of the caller wins over the helper's name
    s = same(y) + sq(y)     # same() computes nothing; sq's value is named sq
    g = (lambda v: v + 1.0)(s)   # a lambda names nothing
    return halve(g)         # the exported function's result keeps `out`
"""


def test_helper_names_only_where_unambiguous(tmp_path):
    fn = write_model(tmp_path, HELPERS)["f"]
    graph = trace_function(fn)[0]
    by_op = [(n.op.value, n.name) for n in graph.nodes if n.op.value not in ("input", "const")]
    assert by_op == [("mul", "h"), ("mul", "sq"), ("add", "s"), ("add", "g"), ("mul", "out")]
    # and the compiled code computes what the engine does
    mod = gradgen.compile_function(fn)
    from gradgen.engine import Value

    x, y = Value(0.3), Value(-1.7)
    ref = fn(x, y)
    ref.backward()
    value, grads = mod.f_grad(0.3, -1.7)
    assert value == pytest.approx(ref.data, rel=1e-15)
    assert grads == pytest.approx((x.grad, y.grad), rel=1e-15)


def test_helper_called_twice_names_both_values(tmp_path):
    fn = write_model(
        tmp_path,
        """
        import gradgen

        def sq(v):
            return v * v

        @gradgen.export
        def f(x, y):
            return sq(x) + sq(y)
        """,
    )["f"]
    graph = trace_function(fn)[0]
    assert [n.name for n in graph.nodes if n.op.value == "mul"] == ["sq", "sq"]
    source = gradgen.compile_function(fn).source
    assert "sq = x * x" in source and "sq_1 = y * y" in source


def test_a_labelled_argument_keeps_its_name_in_the_signature(tmp_path):
    """A label renames the traced node, not the argument the caller passes."""
    fn = write_model(
        tmp_path,
        """
        import gradgen

        @gradgen.export
        def f(x, k=2.0):
            x.label = "input_x"
            return x * k
        """,
    )["f"]
    graph, sig = trace_function(fn)
    assert graph[graph.inputs[0]].name == "input_x"
    assert list(sig.inputs) == [S("x"), S("k", 2.0)]
