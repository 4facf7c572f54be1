"""Peers shared by bench_numba.py and bench_mlp.py: the best hand-written NumPy SGD step, and
JAX's jitted step and `lax.fori_loop` of steps (one place, imported by both).

* `HandStep(params, B, loss)`: flat parameter and gradient buffers (each layer's arrays are
  views into them), every product and activation written into preallocated arrays with
  `out=`, the L2 term one `np.vdot`, and one fused update of the flat buffer;
* `jax_step_and_train(jax, f, X, T)`: `step(ps, lr) -> (ps, loss)` and
  `train(ps, lrs) -> (ps, losses)` (len(lrs) steps in one `lax.fori_loop`), both `jax.jit`,
  for the loss `f(ps, X, T)` (x64 must be on).
"""

from __future__ import annotations

import numpy as np


class HandStep:
    """The best hand-written NumPy SGD step of a ReLU MLP (`loss`: "svm" + L2, or "ce")."""

    def __init__(self, params, B, loss, alpha=1e-4):
        self.loss, self.alpha, self.B = loss, alpha, B
        self.theta = np.concatenate([p.ravel() for p in params])  # every parameter, one buffer
        self.grad = np.zeros_like(self.theta)  # every gradient, one buffer
        self.p, self.g, k = [], [], 0
        for p in params:
            self.p.append(self.theta[k : k + p.size].reshape(p.shape))
            self.g.append(self.grad[k : k + p.size].reshape(p.shape))
            k += p.size
        W = self.p[0::2]
        self.z = [np.empty((B, w.shape[0])) for w in W]  # pre-activations, then activations in place
        self.gz = [np.empty((B, w.shape[0])) for w in W]
        self.mask = [np.empty((B, w.shape[0]), dtype=bool) for w in W[:-1]]

    def step(self, X, y, lr):
        (W0, b0, W1, b1, W2, b2), (gW0, gb0, gW1, gb1, gW2, gb2) = self.p, self.g
        (z0, z1, z2), (g0, g1, g2), (m0, m1) = self.z, self.gz, self.mask
        B = X.shape[0]
        np.dot(X, W0.T, out=z0)
        z0 += b0
        np.maximum(z0, 0.0, out=z0)  # h0
        np.dot(z0, W1.T, out=z1)
        z1 += b1
        np.maximum(z1, 0.0, out=z1)  # h1
        np.dot(z1, W2.T, out=z2)
        z2 += b2
        if self.loss == "svm":
            margin = 1.0 - y * z2[:, 0]
            active = margin > 0.0
            loss = margin[active].sum() / B + self.alpha * np.vdot(self.theta, self.theta)
            np.multiply(y, active, out=g2[:, 0])
            g2 *= -1.0 / B
        else:  # softmax cross-entropy (log-sum-exp minus the target's logit), mean over the batch
            np.exp(z2, out=g2)
            s = g2.sum(axis=1)
            loss = (np.log(s).sum() - np.vdot(y, z2)) / B
            g2 /= s[:, None]
            g2 -= y
            g2 *= 1.0 / B
        np.dot(g2.T, z1, out=gW2)
        np.sum(g2, axis=0, out=gb2)
        np.dot(g2, W2, out=g1)
        np.greater(z1, 0.0, out=m1)
        g1 *= m1
        np.dot(g1.T, z0, out=gW1)
        np.sum(g1, axis=0, out=gb1)
        np.dot(g1, W1, out=g0)
        np.greater(z0, 0.0, out=m0)
        g0 *= m0
        np.dot(g0.T, X, out=gW0)
        np.sum(g0, axis=0, out=gb0)
        if self.loss == "svm":  # one fused update: theta -= lr * (grad + 2 alpha theta)
            self.theta *= 1.0 - 2.0 * self.alpha * lr
        self.theta -= lr * self.grad
        return loss

    def set(self, params):
        for v, p in zip(self.p, params):
            v[...] = p

    def grads(self, X, y):
        """(loss, gradients) at the current parameters, the L2 term's included (no update)."""
        loss = self.step(X, y, 0.0)
        extra = 2.0 * self.alpha if self.loss == "svm" else 0.0
        return loss, [g + extra * p for g, p in zip(self.g, self.p)]


def jax_step_and_train(jax, f, X, T):
    """The jitted SGD step of the loss f(ps, X, T) on a list of arrays, and K of them in a fori_loop."""
    import jax.numpy as jnp

    vg = jax.value_and_grad(f)

    @jax.jit
    def step(ps, lr):
        v, g = vg(ps, X, T)
        return [p - lr * gi for p, gi in zip(ps, g)], v

    @jax.jit
    def train(ps, lrs):
        def body(k, carry):
            ps, vs = carry
            ps, v = step(ps, lrs[k])
            return ps, vs.at[k].set(v)

        return jax.lax.fori_loop(0, lrs.shape[0], body, (ps, jnp.zeros(lrs.shape[0])))

    return step, train
