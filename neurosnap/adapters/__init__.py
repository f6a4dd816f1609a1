"""Translations to and from other simulators: :mod:`.brian2` and :mod:`.norse` (``docs/adapters.md``).

Import the submodule you need (``from neurosnap.adapters import brian2``); each imports its simulator
lazily, inside its functions, so neither Brian2 nor Norse is needed to use neurosnap.
"""
