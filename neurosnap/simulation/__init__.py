"""Temporary: the module moved to neurosnap/simulation/engine.py (split in the next commit)."""
from .engine import (ENGINES, FORMAT, FORMAT_VERSION, RECORD_KINDS, ArraySource, BernoulliSource,
                     PoissonSource, Recording, Source, TaskSource, load_inputs, load_params,
                     simulate)
from . import engine as _engine
_cli_add_parser, _cli_main = _engine._cli_add_parser, _engine._cli_main
