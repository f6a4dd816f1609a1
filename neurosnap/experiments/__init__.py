"""The pieces that :mod:`neurosnap.compare` and :mod:`neurosnap.sweep` share.

- :mod:`~neurosnap.experiments.specs`: TOML values, rule specs, configs from paths or dicts;
- :mod:`~neurosnap.experiments.runs`: one training run from a configuration, the cost probe;
- :mod:`~neurosnap.experiments.report`: table cells, CSV, JSON, smoothed curves;
- :mod:`~neurosnap.experiments.workers`: work items in local processes.
"""
