"""Tools on top of the compiler: `check` (compiled gradients vs the engine, PyTorch and finite
differences; `gradgen check`) and `draw` (a function's IR as a graph; `gradgen graph`)."""
