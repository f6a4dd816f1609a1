"""Credit-assignment rules, one file each, theory in ``docs/theory/``: :class:`BPTT`, :class:`RTRL`,
:class:`UORO`, :class:`RFLO`, :class:`EProp`."""
from .base import Rule
from .bptt import BPTT
from .eprop import EProp
from .rflo import RFLO
from .rtrl import RTRL
from .uoro import UORO

RULES = {"BPTT": BPTT, "RTRL": RTRL, "UORO": UORO, "RFLO": RFLO, "EProp": EProp}

__all__ = ["Rule", "BPTT", "RTRL", "UORO", "RFLO", "EProp", "RULES"]
