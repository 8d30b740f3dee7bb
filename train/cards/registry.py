"""The model card and its registry: every fact about a model in one place, one card per name.

A card says how to build the module for a spec, how to make the default spec, which data set kind it learns
from and how its labelled splits are loaded (the calibration, the gate, the robustness check and the demo all
read them through ``card.load_split``), its INT8 accuracy budget, how the demo trains and shows it, and the
pretrained backbone it stands on. ``register`` refuses a second card of a name, loudly.

Modules inside ``train`` that sit below the card definitions (the trainers, the checkpoint, the options) import
this module; everything above imports ``train.cards``. Either way the package's ``__init__`` has already read
every card module in ``train/cards/`` (Python runs a package's ``__init__`` before any of its modules), so
``get_card`` always sees the whole catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from runtime.spec import ModelSpec
from train.data.splits import DatasetKind, LabelledSplit, check_split
from train.errors import DataError, TrainError
from train.loop import TrainConfig
from train.models.transfer import BackboneInfo

# (spec, data root, "train" or "test", the image folder or None) → the labelled split at the spec's size
SplitLoader = Callable[[ModelSpec, Path, str, Path | None], LabelledSplit]
# (card, data root, output folder, show progress, how much of the budget) → the training report (what
# `<name>.metrics.json` holds)
DemoTrainer = Callable[["ModelCard", Path, Path, bool, "DemoBudget"], dict]
# (data root, demo output folder) → image files the demo runs the deploy CLI on, as a user would
SamplePicker = Callable[[Path, Path], list[Path]]


SMOKE_TRAIN_IMAGES = 12_000


@dataclass(frozen=True)
class DemoBudget:
    """How much of a card's demo budget a run trains: all of it (``make demo``), or a smoke run (``edge demo
    --smoke``, what ``make test`` runs): one epoch per phase on at most 12,000 training images. A smoke run checks
    that every step of the path runs; it does not check the card's accuracy target, and says so."""

    smoke: bool = False

    def configs(self, plan: DemoPlan) -> tuple[TrainConfig, ...]:
        return tuple(replace(c, epochs=1) for c in plan.budget) if self.smoke else plan.budget

    @property
    def limit(self) -> int | None:
        """The most training images a trainer reads (None: all of them)."""
        return SMOKE_TRAIN_IMAGES if self.smoke else None


FULL_BUDGET = DemoBudget()  # what `make demo` trains


@dataclass(frozen=True)
class DemoPlan:
    """How ``edge demo`` runs the model: a budget small enough for a 2-core CPU and what it must reach there."""

    target_accuracy: float  # on the held-out split, with this budget
    held_out: str  # the held-out split, as the demo's table names it
    budget: tuple[TrainConfig, ...]  # one per training phase (a transfer model: head, then fine-tuning)
    train: DemoTrainer
    samples: SamplePicker
    robustness_samples: int = 50  # per condition (about 12 s of CPU for a 28×28 model): a quick look
    real_photos: str | None = None  # labelled real photos under the data root (a scoreboard: evaluation only)


@dataclass(frozen=True)
class ModelCard:
    name: str
    builder: Callable[[ModelSpec, str], nn.Module]  # (spec, weights: none | imagenet | a path) → module
    spec_factory: Callable[[tuple[str, ...] | None, int | None], ModelSpec]  # (labels, image size) → spec
    dataset: DatasetKind
    splits: SplitLoader | None = None  # None: no labelled data here (a pretrained ImageNet classifier)
    data: str | None = None  # the folder under the data root the splits come from
    data_hint: str = "run `make data`"  # how to get that folder
    int8_max_drop_pp: float = 1.0  # the gate's INT8 budget: accuracy lost against FP32 PyTorch, in points
    demo: DemoPlan | None = None  # None: not part of `edge demo`
    backbone: BackboneInfo | None = None  # the pretrained backbone of a transfer model

    def build(self, spec: ModelSpec | None = None, weights: str = "none") -> nn.Module:
        return self.builder(spec or self.spec(), weights)

    def spec(self, labels: tuple[str, ...] | None = None, image_size: int | None = None) -> ModelSpec:
        return self.spec_factory(labels, image_size)

    def load_split(self, spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
        """The ``train`` split (for calibration) or the ``test`` split (for the gate), at the spec's size;
        ``folder`` replaces the card's folder under the data root (a user's own image folder)."""
        check_split(split)
        if self.splits is None:
            raise DataError(
                f"model {self.name!r} (data set {self.dataset.value!r}) has no labelled data to calibrate or judge "
                "on; calibrate a model trained on mnist, sign_mnist or an image folder"
            )
        if folder is None and self.data is not None:
            folder = Path(data_dir) / self.data
        return self.splits(spec, Path(data_dir), split, folder)

    def missing_data(self, data_dir: Path) -> str | None:
        """Why this model's data is not under ``data_dir``, with how to get it; None when it is there."""
        if self.data is None or (Path(data_dir) / self.data).is_dir():
            return None
        return f"{Path(data_dir) / self.data} not found; {self.data_hint}"


_CARDS: dict[str, ModelCard] = {}


def register(card: ModelCard) -> ModelCard:
    """Add a card; a second card of the same name is an error, never a silent overwrite."""
    if card.name in _CARDS:
        raise ValueError(f"model card {card.name!r} registered twice; model names must be unique")
    _CARDS[card.name] = card
    return card


def unregister(name: str) -> None:
    del _CARDS[name]


@contextmanager
def registered(card: ModelCard) -> Iterator[ModelCard]:
    """A card for the length of a ``with`` block (tests add a throwaway model this way)."""
    register(card)
    try:
        yield card
    finally:
        unregister(card.name)


def get_card(name: str) -> ModelCard:
    try:
        return _CARDS[name]
    except KeyError:
        raise TrainError(f"unknown model {name!r}; choose one of {', '.join(sorted(_CARDS))}") from None


def card_of(spec: ModelSpec) -> ModelCard:
    """The card of the model a spec describes (a spec carries its model's name)."""
    return get_card(spec.name)


def load_split(spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
    """The spec's model's ``train`` or ``test`` split, through its card (``ModelCard.load_split``)."""
    return card_of(spec).load_split(spec, data_dir, split, folder)


def all_cards() -> tuple[ModelCard, ...]:
    """Every card, in registration order."""
    return tuple(_CARDS.values())


def cards_of(dataset: DatasetKind) -> tuple[ModelCard, ...]:
    return tuple(c for c in _CARDS.values() if c.dataset is dataset)


def demo_cards() -> tuple[ModelCard, ...]:
    """The cards ``edge demo`` runs, in registration order."""
    return tuple(c for c in _CARDS.values() if c.demo is not None)
