"""Integer codes the compiled engine dispatches on (cells, gates, losses, optimizers, rules)."""

from __future__ import annotations

#: cell kinds (:meth:`neurosnap.cells.base.Cell.compiled_spec`)
LEAKY, EGRU, LIF, ALIF = 0, 1, 2, 3
#: gates (:meth:`neurosnap.gates.Gate.compiled_spec`); LeakyRNN uses ``TRIANGLE`` with no effect
TRIANGLE, FAST_SIGMOID, SMOOTH = 0, 1, 2
#: losses
CROSS_ENTROPY, MSE = 0, 1
#: optimizers (``NO_OPT``: accumulate gradients only, ``ns.sequence_grad``)
NO_OPT, SGD, ADAM = 0, 1, 2
#: trace rules (one ``(B, S, P)`` trace per sequence)
SNAP1, RFLO, EPROP = 0, 1, 2
#: influence rules
BLOCK, DENSE = 0, 1
