"""Names re-rolling gives the arrays it builds, as a learner would write them by hand.

The rules (each a function; the vectoriser calls them and nothing else names):

* a layer's pre-activation `x @ W0.T + b0` is `z0` (the weight's name without its
  leading `W`/`w`), and the suffix `0` follows the layer; a layer held in an
  attribute, `x @ fc1_W.T + fc1_b`, is `z_fc1` (activation `h_fc1`);
* an activation (relu, tanh, sigmoid) of a layer's `z0` is `h0`;
* the column `z2.T[0]` of a one-neuron layer over stacked examples is `z2_0`;
* an element read `W2[0, 1]` is `W2_0_1`, or the name the model gave the value it
  stands for (`score = z2[:, 0]`).

Every name is a hint: it goes through `gradgen.names.Namespace` when emitted.
"""

from __future__ import annotations

import re

from gradgen.ir.ops import Op

ACTIVATIONS = (Op.RELU, Op.TANH, Op.SIGMOID)


def layer_suffix(weight_name: str) -> str | None:
    """`W0` -> `0` (the suffix the layer's arrays share); a layer in an attribute, `fc1_W` ->
    `_fc1` (`z_fc1`, `h_fc1`; `blocks0_fc1_W` -> `_blocks0_fc1`); None for other names."""
    m = re.fullmatch(r"(\w+?)_[Ww](\d*)", weight_name)
    if m:
        return f"_{m[1]}{m[2]}"
    return weight_name[1:] if weight_name[:1] in "Ww" and len(weight_name) > 1 else None


def preactivation(suffix: str) -> str:
    return "z" + suffix


def activation(op: Op, suffix: str) -> str | None:
    return "h" + suffix if op in ACTIVATIONS else None


def column(array_name: str | None) -> str | None:
    return f"{array_name}_0" if array_name else None


def element(array_name: str | None, index: tuple) -> str | None:
    return f"{array_name}_{'_'.join(map(str, index))}" if index and array_name else None
