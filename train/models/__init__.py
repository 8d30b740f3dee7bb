"""The model registry: an explicit table of name → (builder, ModelSpec). No silent overwrites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from runtime.spec import ModelSpec
from train.errors import TrainError
from train.models.mnist import MnistCNN, MnistMLP, mnist_spec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[], nn.Module]
    spec: Callable[[], ModelSpec]
    dataset: str


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("mnist_mlp", MnistMLP, lambda: mnist_spec("mnist_mlp"), "mnist"),
        ModelEntry("mnist_cnn", MnistCNN, lambda: mnist_spec("mnist_cnn"), "mnist"),
    )
}


def get_model(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise TrainError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
