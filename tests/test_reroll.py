"""The re-rolling pass (gradgen.passes.reroll) on small traced graphs: before/after, negative cases included.

Each case traces a small function of a `gradgen.nn` module's parameters and
array arguments (`gradgen.frontend.trace.trace`), optimises it (`gradgen.passes.optimize`),
re-rolls it, and checks

* what the result is made of (a `matmul` instead of `elem` reads of W, a
  `relu` over a whole array, `sum` ops), or which fallback was recorded and why;
* that the verifier passes on the traced, optimised and re-rolled graphs;
* that the numbers did not change: the IR interpreter gives the same values
  before and after re-rolling at seeded random inputs (batch of 5), to
  rounding (re-rolled sums run in another order).

Each case's docstring says what it checks.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

import gradgen
from gradgen import nn
from gradgen.ir.interp import evaluate
from gradgen.ir.ops import Op
from gradgen.ir.printer import format_graph
from gradgen.ir.verify import verify
from gradgen.passes import optimize
from gradgen.passes.reroll import reroll
from gradgen.frontend import layers
from gradgen.frontend.trace import trace

B = 5


@pytest.fixture(autouse=True)
def scalar_layers(monkeypatch):
    """These cases re-roll the scalar trace: the trace-time layer path (tests/test_layers.py) is off."""
    monkeypatch.setattr(layers, "ENABLED", False)


def layer(nin: int, nout: int, seed: int = 0) -> nn.Layer:
    random.seed(seed)
    return nn.Layer(nin, nout)


def mlp(nin: int, nouts: list[int], seed: int = 0) -> nn.MLP:
    random.seed(seed)
    return nn.MLP(nin, nouts)


def inputs(graph, seed: int = 0) -> list:
    """Seeded random values for `graph`'s inputs: the batch axis is B = 5."""
    rng = np.random.RandomState(seed)
    out = []
    for i in graph.inputs:
        shape = tuple(B if d == "B" else d for d in graph[i].shape)
        out.append(rng.uniform(-1.5, 1.5, shape) if shape else float(rng.uniform(-1.5, 1.5)))
    return out


def rerolled(fn, example, params):
    """(optimised trace, re-rolled graph, fallbacks); verifies all three and checks the numbers."""
    traced = verify(trace(fn, name="f", example=example, params=params))
    before = verify(optimize(traced, check=True))
    fallbacks: list = []
    after = verify(reroll(before, fallbacks))
    assert [after[i].name for i in after.inputs] == [before[i].name for i in before.inputs]
    assert [after[i].shape for i in after.inputs] == [before[i].shape for i in before.inputs]
    for seed in range(3):
        args = inputs(before, seed)
        want, got = evaluate(before, args)["value"], evaluate(after, args)["value"]
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=format_graph(after))
    return before, after, fallbacks


def ops(graph) -> Counter:
    return Counter(n.op for n in graph.nodes)


def elem_reads(graph, array: str) -> list:
    """The `elem` nodes that read the input named `array`."""
    return [
        n for n in graph.nodes if n.op is Op.ELEM and graph[n.args[0]].op is Op.INPUT and graph[n.args[0]].name == array
    ]


def scalar_nodes(graph, op: Op) -> list:
    return [n for n in graph.nodes if n.op is op and n.shape == ()]


def reasons(fallbacks) -> list[str]:
    return [f.reason for f in fallbacks]


X3 = np.zeros((1, 3))
Y = np.zeros(1)


# -- dot rows -> matmul -----------------------------------------------------------------------


def test_dot_rows_become_one_matmul():
    """A layer's dot rows b[j] + sum_k W[j, k] * x[k], for every j, become X @ W.T + b: no elem of W is left."""
    L = layer(3, 4)

    def tanh_sum(x):
        return sum(z.tanh() for z in L(x))

    def f(X):
        return gradgen.each(tanh_sum, X)

    before, after, fallbacks = rerolled(f, dict(X=X3), L)
    assert len(elem_reads(before, "W")) == 12  # one per weight before
    assert elem_reads(after, "W") == [] and elem_reads(after, "b") == []
    assert elem_reads(after, "X") == []
    assert ops(after)[Op.MATMUL] == 1 and ops(after)[Op.TRANSPOSE] == 1
    (mm,) = [n for n in after.nodes if n.op is Op.MATMUL]
    assert mm.shape == ("B", 4) and mm.name is None
    assert fallbacks == []


def test_square_weight_matrix_is_not_mistaken_for_its_transpose():
    """A 3x3 layer on 3 inputs: W and x have the same length, and the result is still X @ W.T (numbers checked)."""
    L = layer(3, 3, seed=1)

    def relu_sum(x):
        return sum(z.relu() for z in L(x))

    before, after, fallbacks = rerolled(lambda X: gradgen.each(relu_sum, X), dict(X=X3), L)
    assert ops(after)[Op.MATMUL] == 1 and ops(after)[Op.TRANSPOSE] == 1
    assert elem_reads(after, "W") == [] and fallbacks == []


def test_columns_of_w_become_matmul_without_transpose():
    """Dot products down the columns, sum_k W[k, j] * x[k], become X @ W (no transpose)."""
    L = layer(3, 3, seed=2)
    W = [[n.w[k] for k in range(3)] for n in L.neurons]

    def columns(x):
        return sum(sum((W[k][j] * x[k] for k in range(3)), L.neurons[j].b).relu() for j in range(3))

    before, after, fallbacks = rerolled(lambda X: gradgen.each(columns, X), dict(X=X3), L)
    assert ops(after)[Op.MATMUL] == 1 and ops(after)[Op.TRANSPOSE] == 0
    assert elem_reads(after, "W") == [] and fallbacks == []


def test_one_output_neuron_is_a_vector_product():
    """A width-1 last layer is like the others, z1 = h0 @ W1.T + b1 of shape (B, 1), and its one
    output is the column z1[:, 0]: no W1[0] or b1[0] gathers."""
    M = mlp(3, [4, 1])

    def sq(x, yi):
        return (M(x) - yi) ** 2

    before, after, fallbacks = rerolled(lambda X, y: gradgen.mean(sq, X, y), dict(X=X3, y=Y), M)
    mms = [n for n in after.nodes if n.op is Op.MATMUL]
    assert [n.shape for n in mms] == [("B", 4), ("B", 1)]
    assert [after[n.args[1]].op for n in mms] == [Op.TRANSPOSE, Op.TRANSPOSE]
    assert elem_reads(after, "W1") == [] and elem_reads(after, "b1") == []
    assert elem_reads(after, "W0") == [] and fallbacks == []
    column = [n for n in after.nodes if n.op is Op.ELEM]
    assert [(after[n.args[0]].name, n.attr, n.shape) for n in column] == [("z1", (0,), ("B",))]


def test_one_neuron_hidden_layer_stays_an_array():
    """A one-neuron hidden layer feeding a wider one: relu over the (B, 1) array, then a matmul;
    neither layer reads a row or an element of its weights."""
    M = mlp(3, [1, 2])

    def sq(x, yi):  # micrograd's Layer returns its one neuron's Value: wrapped in a list again
        return (sum(t.tanh() for t in M.layers[1]([M.layers[0](x)])) - yi) ** 2

    before, after, fallbacks = rerolled(lambda X, y: gradgen.mean(sq, X, y), dict(X=X3, y=Y), M)
    assert [n.shape for n in after.nodes if n.op is Op.MATMUL] == [("B", 1), ("B", 2)]
    assert [n.shape for n in after.nodes if n.op is Op.RELU] == [("B", 1)]
    for w in ("W0", "W1", "b0", "b1"):
        assert elem_reads(after, w) == []
    assert fallbacks == []


# -- elementwise packs ---------------------------------------------------------------------------


def test_relu_over_every_neuron_is_one_array_relu():
    """The hidden layer's ReLUs, one per neuron, become one relu over the (B, 4) array: no scalar relu is left."""
    M = mlp(3, [4, 1])

    def sq(x, yi):
        return (M(x) - yi) ** 2

    before, after, _ = rerolled(lambda X, y: gradgen.mean(sq, X, y), dict(X=X3, y=Y), M)
    assert ops(before)[Op.RELU] == 4
    relus = [n for n in after.nodes if n.op is Op.RELU]
    assert [n.shape for n in relus] == [("B", 4)]
    assert relus[0].name == "h0"  # named after the layer, as in hand-written NumPy


def test_tanh_over_some_elements_falls_back():
    """Negative: tanh of 2 of the 3 elements of x is not a pack: a fallback, per-element tanh."""

    def two(x):
        return x[0].tanh() + x[1].tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.each(two, X), dict(X=X3), None)
    assert reasons(fallbacks) == ["tanh over 2 of the 3 elements is computed per element"]
    assert [n.shape for n in after.nodes if n.op is Op.TANH] == [("B",), ("B",)]


def test_elements_at_unrelated_indices_fall_back():
    """Negative: x[0] * x[1] pairs different indices of one array: recorded as a fallback, per-element mul."""

    def cross(x):
        return (x[0] * x[1]).tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.mean(cross, X), dict(X=X3), None)
    assert reasons(fallbacks) == ["mul of elements at unrelated indices is computed per element"]
    (fb,) = fallbacks
    assert fb.loc is not None and fb.loc.file == __file__
    assert sorted(n.attr for n in elem_reads(after, "X")) == [(0,), (1,)]


def test_unrelated_weight_indices_fall_back():
    """Negative: W[j, k] * W[k, j] (a matrix times its transpose, elementwise) is computed per element."""
    L = layer(3, 3, seed=3)
    W = [[n.w[k] for k in range(3)] for n in L.neurons]

    def f(s):
        return s * sum(W[j][k] * W[k][j] for j in range(3) for k in range(3))

    before, after, fallbacks = rerolled(f, dict(s=1.0), L)
    assert "mul of elements at unrelated indices is computed per element" in reasons(fallbacks)


# -- reductions ------------------------------------------------------------------------------------


def test_l2_term_becomes_sums_of_whole_arrays():
    """sum(p * p for p in model.parameters()) becomes one mul and one sum per parameter array: no elem left."""
    M = mlp(2, [3, 1])

    def l2(s):
        return s * sum(p * p for p in M.parameters())

    before, after, fallbacks = rerolled(l2, dict(s=1.0), M)
    assert ops(after)[Op.ELEM] == 0
    sums = [n for n in after.nodes if n.op is Op.SUM]
    assert sorted(after[n.args[0]].shape for n in sums) == sorted([(3, 2), (3,), (1, 3), (1,)])
    for n in sums:
        sq = after[n.args[0]]
        assert sq.op is Op.MUL and sq.args[0] == sq.args[1] and after[sq.args[0]].op is Op.INPUT
    assert fallbacks == []


def test_sum_over_every_element_is_a_sum():
    """x[0] + x[1] + x[2] over all of a row becomes sum(X, axis=1)."""

    def total(x):
        return (x[0] + x[1] + x[2]).tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.each(total, X), dict(X=X3), None)
    assert [n.attr for n in after.nodes if n.op is Op.SUM] == [(1,)]
    assert elem_reads(after, "X") == [] and fallbacks == []


def test_sum_over_some_elements_falls_back():
    """Negative: x[0] + x[2] skips x[1]: a fallback, per-element adds."""

    def part(x):
        return (x[0] + x[2]).tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.each(part, X), dict(X=X3), None)
    assert reasons(fallbacks) == ["a sum over some elements of an array is computed per element"]
    assert ops(after)[Op.SUM] == 0


def test_sum_counting_an_element_twice_falls_back():
    """Negative: x[0] + x[1] + x[2] + x[0] covers every index but one twice: not a sum over the array."""

    def twice(x):
        return (x[0] + x[1] + x[2] + x[0]).tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.each(twice, X), dict(X=X3), None)
    assert reasons(fallbacks) == ["a sum over some elements of an array is computed per element"]


def test_cross_term_beside_an_l2_term_is_not_read_from_the_square():
    """Negative: W0[0, 0] * W0[0, 1] in the chain of sum(p * p) stays a product of its own two
    elements (it is not (W0 * W0)[0, 0]); the whole squares are still summed.  Before the fix this
    read the square's element and gave the wrong number (the interpreter check in `rerolled`)."""
    M = mlp(2, [3, 1])
    W = [n.w for n in M.layers[0].neurons]

    def l2(s):
        return s * (sum(p * p for p in M.parameters()) + W[0][0] * W[0][1])

    before, after, fallbacks = rerolled(l2, dict(s=1.0), M)
    squared = [n for n in after.nodes if n.op is Op.MUL and n.args[0] == n.args[1] and after[n.args[0]].op is Op.INPUT]
    assert sorted(after[n.args[0]].name for n in squared) == ["W0", "W1", "b0", "b1"]
    assert sorted(n.attr for n in elem_reads(after, "W0")) == [(0, 0), (0, 1)]
    assert reasons(fallbacks) == ["a sum over some elements of an array is computed per element"]


def test_l2_over_some_parameters_falls_back():
    """Negative: an L2 term that skips the first weight is not a sum of whole arrays: one fallback (W0)."""
    M = mlp(2, [3, 1])

    def l2(s):
        return s * sum(p * p for p in M.parameters()[1:])

    before, after, fallbacks = rerolled(l2, dict(s=1.0), M)
    assert reasons(fallbacks) == ["a sum over some elements of an array is computed per element"]
    assert len(elem_reads(after, "W0")) == 5  # the five other weights of W0, one by one


# -- a model that uses only some neurons -----------------------------------------------------------


def test_one_neuron_of_a_layer_falls_back_to_a_row():
    """Using only neurons[0] of a 4-neuron layer: a fallback naming row [0] of W0, computed as X @ W0[0]."""
    M = mlp(3, [4, 1])

    def first(x, yi):
        return (M.layers[0].neurons[0](x) - yi) ** 2

    before, after, fallbacks = rerolled(lambda X, y: gradgen.mean(first, X, y), dict(X=X3, y=Y), M)
    assert reasons(fallbacks) == ["dot products with rows [0] of W0 only are computed row by row"]
    assert fallbacks[0].loc is not None and fallbacks[0].loc.file == __file__
    assert [n.attr for n in elem_reads(after, "W0")] == [(0,)]
    assert [n.shape for n in after.nodes if n.op is Op.MATMUL] == [("B",)]


def test_two_of_three_outputs_fall_back_to_rows():
    """Summing only 2 of a layer's 3 outputs: DCE drops the third neuron, and rows [0, 1] are computed one by one."""
    L = layer(3, 3, seed=4)

    def two(x):
        o = L(x)
        return o[0] + o[1]

    before, after, fallbacks = rerolled(lambda X: gradgen.each(two, X), dict(X=X3), L)
    assert reasons(fallbacks) == ["dot products with rows [0, 1] of W only are computed row by row"]
    assert sorted(n.attr for n in elem_reads(after, "W")) == [(0,), (1,)]


def test_permuted_inputs_are_not_a_dot_row():
    """Negative: a neuron fed (x[1], x[0], x[2]) pairs W[j, k] with x[k'] for k' != k: no matmul."""
    L = layer(3, 3, seed=5)

    def permuted(x):
        return sum(L([x[1], x[0], x[2]])).tanh()

    before, after, fallbacks = rerolled(lambda X: gradgen.each(permuted, X), dict(X=X3), L)
    assert ops(after)[Op.MATMUL] == 0
    assert fallbacks != []


def test_two_weight_matrices_in_one_chain_are_not_a_dot_row():
    """Negative: a dot row whose products alternate between W0 and W1 mixes arrays: no matmul, a fallback."""
    M = mlp(3, [3, 3], seed=6)
    W0 = [[n.w[k] for k in range(3)] for n in M.layers[0].neurons]
    W1 = [[n.w[k] for k in range(3)] for n in M.layers[1].neurons]

    def mixed(x):
        return sum(sum((W0 if k % 2 else W1)[j][k] * x[k] for k in range(3)).relu() for j in range(3))

    before, after, fallbacks = rerolled(lambda X: gradgen.each(mixed, X), dict(X=X3), M)
    assert ops(after)[Op.MATMUL] == 0
    assert fallbacks != []


# -- the pass as a whole -------------------------------------------------------------------------------


def test_graph_without_elem_reads_is_returned_unchanged():
    """Negative: scalar code (no array inputs, no parameters) is not touched: reroll returns the same graph."""

    def scalar(a, b):
        return (a * b + a).tanh()

    g = optimize(trace(scalar, example=(1.0, 2.0)), check=True)
    fallbacks: list = []
    assert reroll(g, fallbacks) is g
    assert fallbacks == []


def test_micrograd_mlp_rerolls_completely_and_deterministically():
    """micrograd's 2-16-16-1 SVM loss re-rolls with no fallback, the same printed IR every time."""
    M = mlp(2, [16, 16, 1], seed=1337)

    def svm(x, yi):
        return (1 + -yi * M(x)).relu()

    def loss(X, y):
        return gradgen.mean(svm, X, y) + 1e-4 * sum(p * p for p in M.parameters())

    before, after, fallbacks = rerolled(loss, dict(X=np.zeros((1, 2)), y=Y), M)
    assert fallbacks == []
    assert ops(after)[Op.MATMUL] == 3 and ops(after)[Op.SUM] == 7  # batch sum + six L2 sums
    assert len(after.nodes) < 60 < len(before.nodes)
    assert format_graph(reroll(before)) == format_graph(after)


def test_plain_micrograd_loop_rerolls_over_the_examples():
    """micrograd's plain loop over 4 fixed examples: the per-example copies become (4, n) arrays, no fallback."""
    M = mlp(3, [4, 4, 1], seed=42)
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]

    def loss(xs, ys):
        ypred = [M(x) for x in xs]
        return sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))

    before, after, fallbacks = rerolled(loss, dict(xs=xs, ys=ys), M)
    assert fallbacks == []
    assert [n.shape for n in after.nodes if n.op is Op.MATMUL] == [(4, 4), (4, 4), (4, 1)]
    assert elem_reads(after, "xs") == []
