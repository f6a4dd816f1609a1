"""Per-step losses on the readout, with their gradients (``docs/theory/rtrl.md`` eq. (5)).

``cross_entropy``: ``-log softmax(o)[y]`` with integer targets ``y`` of shape ``(B,)``.
``mse``: ``0.5 * sum_k (o_k - y_k)^2`` with float targets of shape ``(B, n_out)``.
Both are summed over the batch entries selected by ``mask`` (shape ``(B,)``).
"""

from __future__ import annotations

import numpy as np

LOSSES = ("cross_entropy", "mse")


def per_example_loss_and_grad(kind: str, logits: np.ndarray, target: np.ndarray):
    """Unmasked per-example loss ``(B,)`` and its gradient ``(B, n_out)``."""
    if kind == "mse":
        diff = logits - target
        return 0.5 * np.sum(diff * diff, axis=1), diff
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(target))
    grad = np.exp(logp)
    grad[rows, target] -= 1.0
    return -logp[rows, target], grad
