"""The contract every learning rule follows.

A rule is a frozen dataclass of hyperparameters (picklable, hashable) with three methods:

- ``init(model, params, batch) -> state``: a fresh rule state (zero influence / traces / history);
- ``step(state, record, credit, *, params, dlogits, **extras) -> (state, grad)``: advance with one
  step record and the credit ``dL_t/ds_t`` of shape ``(B, S, n)`` (``dlogits`` is ``dL_t/do_t`` of
  shape ``(B, n_out)``, for rules with their own feedback pathway, e.g. random feedback); ``grad`` is the gradient of the cell parameters that
  became available at this step as a flat ``(P,)`` vector (see :class:`~neurosnap.core.layout.ParamLayout`),
  or ``None`` (BPTT between truncation boundaries);
- ``flush(state, params=...) -> (state, grad)``: end of a sequence; returns what is still pending.

Keyword arguments after ``*`` leave room for extras without breaking the signature.
"""
from __future__ import annotations

import abc


class Rule(abc.ABC):
    """Abstract learning rule (see module docstring)."""

    #: True when the rule produces its gradient step by step (influence / trace based).
    online: bool = True

    @abc.abstractmethod
    def init(self, model, params, batch: int):
        """Fresh rule state for a batch of ``batch`` sequences."""

    @abc.abstractmethod
    def step(self, state, record, credit, *, params, dlogits=None, **extras):
        """Advance with ``record`` (step t) and project ``credit (B, S, n)``; return ``(state, grad)``."""

    def flush(self, state, *, params, **extras):
        """End of sequence: return ``(state, pending gradient or None)``."""
        return state, None
