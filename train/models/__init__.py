"""The model registry: an explicit table of name → (builder, ModelSpec). No silent overwrites.

``entry.build(spec, weights)`` makes the module for a spec (transfer models size their head from
its labels; ``weights`` is ``none``, ``imagenet`` or a path, and matters only for pretrained
backbones). ``entry.spec(labels, image_size)`` makes the default spec; fixed-dataset models ignore
both arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from runtime.spec import ModelSpec
from train.errors import TrainError
from train.models.asl import AslCNN, asl_spec
from train.models.asl_effnet import AslEffNet, asl_effnet_spec
from train.models.landmarks import LandmarkMLP, landmark_spec
from train.models.mnist import MnistCNN, MnistMLP, mnist_spec
from train.models.transfer import TransferModel, backbone_info, imagenet_labels, transfer_spec


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[[ModelSpec, str], nn.Module]
    make_spec: Callable[[tuple[str, ...] | None, int | None], ModelSpec]
    dataset: str

    def build(self, spec: ModelSpec | None = None, weights: str = "none") -> nn.Module:
        return self.factory(spec or self.spec(), weights)

    def spec(self, labels: tuple[str, ...] | None = None, image_size: int | None = None) -> ModelSpec:
        return self.make_spec(labels, image_size)


def _fixed(name: str, module: Callable[[], nn.Module], spec: Callable[[str], ModelSpec], dataset: str) -> ModelEntry:
    return ModelEntry(name, lambda s, w: module(), lambda labels, size: spec(name), dataset)


def _transfer(backbone: str) -> ModelEntry:
    name = f"{backbone}_transfer"

    def make_spec(labels, size):
        if not labels:
            raise TrainError(f"{name} needs the class labels of its data set")
        return transfer_spec(name, backbone, tuple(labels), size or 224)

    return ModelEntry(name, lambda s, w: TransferModel(backbone, s.num_classes, w), make_spec, "image_folder")


def _asl_effnet(name: str) -> ModelEntry:
    """EfficientNet-Lite0 on grayscale hands; ``asl_effnet_adapted`` is the same network after ``--adapt``."""
    return ModelEntry(name, lambda s, w: AslEffNet(w), lambda labels, size: asl_effnet_spec(name, size), "sign_mnist")


def _imagenet(backbone: str) -> ModelEntry:
    """The whole pretrained ImageNet classifier (the doggy door's model), no training."""
    name = f"{backbone}_imagenet"
    return ModelEntry(
        name,
        lambda s, w: backbone_info(backbone).load(w),
        lambda labels, size: transfer_spec(name, backbone, imagenet_labels(), size or 224),
        "imagenet",
    )


def _table(*entries: ModelEntry) -> dict[str, ModelEntry]:
    table: dict[str, ModelEntry] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"model {entry.name!r} registered twice")
        table[entry.name] = entry
    return table


MODELS: dict[str, ModelEntry] = _table(
    _fixed("mnist_mlp", MnistMLP, mnist_spec, "mnist"),
    _fixed("mnist_cnn", MnistCNN, mnist_spec, "mnist"),
    _fixed("asl_cnn", AslCNN, asl_spec, "sign_mnist"),
    # fitted on a user's own photos by `train asl --adapt DIR` (train.landmarks), not on a fixed data set
    _fixed("asl_landmarks_adapted", LandmarkMLP, landmark_spec, "asl_photos"),
    _asl_effnet("asl_effnet"),
    _asl_effnet("asl_effnet_adapted"),
    _transfer("vgg16"),
    _transfer("efficientnet_lite0"),
    _imagenet("vgg16"),
    _imagenet("efficientnet_lite0"),
)


def get_model(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise TrainError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
