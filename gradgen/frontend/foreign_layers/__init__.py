"""The layer path of the foreign front end: a foreign engine's neuron, recognised and emulated.

Run on micrograd's own Values, a 784-128 layer builds 200,704 `Value`s (a
product and a sum per weight) that the walk turns into 200,704 IR nodes and
re-rolling groups back into one matrix product; that was most of the 77 CPU
s a 784-128-64-10 MLP took to compile.  `neurons(found)` finds the model's
*neuron-like* objects, `patch(run, neurons)` puts a wrapper on their classes'
`__call__` for the duration of one foreign run (as `__init__` is wrapped,
`restore` takes it off), and the wrapper records instead
what re-rolling would have built, as `gradgen.frontend.layers` does for
`gradgen.nn`:

    z = V @ W.T + b        (transpose, matmul, add)
    h = act(z)             (relu or tanh, when the neuron has one)

returning, for neuron j, a Value of the user's class whose node is
`elem h (j,)` (and whose `.data` is computed in plain floats, in the same
order), so the module is byte for byte the scalar path's.

Nothing about the code is trusted; everything is checked:

* A neuron-like object is found by structure, not by names: an object among
  the model's attributes holding exactly one list of engine Values (its
  weights, whatever the attribute is called) and exactly one engine Value
  (its bias), whose weights and bias are row j of one parameter array
  `W (nout, nin)` and element j of one `b (nout,)` (`gradgen.params`'s
  layout of the module).
* The first call of each (class, `__call__` function, input size, the
  neuron's other plain attributes) on each layer, in each run (the example
  point and the second point), runs the user's code for real, and the graph
  it builds must be exactly `act(((b + w0*x0) + w1*x1) + ...)` -- micrograd's
  and the lecture's `sum((wi*xi for ...), self.b)` -- over those very Value
  objects (the weights, the bias, the inputs given), every intermediate
  Value made by that call, the products and sums on one line, nothing
  stored on the neuron; and the emulated data must equal the real one (to
  the replay's tolerance).  Only then are that key's later calls emulated.
* The inputs must be a whole row of one array (every element `k` of `V`'s
  last axis once, in order): the elements of an example row of
  `gradgen.mean`, of a vector argument, or the outputs of the previous
  emulated layer; as the user's Values (`list(map(Value, x))`) or as the
  argument's floats themselves.
* A class any of whose functions (or its bases', nested code included)
  names `data` is never emulated: a branch on the numbers (`act.relu() if
  self.w[0].data > 0 else act`) could take another way on another neuron of
  the same layer, which neither the first call nor the second point shows.
* Each emulated output is replayed against the IR with the walked Values
  (`foreign._replay`), and the second run compares structures as before.

Anything else -- a subclass whose forward differs (its graph is not the
pattern), a partial or computed row, a neuron called inside another wrapped
call, one or zero inputs, parameters outside the layout -- runs the user's
code as before (the scalar path).  What is still trusted: that a neuron's
code without `.data` in it builds the same graph on every call with the same
plain attributes (it could read a global that changes between calls).
`.data` of an emulated output is a plain float, not the argument-remembering
float of the scalar path: a constant made from it (`Value(h.data)`) differs
between the two points and is refused there.

`gradgen.frontend.layers.ENABLED` (`GRADGEN_LAYERS=0` turns it off) switches
this path too.

The package, one responsibility a module:

    recognise.py   neuron-like objects by structure; a call's key; classes that read `.data`
    verify.py      a layer's first call, run for real: its graph must be the pattern, same data
    places.py      where a neuron's weights (W row j, b[j]) and its inputs (a row of V) are
    emulate.py     `patch`/`restore` and one run's state: later calls record V @ W.T + b (+ act)
"""

from gradgen.frontend.foreign_layers.emulate import patch, restore
from gradgen.frontend.foreign_layers.places import param_node
from gradgen.frontend.foreign_layers.recognise import neurons

__all__ = ["neurons", "param_node", "patch", "restore"]
