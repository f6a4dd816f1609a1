"""Strings and files that describe experiments: TOML values, rule specs (``"SnAp:n=2"``), configs.

Shared by :mod:`neurosnap.compare` (rule specs) and :mod:`neurosnap.sweep` (grid axes).
"""

from __future__ import annotations

import copy
import re
import tomllib

from .. import config as config_mod

_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


class RuleSpecError(ValueError):
    """A rule spec string that cannot be used; the message quotes the spec."""


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` at ``sep`` outside brackets, braces and quotes (TOML values may hold commas)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ValueError(f"unbalanced quotes or brackets in {text!r}")
    parts.append(text[start:])
    return parts


def parse_value(raw: str):
    """A TOML value (``10``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``); a bare word is a string."""
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if _BARE.match(raw):
            return raw
        raise ValueError(
            f"{raw!r} is not a TOML value (quote strings that contain spaces or symbols)"
        ) from None


def parse_rule_spec(spec: str) -> tuple[str, dict]:
    """Parse ``"Name"`` or ``"Name:key=value,key=value"`` into ``(name, kwargs)``.

    Values are TOML (``SnAp:n=2``, ``BPTT:truncation=10``, ``RFLO:feedback="symmetric"``; a bare word
    such as ``feedback=symmetric`` is taken as a string). The name must be in
    :data:`neurosnap.rules.RULES` and the keys must be keywords of that rule; the rule is constructed
    once to check the values.

    Raises:
        RuleSpecError: the message quotes the bad spec and says what is wrong.
    """
    from ..rules import RULES

    if not isinstance(spec, str):
        from ..rules.base import Rule

        name = (
            spec.__name__
            if isinstance(spec, type) and issubclass(spec, Rule)
            else type(spec).__name__
            if isinstance(spec, Rule)
            else None
        )
        hint = (
            f": compare builds each rule from its spec, so pass the name {name!r} (not "
            f"ns.rules.{name} or an instance)"
            if name
            else ""
        )
        raise RuleSpecError(
            f"rule spec must be a string like 'RTRL' or 'SnAp:n=2', got {spec!r}{hint}"
        )
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise RuleSpecError(f"rule spec {spec!r}: missing rule name (expected e.g. 'SnAp:n=2')")
    if name not in RULES:
        raise RuleSpecError(
            f"rule spec {spec!r}: unknown rule {name!r}; expected one of "
            f"{sorted(RULES)}.{config_mod.did_you_mean(name, RULES)}"
        )
    kwargs = {}
    if rest.strip():
        try:
            items = split_top(rest)
        except ValueError as exc:
            raise RuleSpecError(f"rule spec {spec!r}: {exc}") from None
        for item in items:
            key, eq, raw = item.partition("=")
            key = key.strip()
            if not eq or not key or not raw.strip():
                raise RuleSpecError(
                    f"rule spec {spec!r}: {item.strip()!r} must look like key=value"
                )
            if key in kwargs:
                raise RuleSpecError(f"rule spec {spec!r}: {key!r} given twice")
            try:
                kwargs[key] = parse_value(raw)
            except ValueError as exc:
                raise RuleSpecError(f"rule spec {spec!r}: {key}: {exc}") from None
    elif ":" in spec:
        raise RuleSpecError(f"rule spec {spec!r}: nothing after ':' (expected key=value pairs)")
    allowed = config_mod.keywords(RULES[name])
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise RuleSpecError(
            f"rule spec {spec!r}: unknown key(s) {bad} for {name}; allowed: {sorted(allowed)}"
        )
    try:
        RULES[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise RuleSpecError(f"rule spec {spec!r}: {exc}") from None
    return name, kwargs


def load_config(config) -> dict:
    """A config dict from a path (TOML) or a dict (copied)."""
    if isinstance(config, dict):
        return copy.deepcopy(config)
    return config_mod.load(config)
