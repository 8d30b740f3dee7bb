"""Model cards: one card per model, every fact about it in one place (``train.cards.registry``).

Adding a model is adding one module to this folder that builds a ``ModelCard`` and calls ``register`` (see
``course.py``), plus its tests: the trainers, the export, the calibration splits, the gate's budget and the demo
read the card, nothing else. Every module here is imported, in name order, when the package is first imported;
a card module imports its builder and data loaders at module level and its trainer inside the demo hook.
"""

from __future__ import annotations

import importlib
import pkgutil

from train.cards.registry import (
    FULL_BUDGET,
    SMOKE_TRAIN_IMAGES,
    DemoBudget,
    DemoPlan,
    ModelCard,
    all_cards,
    card_of,
    cards_of,
    demo_cards,
    get_card,
    load_split,
    register,
    registered,
    unregister,
)
from train.data.splits import TEST, DatasetKind, LabelledSplit

__all__ = [
    "TEST",
    "DatasetKind",
    "FULL_BUDGET",
    "SMOKE_TRAIN_IMAGES",
    "DemoBudget",
    "DemoPlan",
    "LabelledSplit",
    "ModelCard",
    "all_cards",
    "card_of",
    "cards_of",
    "demo_cards",
    "get_card",
    "load_split",
    "register",
    "registered",
    "unregister",
]

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "registry":
        importlib.import_module(f"{__name__}.{_module}")
