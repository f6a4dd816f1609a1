"""Credit-assignment rules: :class:`BPTT`, :class:`RTRL` (one file each, theory in ``docs/theory/``)."""
from .base import Rule
from .bptt import BPTT
from .rtrl import RTRL

RULES = {"BPTT": BPTT, "RTRL": RTRL}

__all__ = ["Rule", "BPTT", "RTRL", "RULES"]
