"""Tasks: batches ``(xs (T, B, n_in), ys, mask (T, B))`` and metrics, definitions in each module."""
from .base import Batch, Task
from .copy import Copy
from .spiral import Spiral

TASKS = {"copy": Copy, "spiral": Spiral}

__all__ = ["Batch", "Task", "Copy", "Spiral", "TASKS"]
