"""The contract every learning rule follows.

A rule is a frozen dataclass of hyperparameters (picklable, hashable) with three methods:

- ``init(model, params, batch) -> state``: a fresh rule state (zero influence / traces / history);
- ``step(state, record, credit, *, params, dlogits, **extras) -> (state, grad)``: advance with one
  step record and the credit ``dL_t/ds_t`` of shape ``(B, S, n)`` (``dlogits`` is ``dL_t/do_t`` of
  shape ``(B, n_out)``, for rules with their own feedback pathway, e.g. random feedback); ``grad`` is the gradient of the cell parameters that
  became available at this step as a flat ``(P,)`` vector (see :class:`~neurosnap.core.layout.ParamLayout`),
  or ``None`` (BPTT between truncation boundaries);
- ``flush(state, params=...) -> (state, grad)``: end of a sequence; returns what is still pending.
- ``cost(state, record) -> dict`` (optional to override): ``influence_nnz`` (non-zeros stored in the
  influence / trace after the step), ``influence_size`` (numbers stored) and ``macs`` (multiply-adds
  of the step), per sequence; read by :func:`neurosnap.sparse.stats.step_stats`.

Keyword arguments after ``*`` leave room for extras without breaking the signature.
"""

from __future__ import annotations

import abc

from ..sparse.stats import backward_step_macs


def check_rule(rule, name: str = "rule"):
    """Return ``rule`` if it is a rule instance; otherwise raise a ``TypeError`` that says what to pass
    (a rule class given without ``()`` is named as such)."""
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, type) and issubclass(rule, Rule):
        raise TypeError(
            f"{name} must be a rule instance, got the class {rule.__name__}: pass "
            f"ns.rules.{rule.__name__}() (an instance), not ns.rules.{rule.__name__}"
        )
    raise TypeError(
        f"{name} must be a neurosnap rule instance such as ns.rules.RTRL(), got "
        f"{type(rule).__name__}"
    )


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

    def cost(self, state, record) -> dict:
        """Cost of the step that consumed ``record``, per sequence (see module docstring).

        Default: a rule that stores no influence and uses the record once backwards (BPTT): no
        influence entries, and the multiply-adds of one backward step
        (:func:`neurosnap.sparse.stats.backward_step_macs`). Rules with traces override this.
        """
        layout = getattr(state, "layout", None)
        P = layout.size if layout is not None else 0
        return {"influence_nnz": 0.0, "influence_size": 0.0, "macs": backward_step_macs(record, P)}
