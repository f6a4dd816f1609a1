"""Credit-assignment rules: :class:`RTRL`, :class:`SnAp`, :class:`BPTT`, :class:`UORO`, :class:`RFLO`,
:class:`EProp` and the plasticity rules :class:`STDP`, :class:`RSTDP` (one file each; the equations
are on the theory pages, ``docs/theory/``)."""

from .base import Rule
from .bptt import BPTT
from .eprop import EProp
from .rflo import RFLO
from .rtrl import RTRL
from .snap import SnAp
from .stdp import RSTDP, STDP
from .uoro import UORO

RULES = {"BPTT": BPTT, "RTRL": RTRL, "SnAp": SnAp, "UORO": UORO, "RFLO": RFLO, "EProp": EProp}

__all__ = ["Rule", "BPTT", "RTRL", "UORO", "RFLO", "EProp", "RULES"]

RULES.update(STDP=STDP, RSTDP=RSTDP)  # baselines (rules/stdp.py), not gradient estimators
__all__ += ["STDP", "RSTDP"]
